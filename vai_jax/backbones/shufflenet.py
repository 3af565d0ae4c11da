"""ShuffleNet v1 (Zhang et al., "ShuffleNet: An Extremely Efficient Convolutional Neural Network
for Mobile Devices", CVPR 2018).

Table 1: a 3×3/2 conv (24) and a 3×3/2 max pool, then three stages of ShuffleNet units (4, 8, 4
units; the first of each has stride 2), global average pooling and a fully connected layer.
Stage output channels for groups ``g`` = 1, 2, 3, 4, 8: (144, 288, 576), (200, 400, 800),
(240, 480, 960), (272, 544, 1088), (384, 768, 1536). A unit (Fig. 2b/c): 1×1 group conv to
``out / 4`` channels + BN + ReLU, channel shuffle, 3×3 depthwise conv (stride 1 or 2) + BN, 1×1
group conv + BN; then ``ReLU(x + branch)`` (stride 1) or ``concat(avgpool3×3/2(x), ReLU(branch))``
(stride 2, the branch then outputs ``out − C_in`` channels). The first point-wise conv of
stage 2 is not grouped (§3.3: its 24 input channels are too few). Layout of the authors'
reference code (megvii-model/ShuffleNet-Series), except that the classifier has a bias.

Parameter counts at 1×, 1000 classes (computed by this module; the paper reports only
complexity): g=1 1,531,936; g=2 1,733,848; g=3 1,865,728 (about 1.9M); g=4 1,968,344;
g=8 2,434,768. Multiply-adds of the convolutions at 224×224:
142.5M, 140.0M, 136.5M, 133.3M, 136.8M — Table 1's complexity row (143, 140, 137, 133, 137
MFLOPs) within rounding; the classifier adds ``1000 · C`` more.

``scale`` (the paper's "ShuffleNet s×") multiplies every width; widths are then rounded to
multiples of ``groups`` (stem) and ``4 · groups`` (stages), which leaves the 1× widths unchanged.

Features: ``"stem"`` (conv1, stride 2, 24s), ``"stage1"`` (Table 1's Stage 2, stride 8),
``"stage2"`` (Stage 3, stride 16), ``"stage3"`` (Stage 4, stride 32). Parameter names:
``conv1``, ``stage1/unit1`` … (``gconv1``, ``dwconv``, ``gconv2``), ``fc``.
"""
from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from vai_jax.backbones.base import FeatureInfo, check_image_input
from vai_jax.nn.conv import ConvBNAct
from vai_jax.nn.shuffle import channel_shuffle
from vai_jax.nn.spp import max_pool_2d

# Table 1: stage output channels at 1× for each number of groups.
STAGE_CHANNELS = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960),
                  4: (272, 544, 1088), 8: (384, 768, 1536)}


def _round(c: float, divisor: int) -> int:
    return max(divisor, int(c / divisor + 0.5) * divisor)


class ShuffleUnit(nn.Module):
    """ShuffleNet unit (Fig. 2b for ``strides=1``, 2c for ``strides=2``); see the module docstring.

    Attributes:
      features: output channels (for stride 2, including the ``C_in`` pooled shortcut ones).
      groups: groups of the point-wise convs.
      strides: 1 (residual add; needs ``C_in == features``) or 2 (concat with the pooled input).
      first_grouped: group the first point-wise conv (False for the first unit of stage 2).
    ``[B, H, W, C_in] → [B, H / strides, W / strides, features]``.
    """

    features: int
    groups: int = 3
    strides: int = 1
    first_grouped: bool = True
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x, *, train: bool):
        c_in = x.shape[-1]
        out = self.features - c_in if self.strides == 2 else self.features
        if self.strides == 1 and c_in != self.features:
            raise ValueError(f"a stride-1 unit needs input channels == features ({self.features}); got {c_in}")
        mid = self.features // 4
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, bn_axis_name=self.bn_axis_name)
        g1 = self.groups if self.first_grouped else 1
        y = ConvBNAct(mid, 1, groups=g1, name="gconv1", **kw)(x, train=train)
        if self.groups > 1:
            y = channel_shuffle(y, self.groups)
        y = ConvBNAct(mid, 3, strides=self.strides, groups=mid, act=None, name="dwconv", **kw)(y, train=train)
        y = ConvBNAct(out, 1, groups=self.groups, act=None, name="gconv2", **kw)(y, train=train)
        if self.strides == 1:
            return nn.relu(x + y)
        shortcut = nn.avg_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)), count_include_pad=True)
        return jnp.concatenate([shortcut, nn.relu(y)], axis=-1)


class ShuffleNetV1(nn.Module):
    """ShuffleNet v1; see the module docstring.

    Attributes:
      num_classes: classifier width; 0 for none (``logits`` is None).
      groups: 1, 2, 3, 4 or 8.
      scale: width multiplier ``s`` (1, 0.5, 0.25 in the paper).
      stage_units: units per stage (4, 8, 4).
      dtype, param_dtype, bn_axis_name: compute dtype, parameter dtype, ``pmap`` BN axis.

    ``__call__(x, *, train)``: ``x`` ``[B, H, W, C]`` floating →
    ``(logits [B, num_classes] or None, features)``.
    """

    num_classes: int = 1000
    groups: int = 3
    scale: float = 1.0
    stage_units: Sequence[int] = (4, 8, 4)
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    def widths(self) -> tuple[int, tuple[int, ...]]:
        """``(stem channels, stage output channels)`` after scaling and rounding."""
        if self.groups not in STAGE_CHANNELS:
            raise ValueError(f"groups must be one of {sorted(STAGE_CHANNELS)}; got {self.groups}")
        if not self.scale > 0:
            raise ValueError(f"scale must be > 0; got {self.scale}")
        stem = _round(24 * self.scale, self.groups)
        stages = tuple(_round(c * self.scale, 4 * self.groups) for c in STAGE_CHANNELS[self.groups])
        return stem, stages

    @property
    def feature_info(self) -> tuple[FeatureInfo, ...]:
        """(name, channels, stride) of ``"stem"``, ``"stage1"`` … ``"stage3"``."""
        stem, stages = self.widths()
        return (FeatureInfo("stem", stem, 2),) + tuple(
            FeatureInfo(f"stage{i + 1}", c, 2 ** (i + 3)) for i, c in enumerate(stages))

    @property
    def min_input_size(self) -> int:
        """The smallest ``H`` and ``W`` (pixels) for which every feature map is non-empty."""
        return 1  # padded convolutions and pools

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = check_image_input(self, x, family="ShuffleNet v1", stem="conv1/conv/kernel",
                              min_size=self.min_input_size)
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, bn_axis_name=self.bn_axis_name)
        stem, stages = self.widths()
        features = {}
        x = x.astype(self.dtype)
        x = ConvBNAct(stem, 3, strides=2, name="conv1", **kw)(x, train=train)
        features["stem"] = x
        x = max_pool_2d(x, 3, 2, padding=1)
        for s, (c, n) in enumerate(zip(stages, self.stage_units)):
            units = [functools.partial(ShuffleUnit, c, self.groups, strides=2 if u == 0 else 1,
                                       first_grouped=not (s == 0 and u == 0), **kw) for u in range(n)]
            x = _Stage(tuple(units), name=f"stage{s + 1}")(x, train=train)
            features[f"stage{s + 1}"] = x
        logits = None
        if self.num_classes:
            x = jnp.mean(x, axis=(1, 2))
            logits = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype,
                              name="fc")(x)
        return logits, features


class _Stage(nn.Module):
    """Units in sequence, named ``unit1``, ``unit2`` …"""

    units: Sequence

    @nn.compact
    def __call__(self, x, *, train: bool):
        for j, unit in enumerate(self.units):
            x = unit(name=f"unit{j + 1}")(x, train=train)
        return x


MODELS = {
    "shufflenet_v1": ShuffleNetV1,
    **{f"shufflenet_v1_g{g}": functools.partial(ShuffleNetV1, groups=g) for g in (1, 2, 3, 4, 8)},
}
