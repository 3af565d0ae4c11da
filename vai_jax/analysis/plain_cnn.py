"""A small VGG-style network whose every layer width is a field: what the analysis tools train
on the built-in data and what :mod:`vai_jax.analysis.pruning` shrinks.

``conv1 … convN`` are 3×3 conv-BN-ReLU (:class:`vai_jax.nn.ConvBNAct`, parameter names
``convI/conv``, ``convI/bn``); a 2×2/2 max-pool follows the convolutions listed in
``pool_after``; then global average pooling and the linear classifier ``fc``. Because the pool
is global and average, channel ``c`` of the last convolution feeds exactly row ``c`` of ``fc``.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from vai_jax._validation import check_array
from vai_jax.backbones.base import FeatureInfo
from vai_jax.nn.conv import ConvBNAct


class PlainCNN(nn.Module):
    """Attributes:
      widths: output channels of ``conv1 … convN``.
      pool_after: 1-based indices of the convolutions followed by a 2×2/2 max-pool.
      num_classes: classifier width (0: no classifier, ``logits`` is None).

    ``__call__(x [B, H, W, C], *, train)`` → ``(logits [B, num_classes], features)`` with
    ``features["convI"]`` the output of ``convI`` (after ReLU, before its pool), ``[B, H/s, W/s,
    widths[I-1]]`` for the stride ``s`` in :attr:`feature_info`.
    """

    widths: Sequence[int] = (16, 16, 32, 32, 64, 64)
    pool_after: Sequence[int] = (2, 4)
    num_classes: int = 6
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @property
    def feature_info(self) -> tuple[FeatureInfo, ...]:
        info, stride = [], 1
        for i, w in enumerate(self.widths):
            info.append(FeatureInfo(f"conv{i + 1}", int(w), stride))
            if i + 1 in self.pool_after:
                stride *= 2
        return tuple(info)

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = check_array(x, "x", ndim=4, kind="floating", shape_hint="[B, H, W, C]")
        if any(int(w) < 1 for w in self.widths):
            raise ValueError(f"widths must be >= 1; got {tuple(self.widths)}")
        x = x.astype(self.dtype)
        features = {}
        for i, w in enumerate(self.widths):
            x = ConvBNAct(int(w), 3, dtype=self.dtype, param_dtype=self.param_dtype,
                          name=f"conv{i + 1}")(x, train=train)
            features[f"conv{i + 1}"] = x
            if i + 1 in self.pool_after:
                x = nn.max_pool(x, (2, 2), strides=(2, 2))
        if not self.num_classes:
            return None, features
        logits = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype,
                          name="fc")(jnp.mean(x, axis=(1, 2)))
        return logits, features
