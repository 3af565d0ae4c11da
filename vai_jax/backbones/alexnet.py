"""AlexNet, torchvision's single-tower variant (Krizhevsky 2014, "One weird trick"): 64-192-384-
256-256 convolutions with bias and ReLU, no LRN, adaptive average pooling to 6×6, and the
4096-4096-classes classifier with dropout. 61,100,840 parameters at 1000 classes.

Features: ``"stage1"`` (conv1 11×11/4 + 3×3/2 max-pool, stride 8), ``"stage2"`` (conv2 + pool,
stride 16), ``"stage3"`` (conv3-5 + pool, stride 32); pools are unpadded (floor), so sizes are
those of torchvision (224 → 27, 13, 6). Parameter names ``stageI/convJ/conv``, ``fc1``-``fc3``.
``num_classes=0`` drops the whole classifier.
"""
from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from vai_jax.backbones.base import FeatureInfo, check_image_input
from vai_jax.nn.conv import ConvBNAct
from vai_jax.nn.spp import adaptive_pool_2d


class _Convs(nn.Module):
    """Bias + ReLU convolutions ``conv1 …`` (features, kernel, stride, padding), then a 3×3/2
    unpadded max-pool."""

    layers: Sequence[tuple[int, int, int, int]]
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        for j, (f, k, s, p) in enumerate(self.layers):
            x = ConvBNAct(f, k, strides=s, padding=((p, p), (p, p)), norm=False,
                          dtype=self.dtype, param_dtype=self.param_dtype,
                          name=f"conv{j + 1}")(x, train=train)
        return nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")


class AlexNet(nn.Module):
    """AlexNet (torchvision layout).

    Attributes:
      num_classes: classifier width, 0 for no classifier.
      widths: channels of conv1 … conv5 (64, 192, 384, 256, 256).
      hidden: width of fc1 and fc2 (4096).
      dropout_rate: dropout before fc1 and fc2 (``'dropout'`` rng, only when ``train``).
      pool_size: adaptive average pool size before the classifier (6).
      bn_axis_name: accepted for a uniform interface (AlexNet has no BatchNorm).
    ``__call__(x [B, H, W, 3], *, train)`` → ``(logits | None, features)``; inputs must be at
    least 63 px so that the last pool has an output.
    """

    num_classes: int = 1000
    widths: Sequence[int] = (64, 192, 384, 256, 256)
    hidden: int = 4096
    dropout_rate: float = 0.5
    pool_size: int = 6
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    @property
    def feature_info(self) -> tuple[FeatureInfo, ...]:
        """(name, channels, stride) of each stage, from the fields alone."""
        if len(self.widths) != 5:
            raise ValueError(f"widths must have 5 entries; got {self.widths!r}")
        w = self.widths
        return (FeatureInfo("stage1", w[0], 8), FeatureInfo("stage2", w[1], 16),
                FeatureInfo("stage3", w[4], 32))

    @property
    def min_input_size(self) -> int:
        """The smallest ``H`` and ``W`` (pixels) for which every feature map is non-empty."""
        return 63  # 11x11/4 conv, three 3x3/2 pools

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = check_image_input(self, x, family="AlexNet", stem="stage1/conv1/conv/kernel",
                              min_size=self.min_input_size)
        self.feature_info  # validates widths
        w = self.widths
        stages = (((w[0], 11, 4, 2),), ((w[1], 5, 1, 2),),
                  ((w[2], 3, 1, 1), (w[3], 3, 1, 1), (w[4], 3, 1, 1)))
        x = x.astype(self.dtype)
        features = {}
        for i, layers in enumerate(stages):
            x = _Convs(layers, dtype=self.dtype, param_dtype=self.param_dtype,
                       name=f"stage{i + 1}")(x, train=train)
            features[f"stage{i + 1}"] = x
        if not self.num_classes:
            return None, features
        x = adaptive_pool_2d(x, self.pool_size, reduce="avg").reshape(x.shape[0], -1)
        dense = functools.partial(nn.Dense, dtype=self.dtype, param_dtype=self.param_dtype)
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = nn.relu(dense(self.hidden, name="fc1")(x))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = nn.relu(dense(self.hidden, name="fc2")(x))
        return dense(self.num_classes, name="fc3")(x), features


MODELS = {"alexnet": AlexNet}
