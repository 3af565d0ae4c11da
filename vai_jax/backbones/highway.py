"""Highway networks (Srivastava, Greff & Schmidhuber 2015).

* :class:`HighwayNet` (registered): a convolutional highway network for small images. A 3×3
  conv-BN-ReLU stem, then stages of :class:`~vai_jax.nn.highway.HighwayConv` layers; each stage
  after the first starts with a 2×2/2 max-pool and a plain 3×3 conv-BN-ReLU that changes the
  width (highway layers keep their width, as in the paper where the dimension-changing layers
  are plain). ``highway_conv``: widths (32, 64, 128), 6 highway layers per stage
  (stem + 2 plain + 18 highway = 21 conv layers; 2,421,226 parameters at 10 classes, near the
  paper's 2.3 M 19-layer CIFAR highway net); BN on each layer's ``H`` path; gate bias −2.
  ``highway_conv_deep``: the same with 16 highway layers per stage (51 conv layers; 6,298,666
  parameters at 10 classes).
* :class:`HighwayMLP` (not registered: its features are vectors, not maps): the paper's
  fully connected highway nets (e.g. 10 layers of 50 units on MNIST): a plain
  ``Dense(width) + act`` input layer, ``depth`` :class:`~vai_jax.nn.highway.HighwayDense` layers,
  then a linear classifier.

Features of :class:`HighwayNet`: ``"stem"`` (stride 1), ``"stage1"`` … (strides 1, 2, 4, …).
Parameter names ``stem/conv``, ``stageI/proj/conv``, ``stageI/layerJ/h/conv``,
``stageI/layerJ/gate``, ``fc``.
"""
from __future__ import annotations

import functools
from typing import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from vai_jax._validation import check_array
from vai_jax.backbones.base import FeatureInfo, check_image_input
from vai_jax.nn.conv import ConvBNAct
from vai_jax.nn.highway import HighwayConv, HighwayDense


class HighwayNet(nn.Module):
    """Convolutional highway network.

    Attributes:
      widths: channels of each stage (the stem has ``widths[0]``).
      layers_per_stage: highway layers in each stage.
      kernel_size: of the highway layers (3).
      transform_bias: initial gate bias (−2: layers start mostly carrying their input).
      norm: BatchNorm on the highway layers' ``H`` path.
      num_classes: classifier width, 0 for none.
    ``__call__(x [B, H, W, C], *, train)`` → ``(logits [B, num_classes] | None, features)``.
    """

    widths: Sequence[int] = (32, 64, 128)
    layers_per_stage: Sequence[int] = (6, 6, 6)
    kernel_size: int = 3
    transform_bias: float = -2.0
    norm: bool = True
    num_classes: int = 1000
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    @property
    def feature_info(self) -> tuple[FeatureInfo, ...]:
        """(name, channels, stride) of the stem and each stage, from the fields alone."""
        if len(self.widths) != len(self.layers_per_stage):
            raise ValueError(f"widths and layers_per_stage must have the same length; got "
                             f"{self.widths!r} and {self.layers_per_stage!r}")
        return (FeatureInfo("stem", self.widths[0], 1),) + tuple(
            FeatureInfo(f"stage{i + 1}", w, 2 ** i) for i, w in enumerate(self.widths))

    @property
    def min_input_size(self) -> int:
        """The smallest ``H`` and ``W`` (pixels) for which every feature map is non-empty."""
        return 2 ** (len(self.widths) - 1)  # a 2x2/2 pool before each later stage

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = check_image_input(self, x, family="HighwayNet", stem="stem/conv/kernel",
                              min_size=self.min_input_size)
        self.feature_info  # validates the fields
        common = dict(dtype=self.dtype, param_dtype=self.param_dtype,
                      bn_axis_name=self.bn_axis_name)
        x = ConvBNAct(self.widths[0], 3, **common, name="stem")(x.astype(self.dtype), train=train)
        features = {"stem": x}
        for i, (w, n) in enumerate(zip(self.widths, self.layers_per_stage)):
            x = _HighwayStage(w, n, downsample=i > 0, kernel_size=self.kernel_size,
                              transform_bias=self.transform_bias, norm=self.norm, **common,
                              name=f"stage{i + 1}")(x, train=train)
            features[f"stage{i + 1}"] = x
        if not self.num_classes:
            return None, features
        logits = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype,
                          name="fc")(jnp.mean(x, axis=(1, 2)))
        return logits, features


class _HighwayStage(nn.Module):
    features: int
    num_layers: int
    downsample: bool
    kernel_size: int = 3
    transform_bias: float = -2.0
    norm: bool = True
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x, *, train: bool):
        common = dict(dtype=self.dtype, param_dtype=self.param_dtype,
                      bn_axis_name=self.bn_axis_name)
        if self.downsample:
            x = nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")
        if self.downsample or x.shape[-1] != self.features:
            x = ConvBNAct(self.features, 3, **common, name="proj")(x, train=train)
        for j in range(self.num_layers):
            x = HighwayConv(self.kernel_size, transform_bias=self.transform_bias, norm=self.norm,
                            **common, name=f"layer{j + 1}")(x, train=train)
        return x


class HighwayMLP(nn.Module):
    """Fully connected highway network.

    Attributes:
      width: hidden units (all highway layers keep it).
      depth: number of highway layers.
      act: activation of the input layer and the ``H`` paths.
      transform_bias: initial gate bias.
      num_classes: classifier width, 0 for none.
    ``__call__(x [B, ...], *, train)`` flattens all but the batch axis and returns
    ``(logits [B, num_classes] | None, {"input": [B, width], "hidden": [B, width]})``.
    Parameter names ``input``, ``layerJ/h``, ``layerJ/gate``, ``fc``.
    """

    width: int = 50
    depth: int = 10
    act: Callable = nn.relu
    transform_bias: float = -2.0
    num_classes: int = 10
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None  # uniform interface; the MLP has no BatchNorm

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = check_array(x, "x", min_ndim=2, kind="floating", shape_hint="[B, ...]")
        x = x.reshape(x.shape[0], -1).astype(self.dtype)
        dense = functools.partial(nn.Dense, dtype=self.dtype, param_dtype=self.param_dtype)
        x = self.act(dense(self.width, name="input")(x))
        features = {"input": x}
        for j in range(self.depth):
            x = HighwayDense(self.act, self.transform_bias, dtype=self.dtype,
                             param_dtype=self.param_dtype, name=f"layer{j + 1}")(x, train=train)
        features["hidden"] = x
        if not self.num_classes:
            return None, features
        return dense(self.num_classes, name="fc")(x), features


MODELS = {
    "highway_conv": HighwayNet,
    "highway_conv_deep": functools.partial(HighwayNet, layers_per_stage=(16, 16, 16)),
}
