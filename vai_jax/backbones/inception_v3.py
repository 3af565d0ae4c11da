"""Inception v3 (Szegedy et al., "Rethinking the Inception Architecture", CVPR 2016), with
torchvision's exact layout (``torchvision.models.inception_v3``): factorised convolutions (two
3×3 instead of a 5×5 in the double-3×3 branches, 1×7 + 7×1 in the 17×17 modules, 1×3 and 3×1 in
parallel in the 8×8 modules), grid-size reductions by parallel stride-2 conv and pool. Every conv
is conv (no bias) + BatchNorm + ReLU; unpadded convs follow torchvision (``padding=0``).

Parameter counts (1000 classes): 23,834,568 without the auxiliary classifier, 27,161,264 with
it — torchvision's numbers. Designed for 299×299 input; the smallest input is 75×75. With
``bn_epsilon=1e-3, transform_input=True`` it computes torchvision's function with pretrained
weights (what :func:`vai_jax.weights.from_torchvision` builds for ``"inception_v3"``).

Auxiliary classifier (``aux_logits=True``, on ``mixed_6e``: 5×5/3 average pool, 1×1 conv 128,
5×5 conv 768, global average pool, linear) runs when ``train=True`` (and at ``init``); its logits
are ``features["aux"]`` ``[B, num_classes]``, for the training loss to weight (the weight is the
loss's choice, not the model's). Its unpadded 5×5 conv
after the 5×5/3 pool needs ``mixed_6e`` to be 17×17, i.e. input >= 299×299 (ValueError otherwise).

Features: ``"stem"`` (conv2d_2b_3x3, stride 2, 64), ``"stage1"`` (conv2d_4a_3x3, stride 4, 192),
``"stage2"`` (mixed_5d, stride 8, 288), ``"stage3"`` (mixed_6e, stride 16, 768), ``"stage4"``
(mixed_7c, stride 32, 2048); strides are nominal (unpadded convs trim a few pixels, e.g.
299 → 149 → 147 → 73 → 71 → 35 → 17 → 8). Also every ``"mixed_*"`` output.
Parameter names: torchvision's in lower case (``conv2d_1a_3x3``, ``mixed_5b/branch5x5_1`` …,
``aux_logits/conv0``, ``fc``), each conv a :class:`~vai_jax.nn.ConvBNAct` (``conv``, ``bn``).
"""
from __future__ import annotations

import functools

import flax.linen as nn
import jax.numpy as jnp

from vai_jax.backbones.base import (FeatureInfo, check_image_input,
                                   imagenet_to_inception_input, pooled_classifier)
from vai_jax.nn.conv import ConvBNAct
from vai_jax.nn.spp import max_pool_2d

_VALID = ((0, 0), (0, 0))


class _Mixed(nn.Module):
    """Shared fields of the Inception-v3 modules; ``conv(features, kernel, name, **kw)`` builds
    a conv-BN-ReLU (symmetric padding unless ``padding=`` is given)."""

    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None
    bn_epsilon: float = 1e-5

    def conv(self, features, kernel, name, **kw):
        return ConvBNAct(features, kernel, dtype=self.dtype, param_dtype=self.param_dtype,
                         bn_axis_name=self.bn_axis_name, bn_epsilon=self.bn_epsilon, name=name,
                         **kw)


def _avg3(x):
    # torchvision: F.avg_pool2d(x, 3, stride=1, padding=1), count_include_pad=True.
    return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=True)


class InceptionA(_Mixed):
    """35×35 module: 1×1 | 1×1 → 5×5 | 1×1 → 3×3 → 3×3 | avg pool → 1×1 (``pool_features``).
    Output ``224 + pool_features`` channels."""

    pool_features: int = 32

    @nn.compact
    def __call__(self, x, *, train: bool):
        t = dict(train=train)
        b1 = self.conv(64, 1, "branch1x1")(x, **t)
        b5 = self.conv(64, 5, "branch5x5_2")(self.conv(48, 1, "branch5x5_1")(x, **t), **t)
        b3 = self.conv(64, 1, "branch3x3dbl_1")(x, **t)
        b3 = self.conv(96, 3, "branch3x3dbl_3")(self.conv(96, 3, "branch3x3dbl_2")(b3, **t), **t)
        bp = self.conv(self.pool_features, 1, "branch_pool")(_avg3(x), **t)
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(_Mixed):
    """35 → 17 reduction: 3×3/2 (384) | 1×1 → 3×3 → 3×3/2 (96) | 3×3/2 max pool.
    Output ``480 + C_in`` channels."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        t = dict(train=train)
        b3 = self.conv(384, 3, "branch3x3", strides=2, padding=_VALID)(x, **t)
        bd = self.conv(64, 1, "branch3x3dbl_1")(x, **t)
        bd = self.conv(96, 3, "branch3x3dbl_2")(bd, **t)
        bd = self.conv(96, 3, "branch3x3dbl_3", strides=2, padding=_VALID)(bd, **t)
        bp = max_pool_2d(x, 3, 2)
        return jnp.concatenate([b3, bd, bp], axis=-1)


class InceptionC(_Mixed):
    """17×17 module with factorised 7×7: 1×1 | 1×1 → 1×7 → 7×1 | 1×1 → 7×1 → 1×7 → 7×1 → 1×7 |
    avg pool → 1×1. ``channels_7x7`` inner width; output 768 channels."""

    channels_7x7: int = 128

    @nn.compact
    def __call__(self, x, *, train: bool):
        t, c7 = dict(train=train), self.channels_7x7
        b1 = self.conv(192, 1, "branch1x1")(x, **t)
        b7 = self.conv(c7, 1, "branch7x7_1")(x, **t)
        b7 = self.conv(c7, (1, 7), "branch7x7_2")(b7, **t)
        b7 = self.conv(192, (7, 1), "branch7x7_3")(b7, **t)
        bd = self.conv(c7, 1, "branch7x7dbl_1")(x, **t)
        bd = self.conv(c7, (7, 1), "branch7x7dbl_2")(bd, **t)
        bd = self.conv(c7, (1, 7), "branch7x7dbl_3")(bd, **t)
        bd = self.conv(c7, (7, 1), "branch7x7dbl_4")(bd, **t)
        bd = self.conv(192, (1, 7), "branch7x7dbl_5")(bd, **t)
        bp = self.conv(192, 1, "branch_pool")(_avg3(x), **t)
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(_Mixed):
    """17 → 8 reduction: 1×1 → 3×3/2 (320) | 1×1 → 1×7 → 7×1 → 3×3/2 (192) | 3×3/2 max pool.
    Output ``512 + C_in`` channels."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        t = dict(train=train)
        b3 = self.conv(192, 1, "branch3x3_1")(x, **t)
        b3 = self.conv(320, 3, "branch3x3_2", strides=2, padding=_VALID)(b3, **t)
        b7 = self.conv(192, 1, "branch7x7x3_1")(x, **t)
        b7 = self.conv(192, (1, 7), "branch7x7x3_2")(b7, **t)
        b7 = self.conv(192, (7, 1), "branch7x7x3_3")(b7, **t)
        b7 = self.conv(192, 3, "branch7x7x3_4", strides=2, padding=_VALID)(b7, **t)
        bp = max_pool_2d(x, 3, 2)
        return jnp.concatenate([b3, b7, bp], axis=-1)


class InceptionE(_Mixed):
    """8×8 module with expanded filter banks: 1×1 (320) | 1×1 → (1×3 ‖ 3×1) (768) |
    1×1 → 3×3 → (1×3 ‖ 3×1) (768) | avg pool → 1×1 (192). Output 2048 channels."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        t = dict(train=train)
        b1 = self.conv(320, 1, "branch1x1")(x, **t)
        b3 = self.conv(384, 1, "branch3x3_1")(x, **t)
        b3 = jnp.concatenate([self.conv(384, (1, 3), "branch3x3_2a")(b3, **t),
                              self.conv(384, (3, 1), "branch3x3_2b")(b3, **t)], axis=-1)
        bd = self.conv(448, 1, "branch3x3dbl_1")(x, **t)
        bd = self.conv(384, 3, "branch3x3dbl_2")(bd, **t)
        bd = jnp.concatenate([self.conv(384, (1, 3), "branch3x3dbl_3a")(bd, **t),
                              self.conv(384, (3, 1), "branch3x3dbl_3b")(bd, **t)], axis=-1)
        bp = self.conv(192, 1, "branch_pool")(_avg3(x), **t)
        return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionAux(_Mixed):
    """Auxiliary classifier on the 17×17 grid: 5×5/3 avg pool, 1×1 conv (128), 5×5 conv (768,
    unpadded), global average pool, linear. ``[B, H, W, C] → [B, num_classes]``."""

    num_classes: int = 1000

    @nn.compact
    def __call__(self, x, *, train: bool):
        if min(x.shape[1:3]) < 17:
            raise ValueError("the auxiliary classifier needs a 17×17 mixed_6e map (input >= 299×299); "
                             f"got {x.shape[1]}×{x.shape[2]}")
        x = nn.avg_pool(x, (5, 5), strides=(3, 3))
        x = self.conv(128, 1, "conv0")(x, train=train)
        x = self.conv(768, 5, "conv1", padding=_VALID,
                      kernel_init=nn.initializers.truncated_normal(0.01))(x, train=train)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype,
                        kernel_init=nn.initializers.truncated_normal(0.001), name="fc")(x)


class InceptionV3(nn.Module):
    """Inception v3; see the module docstring.

    Attributes:
      num_classes: classifier width; 0 for none (``logits`` is None).
      aux_logits: build the auxiliary classifier (``features["aux"]`` when ``train=True``).
      dropout_rate: before the classifier (0.5).
      bn_epsilon: BatchNorm epsilon (1e-5; torchvision's ``BasicConv2d`` uses 1e-3).
      transform_input: first map an ImageNet-normalised input to the ``(v − 0.5) / 0.5``
        normalisation (torchvision's ``transform_input``, on for its pretrained weights; see
        :func:`~vai_jax.backbones.base.imagenet_to_inception_input`).
      dtype, param_dtype, bn_axis_name: compute dtype, parameter dtype, ``pmap`` BN axis.

    ``__call__(x, *, train)``: ``x`` ``[B, H, W, C]`` floating, ``H, W >= 75`` →
    ``(logits [B, num_classes] or None, features)``.
    """

    num_classes: int = 1000
    aux_logits: bool = False
    dropout_rate: float = 0.5
    bn_epsilon: float = 1e-5
    transform_input: bool = False
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    @property
    def feature_info(self) -> tuple[FeatureInfo, ...]:
        """(name, channels, stride) of ``"stem"``, ``"stage1"`` … ``"stage4"``."""
        return (FeatureInfo("stem", 64, 2), FeatureInfo("stage1", 192, 4),
                FeatureInfo("stage2", 288, 8), FeatureInfo("stage3", 768, 16),
                FeatureInfo("stage4", 2048, 32))

    @property
    def min_input_size(self) -> int:
        """The smallest ``H`` and ``W`` (pixels) for which every feature map is non-empty."""
        return 75  # unpadded stem convolutions and pools

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = check_image_input(self, x, family="Inception v3", stem="conv2d_1a_3x3/conv/kernel",
                              min_size=self.min_input_size)
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, bn_axis_name=self.bn_axis_name,
                  bn_epsilon=self.bn_epsilon)
        conv = functools.partial(ConvBNAct, **kw)
        t = dict(train=train)
        features = {}
        x = x.astype(self.dtype)
        if self.transform_input:
            x = imagenet_to_inception_input(x)
        x = conv(32, 3, strides=2, padding=_VALID, name="conv2d_1a_3x3")(x, **t)
        x = conv(32, 3, padding=_VALID, name="conv2d_2a_3x3")(x, **t)
        x = conv(64, 3, name="conv2d_2b_3x3")(x, **t)
        features["stem"] = x
        x = max_pool_2d(x, 3, 2)
        x = conv(80, 1, name="conv2d_3b_1x1")(x, **t)
        x = conv(192, 3, padding=_VALID, name="conv2d_4a_3x3")(x, **t)
        features["stage1"] = x
        x = max_pool_2d(x, 3, 2)
        for name, pf in (("mixed_5b", 32), ("mixed_5c", 64), ("mixed_5d", 64)):
            x = features[name] = InceptionA(pool_features=pf, name=name, **kw)(x, **t)
        features["stage2"] = x
        x = features["mixed_6a"] = InceptionB(name="mixed_6a", **kw)(x, **t)
        for name, c7 in (("mixed_6b", 128), ("mixed_6c", 160), ("mixed_6d", 160), ("mixed_6e", 192)):
            x = features[name] = InceptionC(channels_7x7=c7, name=name, **kw)(x, **t)
        features["stage3"] = x
        if self.aux_logits and self.num_classes and (train or self.is_initializing()):
            aux = InceptionAux(num_classes=self.num_classes, name="aux_logits", **kw)(x, **t)
            if train:
                features["aux"] = aux
        x = features["mixed_7a"] = InceptionD(name="mixed_7a", **kw)(x, **t)
        x = features["mixed_7b"] = InceptionE(name="mixed_7b", **kw)(x, **t)
        x = features["mixed_7c"] = InceptionE(name="mixed_7c", **kw)(x, **t)
        features["stage4"] = x
        return pooled_classifier(self, x, train=train), features


MODELS = {"inception_v3": InceptionV3}
