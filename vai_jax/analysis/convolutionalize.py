"""Convolutionalisation (Long et al. 2015, §3.1): a classifier's fully connected layers are
convolutions whose kernels cover their whole input, so reshaping their weights turns the
network into a fully convolutional one that outputs a map of class scores on larger inputs.

A dense layer reading a flattened ``[h, w, C]`` grid (row-major NHWC flatten, as
``x.reshape(B, -1)``) with kernel ``[h·w·C, N]`` is the ``h × w`` ``VALID`` convolution with
kernel ``kernel.reshape(h, w, C, N)``; every following dense layer ``[N, M]`` is a 1×1
convolution. At the training resolution the map is ``1 × 1`` and equals the logits; an input
larger by ``Δ`` pixels gives ``1 + Δ / stride`` cells per side (``stride`` = the backbone's
total stride), each the classifier applied to a window shifted by ``stride`` pixels.
A global-average-pooling classifier (``pool="mean"``: ResNet, …) becomes a 1×1 convolution on the
un-pooled map; the spatial mean of that map is the classifier's logits at any resolution.
"""
from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from vai_jax._validation import check_array


def dense_to_conv_kernel(kernel, grid: Sequence[int], channels: int):
    """Reshape a dense kernel ``[h·w·C, N]`` that reads a row-major flattened ``[h, w, C]`` grid
    into the equivalent ``VALID`` conv kernel ``[h, w, C, N]``.

    Raises ValueError if ``kernel`` is not 2-D with ``h·w·C`` rows.
    """
    kernel = check_array(kernel, "kernel", ndim=2, shape_hint="[h*w*C, N]")
    h, w = (int(v) for v in grid)
    if kernel.shape[0] != h * w * channels:
        raise ValueError(f"kernel must have h*w*C = {h}*{w}*{channels} = {h * w * channels} "
                         f"rows for grid {(h, w)} and {channels} channels; got shape "
                         f"{tuple(kernel.shape)}")
    return kernel.reshape(h, w, channels, kernel.shape[1])


class FullyConvolutional(nn.Module):
    """A classifier's backbone followed by its dense layers as convolutions.

    Attributes:
      backbone: returns ``(_, features)`` (the classifier's network with ``num_classes=0``,
        same parameter names).
      feature_name: the feature the classifier's dense layers read (e.g. VGG ``"stage5"``).
      widths: output widths of the dense layers, the last one = classes.
      grid: ``(h, w)`` of the feature map the first dense layer read at the training
        resolution (``pool="flatten"``); ignored for ``pool="mean"``.
      pool: ``"flatten"`` (VGG/AlexNet: first layer → ``h × w`` VALID conv) or ``"mean"``
        (global-average-pooling classifiers: every layer → 1×1 conv).
      layer_names: the dense layers' parameter names, kept for the convolutions.
      act: activation between layers (none after the last).

    ``__call__(x [B, H, W, C], *, train)`` → class-score map ``[B, H', W', widths[-1]]``.
    """

    backbone: nn.Module
    feature_name: str
    widths: Sequence[int]
    grid: Sequence[int] = (1, 1)
    pool: str = "flatten"
    layer_names: Sequence[str] = ("fc1", "fc2", "fc3")
    act: Callable = nn.relu
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        if self.pool not in ("flatten", "mean"):
            raise ValueError(f"pool must be 'flatten' or 'mean'; got {self.pool!r}")
        if len(self.layer_names) != len(self.widths):
            raise ValueError(f"layer_names and widths must have equal lengths; got "
                             f"{self.layer_names!r} and {self.widths!r}")
        _, features = self.backbone(x, train=train)
        y = features[self.feature_name]
        first = tuple(self.grid) if self.pool == "flatten" else (1, 1)
        if y.shape[1] < first[0] or y.shape[2] < first[1]:
            raise ValueError(f"x is too small: feature {self.feature_name!r} is "
                             f"{tuple(y.shape[1:3])}, smaller than the classifier's grid {first}")
        for i, (name, width) in enumerate(zip(self.layer_names, self.widths)):
            kernel = first if i == 0 else (1, 1)
            y = nn.Conv(width, kernel, padding="VALID", dtype=self.dtype,
                        param_dtype=self.param_dtype, name=name)(y)
            if i < len(self.widths) - 1:
                y = self.act(y)
        return y


def convolutionalize(params, *, grid: Sequence[int], channels: int,
                     layer_names: Sequence[str] = ("fc1", "fc2", "fc3"),
                     pool: str = "flatten") -> dict:
    """Convert a classifier's ``params`` to :class:`FullyConvolutional`'s.

    Args:
      params: the classifier's ``"params"`` collection: backbone entries plus dense layers
        ``layer_names`` (``{"kernel": [in, out], "bias": [out]}``).
      grid: ``(h, w)`` the first dense layer read (``pool="flatten"``).
      channels: channels of that feature map.
      layer_names, pool: as in :class:`FullyConvolutional`.

    Returns:
      ``{"backbone": {...}, name: {"kernel": [kh, kw, C_in, C_out], "bias"}, ...}``; other
      collections (``batch_stats``) need the same ``{"backbone": ...}`` nesting, see
      :func:`nest_backbone`.
    """
    missing = [n for n in layer_names if n not in params]
    if missing:
        raise ValueError(f"params has no dense layer(s) {missing}; its entries are "
                         f"{sorted(params)}")
    out = {"backbone": {k: v for k, v in params.items() if k not in layer_names}}
    for i, name in enumerate(layer_names):
        kernel = params[name]["kernel"]
        if i == 0 and pool == "flatten":
            conv = dense_to_conv_kernel(kernel, grid, channels)
        else:
            conv = kernel.reshape(1, 1, *np.shape(kernel))
        out[name] = {"kernel": conv, **{k: v for k, v in params[name].items() if k != "kernel"}}
    return out


def nest_backbone(collection: dict) -> dict:
    """``{"backbone": collection}`` for collections without dense layers (``batch_stats``)."""
    return {"backbone": dict(collection)}
