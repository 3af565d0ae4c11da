"""MobileNet v1 (Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile
Vision Applications", 2017), Table 1: a 3×3/2 conv then 13 depthwise-separable blocks
(:class:`~vai_jax.nn.DepthwiseSeparableConv`, BN + ReLU after both the depthwise and the
point-wise conv), global average pooling and a fully connected classifier.

Width multiplier ``alpha`` (§3.3) scales every layer's channels to ``int(c · alpha)`` (at least
1); the resolution multiplier ``rho`` is the input size itself (224, 192, 160, 128 in the paper —
any size works thanks to global pooling). At ``alpha=1``, 1000 classes: 4,231,976 parameters
(conv weights, BN scale and bias, FC) — the paper's "4.2 million" — and 568.7M multiply-adds at
224×224 (the paper's "569 million"). Table 1's last depthwise conv is listed with stride 2, a
typo (the feature map stays 7×7); it has stride 1 here, as in every released model.

Features: ``"stem"`` (block 1 output, stride 2, ``64α``), ``"stage1"`` (stride 4, ``128α``),
``"stage2"`` (stride 8, ``256α``), ``"stage3"`` (stride 16, ``512α``), ``"stage4"`` (stride 32,
``1024α``). Parameter names: ``conv1``, ``block1`` … ``block13`` (``depthwise``, ``pointwise``),
``fc``.
"""
from __future__ import annotations

import functools

import flax.linen as nn
import jax.numpy as jnp

from vai_jax.backbones.base import FeatureInfo, check_image_input, pooled_classifier
from vai_jax.nn.conv import ConvBNAct
from vai_jax.nn.separable import DepthwiseSeparableConv

# Table 1: (point-wise output channels, depthwise stride) of the 13 separable blocks.
MOBILENET_V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                       (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
# Block index (1-based) whose output is each feature: stem, stage1 … stage4.
_FEATURE_BLOCKS = (("stem", 1), ("stage1", 3), ("stage2", 5), ("stage3", 11), ("stage4", 13))


class MobileNetV1(nn.Module):
    """MobileNet v1; see the module docstring.

    Attributes:
      num_classes: classifier width; 0 for none (``logits`` is None).
      alpha: width multiplier (1, 0.75, 0.5, 0.25 in the paper).
      dropout_rate: before the classifier (0: the paper uses none).
      dtype, param_dtype, bn_axis_name: compute dtype, parameter dtype, ``pmap`` BN axis.

    ``__call__(x, *, train)``: ``x`` ``[B, H, W, C]`` floating →
    ``(logits [B, num_classes] or None, features)``.
    """

    num_classes: int = 1000
    alpha: float = 1.0
    dropout_rate: float = 0.0
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    def _width(self, c: int) -> int:
        if not self.alpha > 0:
            raise ValueError(f"alpha must be > 0; got {self.alpha}")
        return max(1, int(c * self.alpha))

    @property
    def feature_info(self) -> tuple[FeatureInfo, ...]:
        """(name, channels, stride) of ``"stem"``, ``"stage1"`` … ``"stage4"``."""
        info, stride = [], 2
        for i, (c, s) in enumerate(MOBILENET_V1_BLOCKS, start=1):
            stride *= s
            for name, b in _FEATURE_BLOCKS:
                if b == i:
                    info.append(FeatureInfo(name, self._width(c), stride))
        return tuple(info)

    @property
    def min_input_size(self) -> int:
        """The smallest ``H`` and ``W`` (pixels) for which every feature map is non-empty."""
        return 1  # padded convolutions

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = check_image_input(self, x, family="MobileNet v1", stem="conv1/conv/kernel",
                              min_size=self.min_input_size)
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, bn_axis_name=self.bn_axis_name)
        names = dict((b, n) for n, b in _FEATURE_BLOCKS)
        features = {}
        x = x.astype(self.dtype)
        x = ConvBNAct(self._width(32), 3, strides=2, name="conv1", **kw)(x, train=train)
        for i, (c, s) in enumerate(MOBILENET_V1_BLOCKS, start=1):
            x = DepthwiseSeparableConv(self._width(c), strides=s, name=f"block{i}", **kw)(x, train=train)
            if i in names:
                features[names[i]] = x
        return pooled_classifier(self, x, train=train), features


MODELS = {
    "mobilenet_v1": MobileNetV1,
    "mobilenet_v1_075": functools.partial(MobileNetV1, alpha=0.75),
    "mobilenet_v1_050": functools.partial(MobileNetV1, alpha=0.5),
    "mobilenet_v1_025": functools.partial(MobileNetV1, alpha=0.25),
}
