"""ShuffleNet V2 (Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture
Design", ECCV 2018), Table 5, in torchvision's layout: a 3×3/2 conv-BN-ReLU (24) and a 3×3/2
max pool, three stages of units (4, 8, 4; the first of each has stride 2), a 1×1 conv-BN-ReLU
(1024, 2048 at 2×), global average pooling and a linear classifier.

A unit (Fig. 3c/d): with stride 1 the channels are split in halves, the second half goes through
1×1 conv-BN-ReLU → 3×3 depthwise conv-BN → 1×1 conv-BN-ReLU and is concatenated after the
first; with stride 2 both branches read the whole input (branch 1: 3×3/2 depthwise conv-BN →
1×1 conv-BN-ReLU; branch 2 as above with a stride-2 depthwise conv), each giving half the
output channels. Then a channel shuffle with 2 groups.

Parameter counts at 1000 classes and multiply-adds at 224×224 (torchvision's): 0.5× 1,366,792,
40.5M; 1× 2,278,604, 144.9M; 1.5× 3,503,624, 295.8M; 2× 7,393,996, 583.3M.

Features: ``"stem"`` (conv1, stride 2), ``"stage1"`` (Table 5's Stage 2, stride 8),
``"stage2"`` (Stage 3, stride 16), ``"stage3"`` (Stage 4 and the 1×1 conv5, stride 32).
Parameter names: ``conv1``, ``stage1/unit1`` … (``branch1_depthwise``, ``branch1_conv``,
``branch2_conv1``, ``branch2_depthwise``, ``branch2_conv2``; each conv-BN ``conv``, ``bn``),
``conv5``, ``fc``.
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

# Table 5: output channels of conv1, Stage 2, 3, 4 and conv5 for each multiplier.
STAGE_CHANNELS = {0.5: (24, 48, 96, 192, 1024), 1.0: (24, 116, 232, 464, 1024),
                  1.5: (24, 176, 352, 704, 1024), 2.0: (24, 244, 488, 976, 2048)}


class ShuffleV2Unit(nn.Module):
    """ShuffleNet V2 unit (Fig. 3c for ``strides=1``, 3d for ``strides=2``); see the module
    docstring. ``[B, H, W, C_in] → [B, ceil(H / strides), ceil(W / strides), features]``;
    stride 1 needs ``C_in == features``."""

    features: int
    strides: int = 1
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x, *, train: bool):
        c_in, half = x.shape[-1], self.features // 2
        if self.features % 2:
            raise ValueError(f"features must be even; got {self.features}")
        if self.strides == 1 and c_in != self.features:
            raise ValueError(f"a stride-1 unit needs input channels == features ({self.features}); "
                             f"got {c_in}")
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, bn_axis_name=self.bn_axis_name)
        s = self.strides
        if s == 1:
            keep, x2 = x[..., :half], x[..., half:]
        else:
            keep = ConvBNAct(c_in, 3, strides=s, groups=c_in, act=None, name="branch1_depthwise",
                             **kw)(x, train=train)
            keep = ConvBNAct(half, 1, name="branch1_conv", **kw)(keep, train=train)
            x2 = x
        y = ConvBNAct(half, 1, name="branch2_conv1", **kw)(x2, train=train)
        y = ConvBNAct(half, 3, strides=s, groups=half, act=None, name="branch2_depthwise",
                      **kw)(y, train=train)
        y = ConvBNAct(half, 1, name="branch2_conv2", **kw)(y, train=train)
        return channel_shuffle(jnp.concatenate([keep, y], axis=-1), 2)


class _Stage(nn.Module):
    """Units in sequence, named ``unit1``, ``unit2`` …"""

    units: Sequence

    @nn.compact
    def __call__(self, x, *, train: bool):
        for j, unit in enumerate(self.units):
            x = unit(name=f"unit{j + 1}")(x, train=train)
        return x


class ShuffleNetV2(nn.Module):
    """ShuffleNet V2; see the module docstring.

    Attributes:
      num_classes: classifier width; 0 for none (``logits`` is None).
      scale: the multiplier, a key of :data:`STAGE_CHANNELS` (0.5, 1, 1.5, 2).
      stage_units: units per stage (4, 8, 4).
      dtype, param_dtype, bn_axis_name: compute dtype, parameter dtype, ``pmap`` BN axis.

    ``__call__(x, *, train)``: ``x`` ``[B, H, W, C]`` floating →
    ``(logits [B, num_classes] or None, features)``.
    """

    num_classes: int = 1000
    scale: float = 1.0
    stage_units: Sequence[int] = (4, 8, 4)
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    def widths(self) -> tuple[int, ...]:
        """Output channels of conv1, the three stages and conv5."""
        if self.scale not in STAGE_CHANNELS:
            raise ValueError(f"scale must be one of {sorted(STAGE_CHANNELS)}; got {self.scale!r}")
        return STAGE_CHANNELS[self.scale]

    @property
    def feature_info(self) -> tuple[FeatureInfo, ...]:
        """(name, channels, stride) of ``"stem"``, ``"stage1"`` … ``"stage3"``."""
        w = self.widths()
        return (FeatureInfo("stem", w[0], 2), FeatureInfo("stage1", w[1], 8),
                FeatureInfo("stage2", w[2], 16), FeatureInfo("stage3", w[4], 32))

    @property
    def min_input_size(self) -> int:
        """The smallest ``H`` and ``W`` (pixels) for which every feature map is non-empty."""
        return 1  # padded convolutions and pools

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = check_image_input(self, x, family="ShuffleNet v2", stem="conv1/conv/kernel",
                              min_size=self.min_input_size)
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, bn_axis_name=self.bn_axis_name)
        w = self.widths()
        if len(self.stage_units) != 3:
            raise ValueError(f"stage_units must have 3 entries; got {self.stage_units!r}")
        features = {}
        x = x.astype(self.dtype)
        x = ConvBNAct(w[0], 3, strides=2, name="conv1", **kw)(x, train=train)
        features["stem"] = x
        x = max_pool_2d(x, 3, 2, padding=1)
        for s, (c, n) in enumerate(zip(w[1:4], self.stage_units)):
            units = tuple(functools.partial(ShuffleV2Unit, c, strides=2 if u == 0 else 1, **kw)
                          for u in range(n))
            x = _Stage(units, name=f"stage{s + 1}")(x, train=train)
            if s == 2:
                x = ConvBNAct(w[4], 1, name="conv5", **kw)(x, train=train)
            features[f"stage{s + 1}"] = x
        logits = None
        if self.num_classes:
            logits = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype,
                              name="fc")(jnp.mean(x, axis=(1, 2)))
        return logits, features


MODELS = {
    f"shufflenet_v2_x{str(k).replace('.', '_')}": functools.partial(ShuffleNetV2, scale=k)
    for k in STAGE_CHANNELS
}
