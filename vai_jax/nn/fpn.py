"""Feature pyramid network (Lin et al., 2017): lateral 1x1 convs, top-down nearest up-sampling
and 3x3 output convs, all levels with the same width."""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class FPN(nn.Module):
    """Attributes: features (output channels of every level).

    ``__call__(maps, *, train)``: maps ``[B, H_l, W_l, C_l]`` finest first, each level half the
    size of the previous (strides doubling) -> list of ``[B, H_l, W_l, features]``.
    """

    features: int = 64
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, maps: Sequence[jax.Array], *, train: bool):
        del train
        conv = lambda k, name: nn.Conv(self.features, (k, k), padding=k // 2, dtype=self.dtype,
                                       param_dtype=self.param_dtype, name=name)
        laterals = [conv(1, f"inner{i}")(m) for i, m in enumerate(maps)]
        outs = [None] * len(maps)
        top = laterals[-1]
        outs[-1] = conv(3, f"layer{len(maps) - 1}")(top)
        for i in range(len(maps) - 2, -1, -1):
            h, w = laterals[i].shape[1:3]
            up = jnp.repeat(jnp.repeat(top, 2, axis=1), 2, axis=2)[:, :h, :w]
            top = laterals[i] + up
            outs[i] = conv(3, f"layer{i}")(top)
        return outs
