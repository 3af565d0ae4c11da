"""2D keypoint heads: Flax modules on a backbone's named feature maps.

Every head is called as ``head(features, *, train)`` where ``features`` is the backbone's dict
of named NHWC maps (``(logits, features) = backbone(x, train=...)``); the head reads the map
named by its ``in_features`` field (default ``"stage4"``), of stride ``stride`` (image pixels per
feature cell, the ``feature_info`` entry of that name), and returns a dict:

- :class:`RegressionHead` (convolutions → fully connected → ``2K``): ``{"coords"}``.
- :class:`DensityHead` (the regression head predicting a mean and a log standard deviation per
  coordinate; trained with the Gaussian NLL): ``{"coords", "log_std"}``.
- :class:`HeatmapHead` (deconvolution up-sampling, fully convolutional; Xiao et al. 2018,
  "Simple Baselines for Human Pose Estimation and Tracking"): ``{"heatmaps"}``.
- :class:`IntegralHead` (the heatmap head followed by :func:`vai_jax.ops.soft_argmax`, trained
  end-to-end on coordinates; Sun et al. 2018, "Integral Human Pose Regression"):
  ``{"heatmaps", "coords"}``.
- :class:`PAFHead` (heatmaps and part affinity fields for multi-instance grouping; Cao et al.
  2017): ``{"heatmaps", "pafs"}``.

Output keys, one meaning each across the heads:

- ``coords`` float32 ``[B, K, 2]``: predicted ``(x, y)`` in input-image pixels (continuous
  frame of :mod:`vai_jax.ops.coords`); for :class:`DensityHead` the mean of the Gaussian. (No
  visibility column: ``keypoints`` ``[..., K, 3]`` are the targets.)
- ``log_std`` float32 ``[B, K, 2]``: natural log of σ per coordinate, in image pixels.
- ``heatmaps`` float32 ``[B, H, W, K]``: per-keypoint maps (logits for :class:`IntegralHead`) on
  a grid of stride ``heatmap_stride = stride / 2**num_deconv`` (cell (i, j) ↔ image
  ``heatmap_stride · (j + 0.5, i + 0.5)``).
- ``pafs`` float32 ``[B, H, W, L, 2]``: part affinity fields on the heatmap grid.

The image size seen by the regression heads is ``(w · stride, h · stride)`` for an input map
``[B, h, w, C]``. :class:`PoseNet` chains a backbone and a head.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import flax.linen as nn
import jax.numpy as jnp

from vai_jax._validation import check_array, check_int
from vai_jax.nn.conv import ConvBNAct
from vai_jax.nn.norm import batch_norm
from vai_jax.ops.coords import heatmap_to_image
from vai_jax.ops.keypoints import soft_argmax


def select_feature(features, in_features: str):
    """The map ``features[in_features]`` ``[B, h, w, C]`` (floating) of a backbone's features.

    Raises ``TypeError`` unless ``features`` is a mapping of names to maps and ``ValueError``
    when ``in_features`` is not among its names or the map is not a 4-D floating array.
    """
    if not isinstance(features, Mapping):
        raise TypeError(f"features must be the backbone's dict of named feature maps; got "
                        f"{type(features).__name__}")
    if in_features not in features:
        raise ValueError(f"in_features {in_features!r} is not among the backbone's features "
                         f"{sorted(features)}")
    return check_array(features[in_features], f"features[{in_features!r}]", ndim=4,
                       kind="floating", shape_hint="[B, h, w, C]")


def _check_fields(module, **minimum) -> None:
    """Each named integer field of ``module`` is an int >= its minimum (ValueError naming it)."""
    for name, ge in minimum.items():
        check_int(getattr(module, name), name, ge=ge)


class _ConvFC(nn.Module):
    """``num_convs`` 3×3 conv-BN-ReLU (the first with stride ``conv_stride``), flatten (keeping
    spatial layout), ``Dense(hidden)`` + ReLU, ``Dense(outputs)``."""

    outputs: int
    conv_features: int
    num_convs: int
    conv_stride: int
    hidden: int
    dtype: jnp.dtype
    param_dtype: jnp.dtype

    @nn.compact
    def __call__(self, x, *, train: bool):
        for i in range(self.num_convs):
            x = ConvBNAct(self.conv_features, 3, strides=self.conv_stride if i == 0 else 1,
                          dtype=self.dtype, param_dtype=self.param_dtype,
                          name=f"conv{i + 1}")(x, train=train)
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, param_dtype=self.param_dtype,
                             name="fc1")(x))
        return nn.Dense(self.outputs, dtype=self.dtype, param_dtype=self.param_dtype,
                        kernel_init=nn.initializers.normal(1e-3), name="fc_out")(x)


def _image_extent(x, stride):
    h, w = x.shape[1], x.shape[2]
    return jnp.asarray([w * stride, h * stride], jnp.float32)


class RegressionHead(nn.Module):
    """Direct coordinate regression: convolutions → fully connected → ``2K`` values.

    The raw outputs ``r`` are mapped to image pixels as ``(0.5 + r) · (W_img, H_img)``, so an
    untrained head predicts the image centre.

    Attributes:
      num_keypoints: ``K``.
      stride: the input map's stride (image pixels per feature cell).
      in_features: the name of the input map in the backbone's features.
      conv_features, num_convs, conv_stride: the convolutional part (the first conv's stride
        reduces the flattened size).
      hidden: width of the fully connected layer.
    ``__call__(features, *, train)`` → ``{"coords": float32 [B, K, 2]}``.
    """

    num_keypoints: int
    stride: int
    in_features: str = "stage4"
    conv_features: int = 64
    num_convs: int = 2
    conv_stride: int = 1
    hidden: int = 256
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def _trunk(self, features, values_per_keypoint: int, train: bool):
        """The raw outputs ``[B, K, values_per_keypoint]`` (float32) and the image extent."""
        _check_fields(self, num_keypoints=1, stride=1, conv_features=1, num_convs=0,
                      conv_stride=1, hidden=1)
        x = select_feature(features, self.in_features)
        raw = _ConvFC(values_per_keypoint * self.num_keypoints, self.conv_features,
                      self.num_convs, self.conv_stride, self.hidden, self.dtype,
                      self.param_dtype, name="trunk")(x, train=train)
        raw = raw.astype(jnp.float32).reshape(-1, self.num_keypoints, values_per_keypoint)
        return raw, _image_extent(x, self.stride)

    @nn.compact
    def __call__(self, features, *, train: bool):
        raw, extent = self._trunk(features, 2, train)
        return {"coords": (0.5 + raw) * extent}


class DensityHead(RegressionHead):
    """Density network: mean and log standard deviation per coordinate (Gaussian likelihood).

    ``coords = (0.5 + r_μ) · extent`` as in :class:`RegressionHead`;
    ``log_std = r_σ + log(extent / 8)`` (an untrained head predicts σ ≈ one eighth of the
    image size), in image pixels. Train with :func:`vai_jax.pose.losses.density_loss`.
    Attributes as :class:`RegressionHead`.

    ``__call__(features, *, train)`` → ``{"coords": [B, K, 2], "log_std": [B, K, 2]}`` float32.
    """

    @nn.compact
    def __call__(self, features, *, train: bool):
        raw, extent = self._trunk(features, 4, train)
        return {"coords": (0.5 + raw[..., :2]) * extent,
                "log_std": raw[..., 2:] + jnp.log(extent / 8.0)}


class _Upsampler(nn.Module):
    """``num_deconv`` × (4×4 stride-2 transposed conv, BN, ReLU) then ``num_convs`` × 3×3
    conv-BN-ReLU; spatial size × ``2**num_deconv``."""

    deconv_features: int
    num_deconv: int
    num_convs: int
    dtype: jnp.dtype
    param_dtype: jnp.dtype

    @nn.compact
    def __call__(self, x, *, train: bool):
        for i in range(self.num_deconv):
            x = nn.ConvTranspose(self.deconv_features, (4, 4), strides=(2, 2), padding="SAME",
                                 use_bias=False, dtype=self.dtype, param_dtype=self.param_dtype,
                                 name=f"deconv{i + 1}")(x)
            x = batch_norm(train=train, dtype=self.dtype, param_dtype=self.param_dtype)(
                name=f"deconv{i + 1}_bn")(x)
            x = nn.relu(x)
        for i in range(self.num_convs):
            x = ConvBNAct(self.deconv_features, 3, dtype=self.dtype,
                          param_dtype=self.param_dtype, name=f"conv{i + 1}")(x, train=train)
        return x


def _final_conv(channels, name, dtype, param_dtype):
    return nn.Conv(channels, (1, 1), dtype=dtype, param_dtype=param_dtype,
                   kernel_init=nn.initializers.normal(1e-3), name=name)


class HeatmapHead(nn.Module):
    """Fully convolutional heatmap head (Xiao et al. 2018, Simple Baselines): deconvolution
    up-sampling and a 1×1 convolution to ``K`` maps. Works on a map of any size.

    Attributes:
      num_keypoints: ``K``.
      stride: the input map's stride; the heatmaps' stride is :attr:`heatmap_stride`.
      in_features: the name of the input map in the backbone's features.
      num_deconv: number of ×2 up-sampling steps (0 keeps the feature resolution).
      deconv_features: channels of the up-sampling layers.
      num_convs: 3×3 conv-BN-ReLU layers after up-sampling.
    ``__call__(features, *, train)`` → ``{"heatmaps": float32 [B, h·2**num_deconv,
    w·2**num_deconv, K]}`` for an input map ``[B, h, w, C]``.
    """

    num_keypoints: int
    stride: int
    in_features: str = "stage4"
    num_deconv: int = 2
    deconv_features: int = 64
    num_convs: int = 1
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @property
    def heatmap_stride(self) -> float:
        """Image pixels per heatmap cell: ``stride / 2**num_deconv``."""
        return self.stride / 2 ** self.num_deconv

    def _heatmaps(self, features, *, train):
        _check_fields(self, num_keypoints=1, stride=1, num_deconv=0, deconv_features=1,
                      num_convs=0)
        x = select_feature(features, self.in_features)
        x = _Upsampler(self.deconv_features, self.num_deconv, self.num_convs, self.dtype,
                       self.param_dtype, name="upsample")(x, train=train)
        hm = _final_conv(self.num_keypoints, "final", self.dtype, self.param_dtype)(x)
        return x, hm.astype(jnp.float32)

    @nn.compact
    def __call__(self, features, *, train: bool):
        return {"heatmaps": self._heatmaps(features, train=train)[1]}


class IntegralHead(HeatmapHead):
    """Integral regression (Sun et al. 2018): :class:`HeatmapHead` logits, then
    :func:`vai_jax.ops.soft_argmax` with inverse temperature ``beta``, mapped to image pixels.
    Differentiable end to end; trained on coordinates (:func:`vai_jax.pose.losses.coordinate_loss`
    on ``coords``, or :func:`~vai_jax.pose.losses.integral_l1` on ``heatmaps``).

    ``__call__(features, *, train)`` → ``{"heatmaps": [B, H, W, K] (logits),
    "coords": [B, K, 2] image pixels}``.
    """

    beta: float = 1.0

    @nn.compact
    def __call__(self, features, *, train: bool):
        _, hm = self._heatmaps(features, train=train)
        coords = heatmap_to_image(soft_argmax(hm, beta=self.beta), self.heatmap_stride)
        return {"heatmaps": hm, "coords": coords}


class PAFHead(HeatmapHead):
    """Multi-instance head: keypoint heatmaps plus part affinity fields (Cao et al. 2017) from
    one shared up-sampling trunk.

    Attributes:
      num_limbs: ``L``, the skeleton's number of limbs.
    ``__call__(features, *, train)`` → ``{"heatmaps": [B, H, W, K],
    "pafs": [B, H, W, L, 2]}`` (float32, same grid of stride :attr:`heatmap_stride`).
    """

    num_limbs: int = 1

    @nn.compact
    def __call__(self, features, *, train: bool):
        _check_fields(self, num_limbs=1)
        x, hm = self._heatmaps(features, train=train)
        pafs = _final_conv(2 * self.num_limbs, "final_fields", self.dtype, self.param_dtype)(x)
        pafs = pafs.astype(jnp.float32)
        return {"heatmaps": hm, "pafs": pafs.reshape(pafs.shape[:3] + (self.num_limbs, 2))}


class PoseNet(nn.Module):
    """A backbone and a pose head on its named feature maps.

    Attributes:
      backbone: a module whose ``__call__(x, *, train)`` returns ``(logits_or_None, features)``
        (any :func:`vai_jax.create_model` backbone).
      head: one of the heads above; it reads ``features[head.in_features]``, whose stride must
        be the head's ``stride``.
    ``__call__(images [B, H, W, 3], *, train)`` → the head's dict.
    """

    backbone: nn.Module
    head: nn.Module

    @nn.compact
    def __call__(self, x, *, train: bool):
        _, features = self.backbone(x, train=train)
        return self.head(features, train=train)


def num_upsampling_steps(feature_stride: int, heatmap_stride: int) -> int:
    """``n`` with ``feature_stride / 2**n == heatmap_stride`` (ValueError if not a power of 2)."""
    ratio = feature_stride / heatmap_stride
    n = round(math.log2(ratio)) if ratio >= 1 else -1
    if n < 0 or 2 ** n != ratio:
        raise ValueError(f"feature_stride / heatmap_stride must be a power of two >= 1; got "
                         f"feature_stride={feature_stride}, heatmap_stride={heatmap_stride}")
    return n


__all__ = ["DensityHead", "HeatmapHead", "IntegralHead", "PAFHead", "PoseNet",
           "RegressionHead", "num_upsampling_steps", "select_feature"]
