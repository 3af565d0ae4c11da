"""VGG (Simonyan & Zisserman 2015), the configurations of the paper's Table 1, in torchvision's
layout: conv stages, adaptive average pooling to 7×7 (so any input ≥ 32 px works), and the
4096-4096-classes classifier with dropout.

Names: ``vgg11`` (A), ``vgg11_lrn`` (A-LRN: local response normalisation after the first
conv's ReLU), ``vgg13`` (B), ``vgg16_c`` (C: the last conv of stages 3-5 is 1×1), ``vgg16`` (D),
``vgg19`` (E), and ``_bn`` variants (conv with bias, then BatchNorm, as torchvision).

Features: ``"stage1"`` … ``"stage5"``, each after its 2×2/2 max-pool (stride 2 … 32; odd sizes
are floored). Parameter names: ``stageI/convJ/conv`` (+ ``/bn``), ``fc1``, ``fc2``, ``fc3``.
``num_classes=0`` drops the whole classifier (fc1-fc3).
"""
from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from vai_jax.backbones.base import FeatureInfo, check_image_input
from vai_jax.nn.conv import ConvBNAct
from vai_jax.nn.lrn import local_response_norm
from vai_jax.nn.spp import adaptive_pool_2d

# Kernel size of each conv, per stage (paper Table 1). Stage widths 64, 128, 256, 512, 512.
CONFIGS = {
    "A": ((3,), (3,), (3, 3), (3, 3), (3, 3)),
    "B": ((3, 3), (3, 3), (3, 3), (3, 3), (3, 3)),
    "C": ((3, 3), (3, 3), (3, 3, 1), (3, 3, 1), (3, 3, 1)),
    "D": ((3, 3), (3, 3), (3, 3, 3), (3, 3, 3), (3, 3, 3)),
    "E": ((3, 3), (3, 3), (3, 3, 3, 3), (3, 3, 3, 3), (3, 3, 3, 3)),
}


class VGGStage(nn.Module):
    """Convolutions ``conv1 … convN`` (kernel sizes ``kernels``, ReLU, optional BN), optional
    LRN after ``conv1``, then a 2×2/2 max-pool (floor). ``[B, H, W, C]`` → ``[B, H//2, W//2,
    features]``."""

    features: int
    kernels: Sequence[int]
    batch_norm: bool = False
    lrn: bool = False
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x, *, train: bool):
        for j, k in enumerate(self.kernels):
            x = ConvBNAct(self.features, k, norm=self.batch_norm, use_bias=True,
                          kernel_init=nn.initializers.variance_scaling(2.0, "fan_out", "normal"),
                          dtype=self.dtype, param_dtype=self.param_dtype,
                          bn_axis_name=self.bn_axis_name, name=f"conv{j + 1}")(x, train=train)
            if self.lrn and j == 0:
                # Krizhevsky's constants (k=2, n=5, α=1e-4 on the plain sum, β=0.75), which the
                # VGG paper reuses; local_response_norm divides alpha by size, hence 5·1e-4.
                x = local_response_norm(x, size=5, alpha=5e-4, beta=0.75, k=2.0)
        return nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")


class VGG(nn.Module):
    """VGG network.

    Attributes:
      config: per-stage conv kernel sizes (see :data:`CONFIGS`).
      num_classes: classifier width, 0 for no classifier.
      widths: per-stage channels (64, 128, 256, 512, 512).
      batch_norm: BN after every conv.
      lrn: LRN after the first conv (A-LRN).
      hidden: width of fc1/fc2 (4096).
      dropout_rate: dropout before fc2 and fc3 (uses the ``'dropout'`` rng when ``train``).
      pool_size: adaptive average pool size before the classifier (7).
    ``__call__(x [B, H, W, 3], *, train)`` → ``(logits [B, num_classes] | None, features)``.
    """

    config: Sequence[Sequence[int]] = CONFIGS["D"]
    num_classes: int = 1000
    widths: Sequence[int] = (64, 128, 256, 512, 512)
    batch_norm: bool = False
    lrn: bool = False
    hidden: int = 4096
    dropout_rate: float = 0.5
    pool_size: int = 7
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    @property
    def feature_info(self) -> tuple[FeatureInfo, ...]:
        """(name, channels, stride) of each stage, from the fields alone."""
        if len(self.widths) != len(self.config):
            raise ValueError(f"widths must have {len(self.config)} entries; got {self.widths!r}")
        return tuple(FeatureInfo(f"stage{i + 1}", w, 2 ** (i + 1))
                     for i, w in enumerate(self.widths))

    @property
    def min_input_size(self) -> int:
        """The smallest ``H`` and ``W`` (pixels) for which every feature map is non-empty."""
        return 2 ** len(self.config)  # a 2x2/2 pool ends every stage

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = check_image_input(self, x, family="VGG", stem="stage1/conv1/conv/kernel",
                              min_size=self.min_input_size)
        info = self.feature_info
        x = x.astype(self.dtype)
        features = {}
        for i, (f, kernels) in enumerate(zip(info, self.config)):
            x = VGGStage(f.channels, tuple(kernels), batch_norm=self.batch_norm,
                         lrn=self.lrn and i == 0, dtype=self.dtype, param_dtype=self.param_dtype,
                         bn_axis_name=self.bn_axis_name, name=f.name)(x, train=train)
            features[f.name] = x
        if not self.num_classes:
            return None, features
        x = adaptive_pool_2d(x, self.pool_size, reduce="avg")
        x = x.reshape(x.shape[0], -1)
        dense = functools.partial(nn.Dense, dtype=self.dtype, param_dtype=self.param_dtype)
        x = nn.relu(dense(self.hidden, name="fc1")(x))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = nn.relu(dense(self.hidden, name="fc2")(x))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return dense(self.num_classes, name="fc3")(x), features


MODELS = {
    "vgg11": functools.partial(VGG, config=CONFIGS["A"]),
    "vgg11_lrn": functools.partial(VGG, config=CONFIGS["A"], lrn=True),
    "vgg13": functools.partial(VGG, config=CONFIGS["B"]),
    "vgg16_c": functools.partial(VGG, config=CONFIGS["C"]),
    "vgg16": functools.partial(VGG, config=CONFIGS["D"]),
    "vgg19": functools.partial(VGG, config=CONFIGS["E"]),
    "vgg11_bn": functools.partial(VGG, config=CONFIGS["A"], batch_norm=True),
    "vgg13_bn": functools.partial(VGG, config=CONFIGS["B"], batch_norm=True),
    "vgg16_c_bn": functools.partial(VGG, config=CONFIGS["C"], batch_norm=True),
    "vgg16_bn": functools.partial(VGG, config=CONFIGS["D"], batch_norm=True),
    "vgg19_bn": functools.partial(VGG, config=CONFIGS["E"], batch_norm=True),
}
