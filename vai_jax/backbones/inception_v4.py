"""Inception v4 and Inception-ResNet-v2 (Szegedy et al., "Inception-v4, Inception-ResNet and
the Impact of Residual Connections on Learning", AAAI 2017), in the layout of the released
TF-slim checkpoints (as ported by Cadene's ``pretrainedmodels`` and timm): every conv is conv
(no bias) + BatchNorm + ReLU; unpadded ("V" in the paper's figures) convs and pools use no
padding; average pools in the branches exclude the padding from the count.

Parameter counts with 1000 classes (computed by this module; the paper gives none):
``inception_v4`` 42,679,816 and ``inception_resnet_v2`` 55,843,464 — timm's/``pretrainedmodels``'
figures for the same layouts ("42.7M" and "55.8M").

Inception-ResNet-v2 scales each residual branch before the addition (§3.3: "scaling down the
residuals before adding them"): 0.17 for the 35×35 blocks, 0.10 for 17×17, 0.20 for 8×8, as in
the released model; the last 8×8 block has scale 1 and no ReLU. ``residual_scales`` overrides
them. The residual branch ends in a 1×1 conv with bias and without BatchNorm.

Both need ``H, W >= 75`` (299×299 is the designed input; strides are nominal: 299 → 149 → 147
→ 73 → 71 → 35 → 17 → 8).
Features — ``inception_v4``: ``"stem"`` (stride 2, 64), ``"stage1"`` (mixed_4a, stride 4, 192),
``"stage2"`` (after the Inception-A blocks, stride 8, 384), ``"stage3"`` (Inception-B, stride 16,
1024), ``"stage4"`` (Inception-C, stride 32, 1536). ``inception_resnet_v2``: ``"stem"`` (stride
2, 64), ``"stage1"`` (conv2d_4a, stride 4, 192), ``"stage2"`` (35×35 blocks, stride 8, 320),
``"stage3"`` (17×17 blocks, stride 16, 1088), ``"stage4"`` (conv2d_7b, stride 32, 1536).
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from vai_jax.backbones.base import FeatureInfo, check_image_input, pooled_classifier
from vai_jax.nn.conv import ConvBNAct
from vai_jax.nn.spp import max_pool_2d

_VALID = ((0, 0), (0, 0))


def _avg3(x):
    return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


class _Block(nn.Module):
    """Common fields; :meth:`chain` runs conv-BN-ReLUs named ``{name}_{j}`` (just ``{name}`` for
    a single conv). Each spec is
    ``(features, kernel)`` or ``(features, kernel, stride)`` — stride-2 convs and ``'V'`` specs
    (``(features, kernel, stride, 'V')``) are unpadded."""

    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    def chain(self, x, specs, name, train):
        for j, spec in enumerate(specs):
            features, kernel, stride = (tuple(spec) + (1,))[:3]
            valid = stride > 1 or (len(spec) > 3 and spec[3] == "V")
            x = ConvBNAct(features, kernel, strides=stride, padding=_VALID if valid else None,
                          dtype=self.dtype, param_dtype=self.param_dtype,
                          bn_axis_name=self.bn_axis_name,
                          name=name if len(specs) == 1 else f"{name}_{j}")(x, train=train)
        return x

    def up(self, x, features, name="up"):
        """The residual branch's final 1×1 conv: bias, no BN, no activation."""
        return ConvBNAct(features, 1, norm=False, act=None, dtype=self.dtype,
                         param_dtype=self.param_dtype, name=name)(x, train=False)


# --------------------------------------------------------------------------- Inception v4
class Mixed3a(_Block):
    """Stem split 1: 3×3/2 max pool ‖ 3×3/2 conv (96). ``64 → 160`` channels."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        return jnp.concatenate([max_pool_2d(x, 3, 2), self.chain(x, [(96, 3, 2)], "branch1", train)], -1)


class Mixed4a(_Block):
    """Stem split 2: 1×1 → 3×3V (96) ‖ 1×1 → 1×7 → 7×1 → 3×3V (96). ``160 → 192``."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        b0 = self.chain(x, [(64, 1), (96, 3, 1, "V")], "branch0", train)
        b1 = self.chain(x, [(64, 1), (64, (1, 7)), (64, (7, 1)), (96, 3, 1, "V")], "branch1", train)
        return jnp.concatenate([b0, b1], -1)


class Mixed5a(_Block):
    """Stem split 3: 3×3/2 conv (192) ‖ 3×3/2 max pool. ``192 → 384``."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        return jnp.concatenate([self.chain(x, [(192, 3, 2)], "branch0", train), max_pool_2d(x, 3, 2)], -1)


class InceptionA(_Block):
    """35×35 block (Fig. 4): 1×1 (96) | 1×1 → 3×3 (96) | 1×1 → 3×3 → 3×3 (96) | avg → 1×1 (96)."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        return jnp.concatenate([
            self.chain(x, [(96, 1)], "branch0", train),
            self.chain(x, [(64, 1), (96, 3)], "branch1", train),
            self.chain(x, [(64, 1), (96, 3), (96, 3)], "branch2", train),
            self.chain(_avg3(x), [(96, 1)], "branch3", train)], -1)


class ReductionA(_Block):
    """35 → 17 (Fig. 7, k=192, l=224, m=256, n=384): 3×3/2 (384) | 1×1 → 3×3 → 3×3/2 (256) |
    max pool. ``384 → 1024``."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        return jnp.concatenate([
            self.chain(x, [(384, 3, 2)], "branch0", train),
            self.chain(x, [(192, 1), (224, 3), (256, 3, 2)], "branch1", train),
            max_pool_2d(x, 3, 2)], -1)


class InceptionB(_Block):
    """17×17 block (Fig. 5): 1×1 (384) | 1×1 → 1×7 → 7×1 (256) | 1×1 → 7×1 → 1×7 → 7×1 → 1×7
    (256) | avg → 1×1 (128). 1024 channels."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        return jnp.concatenate([
            self.chain(x, [(384, 1)], "branch0", train),
            self.chain(x, [(192, 1), (224, (1, 7)), (256, (7, 1))], "branch1", train),
            self.chain(x, [(192, 1), (192, (7, 1)), (224, (1, 7)), (224, (7, 1)), (256, (1, 7))],
                       "branch2", train),
            self.chain(_avg3(x), [(128, 1)], "branch3", train)], -1)


class ReductionB(_Block):
    """17 → 8 (Fig. 8): 1×1 → 3×3/2 (192) | 1×1 → 1×7 → 7×1 → 3×3/2 (320) | max pool.
    ``1024 → 1536``."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        return jnp.concatenate([
            self.chain(x, [(192, 1), (192, 3, 2)], "branch0", train),
            self.chain(x, [(256, 1), (256, (1, 7)), (320, (7, 1)), (320, 3, 2)], "branch1", train),
            max_pool_2d(x, 3, 2)], -1)


class InceptionC(_Block):
    """8×8 block (Fig. 6): 1×1 (256) | 1×1 (384) → (1×3 ‖ 3×1) (512) |
    1×1 (384) → 3×1 (448) → 1×3 (512) → (1×3 ‖ 3×1) (512) | avg → 1×1 (256). 1536 channels."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        b1 = self.chain(x, [(384, 1)], "branch1", train)
        b1 = jnp.concatenate([self.chain(b1, [(256, (1, 3))], "branch1a", train),
                              self.chain(b1, [(256, (3, 1))], "branch1b", train)], -1)
        b2 = self.chain(x, [(384, 1), (448, (3, 1)), (512, (1, 3))], "branch2", train)
        b2 = jnp.concatenate([self.chain(b2, [(256, (1, 3))], "branch2a", train),
                              self.chain(b2, [(256, (3, 1))], "branch2b", train)], -1)
        return jnp.concatenate([self.chain(x, [(256, 1)], "branch0", train), b1, b2,
                                self.chain(_avg3(x), [(256, 1)], "branch3", train)], -1)


def _check_input(module, x, what, stem):
    return check_image_input(module, x, family=what, stem=stem, min_size=module.min_input_size)


class InceptionV4(_Block):
    """Inception v4 (Fig. 9); see the module docstring.

    Attributes:
      num_classes: classifier width; 0 for none (``logits`` is None).
      blocks: number of Inception-A, -B, -C blocks (4, 7, 3).
      dropout_rate: before the classifier (the paper keeps 0.8, i.e. drops 0.2).
      dtype, param_dtype, bn_axis_name: compute dtype, parameter dtype, ``pmap`` BN axis.
    Parameter names: ``stem_0`` … ``stem_2``, ``mixed_3a``, ``mixed_4a``, ``mixed_5a``,
    ``inception_a1`` …, ``reduction_a``, ``inception_b1`` …, ``reduction_b``, ``inception_c1`` …,
    ``fc``; inside a block ``branch{i}_{j}`` (conv-BN-ReLU ``j`` of branch ``i``; ``branch{i}``
    when the branch is one conv).
    ``__call__(x, *, train)``: ``[B, H, W, C]`` floating, ``H, W >= 75`` →
    ``(logits [B, num_classes] or None, features)``.
    """

    num_classes: int = 1000
    blocks: Sequence[int] = (4, 7, 3)
    dropout_rate: float = 0.2

    @property
    def feature_info(self) -> tuple[FeatureInfo, ...]:
        """(name, channels, stride) of ``"stem"``, ``"stage1"`` … ``"stage4"``."""
        return (FeatureInfo("stem", 64, 2), FeatureInfo("stage1", 192, 4),
                FeatureInfo("stage2", 384, 8), FeatureInfo("stage3", 1024, 16),
                FeatureInfo("stage4", 1536, 32))

    @property
    def min_input_size(self) -> int:
        """The smallest ``H`` and ``W`` (pixels) for which every feature map is non-empty."""
        return 75  # unpadded stem convolutions and pools

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = _check_input(self, x, "Inception v4", "stem_0/conv/kernel").astype(self.dtype)
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, bn_axis_name=self.bn_axis_name)
        t = dict(train=train)
        features = {}
        x = features["stem"] = self.chain(x, [(32, 3, 2), (32, 3, 1, "V"), (64, 3)], "stem", train)
        x = Mixed3a(name="mixed_3a", **kw)(x, **t)
        x = features["stage1"] = Mixed4a(name="mixed_4a", **kw)(x, **t)
        x = Mixed5a(name="mixed_5a", **kw)(x, **t)
        na, nb, nc = self.blocks
        for i in range(na):
            x = InceptionA(name=f"inception_a{i + 1}", **kw)(x, **t)
        features["stage2"] = x
        x = ReductionA(name="reduction_a", **kw)(x, **t)
        for i in range(nb):
            x = InceptionB(name=f"inception_b{i + 1}", **kw)(x, **t)
        features["stage3"] = x
        x = ReductionB(name="reduction_b", **kw)(x, **t)
        for i in range(nc):
            x = InceptionC(name=f"inception_c{i + 1}", **kw)(x, **t)
        features["stage4"] = x
        return pooled_classifier(self, x, train=train), features


# --------------------------------------------------------------------------- Inception-ResNet-v2
class Mixed5b(_Block):
    """IRv2 stem output: 1×1 (96) | 1×1 → 5×5 (64) | 1×1 → 3×3 → 3×3 (96) | avg → 1×1 (64).
    ``192 → 320``."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        return jnp.concatenate([
            self.chain(x, [(96, 1)], "branch0", train),
            self.chain(x, [(48, 1), (64, 5)], "branch1", train),
            self.chain(x, [(64, 1), (96, 3), (96, 3)], "branch2", train),
            self.chain(_avg3(x), [(64, 1)], "branch3", train)], -1)


class Block35(_Block):
    """Inception-ResNet-A (Fig. 16): ``x + scale · up(1×1 (32) | 1×1 → 3×3 (32) |
    1×1 → 3×3 (48) → 3×3 (64))``, then ReLU. 320 channels."""

    scale: float = 0.17

    @nn.compact
    def __call__(self, x, *, train: bool):
        r = jnp.concatenate([
            self.chain(x, [(32, 1)], "branch0", train),
            self.chain(x, [(32, 1), (32, 3)], "branch1", train),
            self.chain(x, [(32, 1), (48, 3), (64, 3)], "branch2", train)], -1)
        return nn.relu(x + self.scale * self.up(r, x.shape[-1]))


class Block17(_Block):
    """Inception-ResNet-B (Fig. 17): ``x + scale · up(1×1 (192) | 1×1 → 1×7 (160) → 7×1 (192))``,
    then ReLU. 1088 channels."""

    scale: float = 0.10

    @nn.compact
    def __call__(self, x, *, train: bool):
        r = jnp.concatenate([
            self.chain(x, [(192, 1)], "branch0", train),
            self.chain(x, [(128, 1), (160, (1, 7)), (192, (7, 1))], "branch1", train)], -1)
        return nn.relu(x + self.scale * self.up(r, x.shape[-1]))


class Block8(_Block):
    """Inception-ResNet-C (Fig. 19): ``x + scale · up(1×1 (192) | 1×1 → 1×3 (224) → 3×1 (256))``,
    then ReLU unless ``relu=False``. 2080 channels."""

    scale: float = 0.20
    relu: bool = True

    @nn.compact
    def __call__(self, x, *, train: bool):
        r = jnp.concatenate([
            self.chain(x, [(192, 1)], "branch0", train),
            self.chain(x, [(192, 1), (224, (1, 3)), (256, (3, 1))], "branch1", train)], -1)
        y = x + self.scale * self.up(r, x.shape[-1])
        return nn.relu(y) if self.relu else y


class Mixed6a(_Block):
    """35 → 17 (Reduction-A, k=256, l=256, m=384, n=384): 3×3/2 (384) | 1×1 → 3×3 → 3×3/2 (384) |
    max pool. ``320 → 1088``."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        return jnp.concatenate([
            self.chain(x, [(384, 3, 2)], "branch0", train),
            self.chain(x, [(256, 1), (256, 3), (384, 3, 2)], "branch1", train),
            max_pool_2d(x, 3, 2)], -1)


class Mixed7a(_Block):
    """17 → 8 (Reduction-B, Fig. 18): 1×1 → 3×3/2 (384) | 1×1 → 3×3/2 (288) |
    1×1 → 3×3 (288) → 3×3/2 (320) | max pool. ``1088 → 2080``."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        return jnp.concatenate([
            self.chain(x, [(256, 1), (384, 3, 2)], "branch0", train),
            self.chain(x, [(256, 1), (288, 3, 2)], "branch1", train),
            self.chain(x, [(256, 1), (288, 3), (320, 3, 2)], "branch2", train),
            max_pool_2d(x, 3, 2)], -1)


class InceptionResNetV2(_Block):
    """Inception-ResNet-v2 (Fig. 15 with the Fig. 14 stem as released); see the module docstring.

    Attributes:
      num_classes: classifier width; 0 for none (``logits`` is None).
      blocks: number of 35×35, 17×17 and 8×8 residual blocks (10, 20, 10; the last 8×8 block
        has scale 1 and no ReLU).
      residual_scales: residual scaling of the three block kinds (0.17, 0.10, 0.20).
      dropout_rate: before the classifier (0.2).
      dtype, param_dtype, bn_axis_name: compute dtype, parameter dtype, ``pmap`` BN axis.
    Parameter names: ``conv2d_1a`` … ``conv2d_4a``, ``mixed_5b``, ``block35_1`` …, ``mixed_6a``,
    ``block17_1`` …, ``mixed_7a``, ``block8_1`` …, ``conv2d_7b``, ``fc``; inside a residual block
    ``branch{i}_{j}`` and ``up`` (the 1×1 conv with bias).
    ``__call__(x, *, train)``: ``[B, H, W, C]`` floating, ``H, W >= 75`` →
    ``(logits [B, num_classes] or None, features)``.
    """

    num_classes: int = 1000
    blocks: Sequence[int] = (10, 20, 10)
    residual_scales: Sequence[float] = (0.17, 0.10, 0.20)
    dropout_rate: float = 0.2

    @property
    def feature_info(self) -> tuple[FeatureInfo, ...]:
        """(name, channels, stride) of ``"stem"``, ``"stage1"`` … ``"stage4"``."""
        return (FeatureInfo("stem", 64, 2), FeatureInfo("stage1", 192, 4),
                FeatureInfo("stage2", 320, 8), FeatureInfo("stage3", 1088, 16),
                FeatureInfo("stage4", 1536, 32))

    @property
    def min_input_size(self) -> int:
        """The smallest ``H`` and ``W`` (pixels) for which every feature map is non-empty."""
        return 75  # unpadded stem convolutions and pools

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = _check_input(self, x, "Inception-ResNet-v2", "conv2d_1a/conv/kernel").astype(self.dtype)
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, bn_axis_name=self.bn_axis_name)
        t = dict(train=train)
        features = {}
        x = self.chain(x, [(32, 3, 2)], "conv2d_1a", train)
        x = self.chain(x, [(32, 3, 1, "V")], "conv2d_2a", train)
        x = features["stem"] = self.chain(x, [(64, 3)], "conv2d_2b", train)
        x = max_pool_2d(x, 3, 2)
        x = self.chain(x, [(80, 1)], "conv2d_3b", train)
        x = features["stage1"] = self.chain(x, [(192, 3, 1, "V")], "conv2d_4a", train)
        x = max_pool_2d(x, 3, 2)
        x = Mixed5b(name="mixed_5b", **kw)(x, **t)
        n35, n17, n8 = self.blocks
        s35, s17, s8 = self.residual_scales
        for i in range(n35):
            x = Block35(scale=s35, name=f"block35_{i + 1}", **kw)(x, **t)
        features["stage2"] = x
        x = Mixed6a(name="mixed_6a", **kw)(x, **t)
        for i in range(n17):
            x = Block17(scale=s17, name=f"block17_{i + 1}", **kw)(x, **t)
        features["stage3"] = x
        x = Mixed7a(name="mixed_7a", **kw)(x, **t)
        for i in range(n8):
            last = i == n8 - 1
            x = Block8(scale=1.0 if last else s8, relu=not last, name=f"block8_{i + 1}", **kw)(x, **t)
        x = features["stage4"] = self.chain(x, [(1536, 1)], "conv2d_7b", train)
        return pooled_classifier(self, x, train=train), features


MODELS = {
    "inception_v4": InceptionV4,
    "inception_resnet_v2": InceptionResNetV2,
}
