"""Region proposal network head (Ren et al., 2015): a 3x3 conv slid over the feature map, then
sibling 1x1 convs giving, for each of the ``k`` anchors of every position, an objectness logit
and four box deltas."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp


class RPNHead(nn.Module):
    """RPN head shared over feature levels (torchvision ``RPNHead``).

    Attributes:
      num_anchors: anchors per position ``k``.
      features: channels of the 3x3 conv (None: the input's channels).

    ``__call__(features, *, train)``: ``features`` one map ``[B, h, w, C]`` or a sequence of
    maps (FPN levels, same ``C``) -> ``(logits [B, N], deltas [B, N, 4])`` with
    ``N = sum_l h_l * w_l * k`` ordered level by level, then ``(i, j, a)`` — the order of
    :func:`vai_jax.detection.anchors.multilevel_anchors`. Deltas use box-coder weights ``(1, 1, 1, 1)``.
    """

    num_anchors: int
    features: int | None = None
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, features, *, train: bool):
        del train
        maps = [features] if not isinstance(features, (list, tuple)) else list(features)
        ch = self.features or maps[0].shape[-1]
        conv = nn.Conv(ch, (3, 3), padding=1, dtype=self.dtype, param_dtype=self.param_dtype,
                       kernel_init=nn.initializers.normal(0.01), name="conv")
        cls = nn.Conv(self.num_anchors, (1, 1), dtype=self.dtype, param_dtype=self.param_dtype,
                      kernel_init=nn.initializers.normal(0.01), name="cls_logits")
        reg = nn.Conv(4 * self.num_anchors, (1, 1), dtype=self.dtype, param_dtype=self.param_dtype,
                      kernel_init=nn.initializers.normal(0.01), name="bbox_pred")
        logits, deltas = [], []
        for f in maps:
            t = nn.relu(conv(f))
            b = f.shape[0]
            logits.append(cls(t).reshape(b, -1))
            deltas.append(reg(t).reshape(b, -1, 4))
        return (jnp.concatenate(logits, 1).astype(jnp.float32),
                jnp.concatenate(deltas, 1).astype(jnp.float32))
