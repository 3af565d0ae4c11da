"""Highway layers (Srivastava, Greff & Schmidhuber, "Training Very Deep Networks", NeurIPS 2015):
``y = H(x) · T(x) + x · (1 − T(x))`` with a learned transform gate ``T(x) = sigmoid(W_T x + b_T)``
whose bias starts negative (``transform_bias``), so each layer starts close to carrying its input.
"""
from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax.numpy as jnp

from vai_jax._validation import check_array, check_int
from vai_jax.nn.conv import ConvBNAct


def highway_combine(x, h, t):
    """``h · t + x · (1 − t)``: the highway mix of carry input ``x``, transform ``h`` and gate
    ``t`` in [0, 1]; all three broadcast to one shape (``t`` may have one channel)."""
    return h * t + x * (1.0 - t)


class HighwayDense(nn.Module):
    """Fully connected highway layer on ``[..., D]`` → ``[..., D]``.

    ``H(x) = act(x W_H + b_H)`` (param ``h``), ``T(x) = sigmoid(x W_T + b_T)`` (param ``gate``),
    ``b_T`` initialised to ``transform_bias`` (the paper uses −1 to −3, more negative for deeper
    nets).
    """

    act: Callable = nn.relu
    transform_bias: float = -2.0
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        del train
        x = check_array(x, "x", min_ndim=1, kind="floating", shape_hint="[..., D]")
        d = x.shape[-1]
        h = self.act(nn.Dense(d, dtype=self.dtype, param_dtype=self.param_dtype, name="h")(x))
        t = nn.sigmoid(nn.Dense(d, dtype=self.dtype, param_dtype=self.param_dtype,
                                bias_init=nn.initializers.constant(self.transform_bias),
                                name="gate")(x))
        return highway_combine(x, h, t)


class HighwayConv(nn.Module):
    """Convolutional highway layer on ``[B, H, W, C]`` → same shape.

    ``H(x) = act([BN](conv_k(x)))`` (param ``h``; BN when ``norm``, a modern addition the paper did
    not have), ``T(x) = sigmoid(conv_k(x) + b_T)`` per channel and position (param ``gate``),
    ``b_T`` initialised to ``transform_bias``. Same-size symmetric padding.
    """

    kernel_size: int = 3
    act: Callable = nn.relu
    transform_bias: float = -2.0
    norm: bool = False
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = check_array(x, "x", ndim=4, kind="floating", shape_hint="[B, H, W, C]")
        c, k = x.shape[-1], check_int(self.kernel_size, "kernel_size", ge=1)
        if k % 2 == 0:
            raise ValueError(f"kernel_size must be odd (the gate and the transform keep the "
                             f"size); got {k}")
        h = ConvBNAct(c, k, norm=self.norm, act=self.act, dtype=self.dtype,
                      param_dtype=self.param_dtype, bn_axis_name=self.bn_axis_name,
                      name="h")(x, train=train)
        t = nn.sigmoid(nn.Conv(c, (k, k), padding=((k // 2, k // 2),) * 2, dtype=self.dtype,
                               param_dtype=self.param_dtype,
                               bias_init=nn.initializers.constant(self.transform_bias),
                               name="gate")(x))
        return highway_combine(x, h, t)
