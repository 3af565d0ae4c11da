"""DenseNet-BC (Huang et al. 2017), torchvision layout: 7×7/2 conv-BN-ReLU stem, 3×3/2 max-pool,
dense blocks joined by compressing transitions, final BN-ReLU, global average pool, linear.

Features: ``"stem"`` (stride 2, before the max-pool), ``"stage1"`` … ``"stage4"`` (each dense
block's output, after the preceding transition; ``stage4`` includes the final BN-ReLU), strides
4, 8, 16, 32 (transitions floor odd sizes). Parameter names: ``stem/conv``, ``stageI/layerJ/conv1``,
``transitionI/conv``, ``final_bn``, ``fc``.
"""
from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from vai_jax.backbones.base import FeatureInfo, batch_norm, check_image_input
from vai_jax.nn.conv import ConvBNAct
from vai_jax.nn.dense import DenseBlock, Transition



def _densenet_size(side: int, blocks: int) -> int:
    """Side of the last dense block's map for an input of side ``side``."""
    side = (side - 1) // 2 + 1  # 7x7/2 conv, padding 3
    side = (side - 1) // 2 + 1  # 3x3/2 max pool, padding 1
    for _ in range(blocks - 1):  # 2x2/2 average-pooling transitions, floor
        side //= 2
    return side


class DenseNet(nn.Module):
    """DenseNet-BC.

    Attributes:
      growth_rate: ``k``, channels each dense layer adds.
      block_config: layers per dense block.
      num_init_features: stem width.
      bn_size: bottleneck width factor (``bn_size · k`` channels in each layer's 1×1 conv).
      compression: transitions keep ``int(C · compression)`` channels.
      drop_rate: dropout after each dense layer (``'dropout'`` rng when ``train``; default 0).
      num_classes: classifier width, 0 for none.
    ``__call__(x [B, H, W, 3], *, train)`` → ``(logits | None, features)``.
    """

    growth_rate: int = 32
    block_config: Sequence[int] = (6, 12, 24, 16)
    num_init_features: int = 64
    bn_size: int = 4
    compression: float = 0.5
    drop_rate: float = 0.0
    num_classes: int = 1000
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    def _transition_widths(self):
        widths, c = [], self.num_init_features
        for i, n in enumerate(self.block_config):
            c += n * self.growth_rate
            widths.append(c)
            c = int(c * self.compression)
        return widths

    @property
    def feature_info(self) -> tuple[FeatureInfo, ...]:
        """(name, channels, stride) of the stem and each dense block, from the fields alone."""
        return (FeatureInfo("stem", self.num_init_features, 2),) + tuple(
            FeatureInfo(f"stage{i + 1}", c, 4 * 2 ** i)
            for i, c in enumerate(self._transition_widths()))

    @property
    def min_input_size(self) -> int:
        """The smallest ``H`` and ``W`` (pixels) for which every feature map is non-empty."""
        s = 1
        while _densenet_size(s, len(self.block_config)) < 1:
            s += 1
        return s

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = check_image_input(self, x, family="DenseNet", stem="stem/conv/kernel",
                              min_size=self.min_input_size)
        common = dict(dtype=self.dtype, param_dtype=self.param_dtype,
                      bn_axis_name=self.bn_axis_name)
        features = {}
        x = ConvBNAct(self.num_init_features, 7, strides=2, **common,
                      name="stem")(x.astype(self.dtype), train=train)
        features["stem"] = x
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        widths = self._transition_widths()
        for i, n in enumerate(self.block_config):
            if i:
                x = Transition(int(widths[i - 1] * self.compression), **common,
                               name=f"transition{i}")(x, train=train)
            x = DenseBlock(n, self.growth_rate, self.bn_size, self.drop_rate, **common,
                           name=f"stage{i + 1}")(x, train=train)
            if i == len(self.block_config) - 1:
                x = nn.relu(batch_norm(train=train, dtype=self.dtype, param_dtype=self.param_dtype,
                                       axis_name=self.bn_axis_name)(name="final_bn")(x))
            features[f"stage{i + 1}"] = x
        if not self.num_classes:
            return None, features
        logits = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype,
                          name="fc")(jnp.mean(x, axis=(1, 2)))
        return logits, features


MODELS = {
    "densenet121": functools.partial(DenseNet, growth_rate=32, block_config=(6, 12, 24, 16),
                                     num_init_features=64),
    "densenet161": functools.partial(DenseNet, growth_rate=48, block_config=(6, 12, 36, 24),
                                     num_init_features=96),
    "densenet169": functools.partial(DenseNet, growth_rate=32, block_config=(6, 12, 32, 32),
                                     num_init_features=64),
    "densenet201": functools.partial(DenseNet, growth_rate=32, block_config=(6, 12, 48, 32),
                                     num_init_features=64),
}
