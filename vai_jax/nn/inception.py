"""The Inception module of GoogLeNet (Szegedy et al., 2015, Fig. 2), naive and with 1×1
dimension reductions."""
from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax.numpy as jnp

from vai_jax._validation import check_array, check_int
from vai_jax.nn.conv import ConvBNAct
from vai_jax.nn.spp import max_pool_2d


class InceptionModule(nn.Module):
    """Four parallel branches concatenated along channels, in this order:

    1. ``1×1`` conv, ``ch1x1`` channels;
    2. ``1×1`` reduce (``ch3x3red``) → ``3×3`` conv, ``ch3x3`` channels;
    3. ``1×1`` reduce (``ch5x5red``) → ``5×5`` conv, ``ch5x5`` channels;
    4. ``3×3`` stride-1 max pool → ``1×1`` projection, ``pool_proj`` channels.

    ``naive=True`` is Fig. 2(a): no reductions and no pool projection, so the output has
    ``ch1x1 + ch3x3 + ch5x5 + C_in`` channels (``ch3x3red``, ``ch5x5red``, ``pool_proj`` are
    ignored). Otherwise the output has ``ch1x1 + ch3x3 + ch5x5 + pool_proj`` channels.
    Every conv is followed by ReLU; ``norm=False`` (the paper) gives convs a bias and no
    BatchNorm, ``norm=True`` drops the bias and adds BatchNorm. Spatial size is preserved.

    Attributes:
      ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj: the columns of the paper's Table 1.
      naive: Fig. 2(a) instead of Fig. 2(b).
      kernel5x5: kernel of the "5×5" branch; 5 as in the paper (torchvision's GoogLeNet uses 3).
      norm: BatchNorm after every conv.
      bn_epsilon: BatchNorm epsilon (1e-5; torchvision's GoogLeNet uses 1e-3).
    Param names: ``branch1x1``, ``branch3x3_reduce``, ``branch3x3``, ``branch5x5_reduce``,
    ``branch5x5``, ``pool_proj`` (each a :class:`~vai_jax.nn.ConvBNAct`).
    Input ``[B, H, W, C_in]`` → ``[B, H, W, C_out]``.
    """

    ch1x1: int
    ch3x3red: int
    ch3x3: int
    ch5x5red: int
    ch5x5: int
    pool_proj: int
    naive: bool = False
    kernel5x5: int = 5
    norm: bool = False
    act: Callable = nn.relu
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None
    bn_epsilon: float = 1e-5
    kernel_init: Callable = nn.initializers.variance_scaling(2.0, "fan_out", "normal")

    def output_channels(self, in_channels: int) -> int:
        """Channels of the output for an input with ``in_channels`` channels."""
        last = in_channels if self.naive else self.pool_proj
        return self.ch1x1 + self.ch3x3 + self.ch5x5 + last

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = check_array(x, "x", ndim=4, kind="floating", shape_hint="[B, H, W, C]")
        for field in ("ch1x1", "ch3x3red", "ch3x3", "ch5x5red", "ch5x5", "pool_proj"):
            check_int(getattr(self, field), field, ge=0 if self.naive else 1)

        def conv(features, k, name):
            return ConvBNAct(features, k, norm=self.norm, act=self.act, dtype=self.dtype,
                             param_dtype=self.param_dtype, bn_axis_name=self.bn_axis_name,
                             bn_epsilon=self.bn_epsilon, kernel_init=self.kernel_init, name=name)

        b1 = conv(self.ch1x1, 1, "branch1x1")(x, train=train)
        b2, b3 = x, x
        if not self.naive:
            b2 = conv(self.ch3x3red, 1, "branch3x3_reduce")(b2, train=train)
            b3 = conv(self.ch5x5red, 1, "branch5x5_reduce")(b3, train=train)
        b2 = conv(self.ch3x3, 3, "branch3x3")(b2, train=train)
        b3 = conv(self.ch5x5, self.kernel5x5, "branch5x5")(b3, train=train)
        b4 = max_pool_2d(x, 3, 1, padding=1)
        if not self.naive:
            b4 = conv(self.pool_proj, 1, "pool_proj")(b4, train=train)
        return jnp.concatenate([b1, b2, b3, b4], axis=-1)
