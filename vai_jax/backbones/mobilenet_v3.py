"""MobileNetV3 (Howard et al., "Searching for MobileNetV3", ICCV 2019), Large and Small, in
torchvision's layout: a 3×3/2 conv-BN-hard-swish stem (16), the inverted residuals of Tables 1
and 2 (:class:`~vai_jax.nn.InvertedResidual`: ReLU or hard-swish, squeeze-and-excitation with a
hard-sigmoid gate and ``make_divisible(expanded / 4)`` hidden channels), a 1×1 conv-BN-hard-swish
to 6× the last block's width, global average pooling, a linear layer (1280 / 1024) with
hard-swish, dropout 0.2 and the linear classifier. BatchNorm: eps 1e-3, momentum 0.99 (Flax's
convention; PyTorch's 0.01). 5,483,032 (Large) and 2,542,856 (Small) parameters at 1000 classes
and 216.6M / 56.5M multiply-adds at 224×224, torchvision's.

``alpha`` (the paper's multiplier) scales every width, rounded to a multiple of 8 by
:func:`~vai_jax.nn.make_divisible`.

Features: ``"stem"`` (the stem conv, stride 2), ``"stage1"`` … ``"stage4"``: the last block
output at strides 4, 8, 16 and, for stride 32, the last 1×1 conv (960 / 576 channels).
Parameter names: ``stem``, ``block1`` … (``expand``, ``depthwise``, ``se``, ``project``),
``last_conv``, ``fc1`` (the 1280 / 1024 linear layer), ``fc2`` (the classifier).
"""
from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from vai_jax.backbones.base import FeatureInfo, check_image_input
from vai_jax.nn.conv import ConvBNAct
from vai_jax.nn.inverted_residual import InvertedResidual, make_divisible

# (kernel, expanded, output channels, squeeze-and-excitation, activation, stride) per block:
# Table 1 (Large) and Table 2 (Small), with torchvision's widths.
MOBILENET_V3_LARGE = (
    (3, 16, 16, False, "relu", 1), (3, 64, 24, False, "relu", 2), (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2), (5, 120, 40, True, "relu", 1), (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hswish", 2), (3, 200, 80, False, "hswish", 1),
    (3, 184, 80, False, "hswish", 1), (3, 184, 80, False, "hswish", 1),
    (3, 480, 112, True, "hswish", 1), (3, 672, 112, True, "hswish", 1),
    (5, 672, 160, True, "hswish", 2), (5, 960, 160, True, "hswish", 1),
    (5, 960, 160, True, "hswish", 1),
)
MOBILENET_V3_SMALL = (
    (3, 16, 16, True, "relu", 2), (3, 72, 24, False, "relu", 2), (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hswish", 2), (5, 240, 40, True, "hswish", 1),
    (5, 240, 40, True, "hswish", 1), (5, 120, 48, True, "hswish", 1),
    (5, 144, 48, True, "hswish", 1), (5, 288, 96, True, "hswish", 2),
    (5, 576, 96, True, "hswish", 1), (5, 576, 96, True, "hswish", 1),
)
_ACTS = {"relu": nn.relu, "hswish": nn.hard_swish}


class MobileNetV3(nn.Module):
    """MobileNetV3; see the module docstring.

    Attributes:
      blocks: per block ``(kernel, expanded, out, se, activation, stride)``
        (:data:`MOBILENET_V3_LARGE` or :data:`MOBILENET_V3_SMALL`).
      stem_width: channels of the stem conv before scaling (16).
      last_channels: width of ``fc1`` before scaling (1280 Large, 1024 Small).
      num_classes: classifier width; 0 for none (``logits`` is None; no ``fc1`` either).
      alpha: width multiplier.
      dropout_rate: between ``fc1`` and ``fc2`` (0.2).
      dtype, param_dtype, bn_axis_name: compute dtype, parameter dtype, ``pmap`` BN axis.

    ``__call__(x, *, train)``: ``x`` ``[B, H, W, C]`` floating →
    ``(logits [B, num_classes] or None, features)``.
    """

    blocks: Sequence[tuple] = MOBILENET_V3_LARGE
    stem_width: int = 16
    last_channels: int = 1280
    num_classes: int = 1000
    alpha: float = 1.0
    dropout_rate: float = 0.2
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    def _width(self, c: int) -> int:
        if not self.alpha > 0:
            raise ValueError(f"alpha must be > 0; got {self.alpha}")
        return make_divisible(c * self.alpha)

    def _stage_ends(self) -> dict[int, int]:
        """{block index (1-based) ending a stride group: its cumulative stride}."""
        ends, stride = {}, 2
        for i, block in enumerate(self.blocks, start=1):
            stride *= block[5]
            nxt = self.blocks[i][5] if i < len(self.blocks) else 2
            if stride >= 4 and nxt == 2:
                ends[i] = stride
        return ends

    @property
    def feature_info(self) -> tuple[FeatureInfo, ...]:
        """(name, channels, stride) of ``"stem"``, ``"stage1"`` … ``"stage4"``."""
        info = [FeatureInfo("stem", self._width(self.stem_width), 2)]
        for k, (i, stride) in enumerate(self._stage_ends().items(), start=1):
            c = self._width(self.blocks[i - 1][2])
            info.append(FeatureInfo(f"stage{k}", 6 * c if i == len(self.blocks) else c, stride))
        return tuple(info)

    @property
    def min_input_size(self) -> int:
        """The smallest ``H`` and ``W`` (pixels) for which every feature map is non-empty."""
        return 1  # padded convolutions

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = check_image_input(self, x, family="MobileNet v3", stem="stem/conv/kernel",
                              min_size=self.min_input_size)
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, bn_axis_name=self.bn_axis_name,
                  bn_epsilon=1e-3, bn_momentum=0.99)
        ends = self._stage_ends()
        features = {}
        x = x.astype(self.dtype)
        x = ConvBNAct(self._width(self.stem_width), 3, strides=2, act=nn.hard_swish,
                      name="stem", **kw)(x, train=train)
        features["stem"] = x
        for i, (k, expanded, c_out, se, act, s) in enumerate(self.blocks, start=1):
            if act not in _ACTS:
                raise ValueError(f"block {i}: activation must be one of {sorted(_ACTS)}; "
                                 f"got {act!r}")
            e = self._width(expanded)
            x = InvertedResidual(self._width(c_out), e, kernel_size=k, strides=s, act=_ACTS[act],
                                 se_channels=make_divisible(e // 4) if se else 0,
                                 name=f"block{i}", **kw)(x, train=train)
            if i == len(self.blocks):
                x = ConvBNAct(6 * self._width(c_out), 1, act=nn.hard_swish, name="last_conv",
                              **kw)(x, train=train)
            if i in ends:
                features[f"stage{len(features)}"] = x
        if not self.num_classes:
            return None, features
        dense = functools.partial(nn.Dense, dtype=self.dtype, param_dtype=self.param_dtype)
        x = jnp.mean(x, axis=(1, 2))
        x = nn.hard_swish(dense(self._width(self.last_channels), name="fc1")(x))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return dense(self.num_classes, name="fc2")(x), features


MODELS = {
    "mobilenet_v3_large": MobileNetV3,
    "mobilenet_v3_small": functools.partial(MobileNetV3, blocks=MOBILENET_V3_SMALL,
                                            last_channels=1024),
}
