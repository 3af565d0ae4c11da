"""The fire module of SqueezeNet (Iandola et al., 2016, §3.2)."""
from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax.numpy as jnp

from vai_jax._validation import check_array, check_int
from vai_jax.nn.conv import ConvBNAct


class Fire(nn.Module):
    """Squeeze (``1×1``, ``squeeze`` channels) then expand (``1×1`` with ``expand1x1`` channels
    and ``3×3`` with ``expand3x3`` channels, concatenated in that order), ReLU after each conv.

    Output channels: ``expand1x1 + expand3x3``. With ``bypass=True`` (the paper's "simple
    bypass", §6) the input is added to the concatenated output; this needs
    ``C_in == expand1x1 + expand3x3``.

    Attributes:
      squeeze, expand1x1, expand3x3: channel counts (the paper's s1x1, e1x1, e3x3).
      bypass: add the input (identity shortcut).
      norm: BatchNorm after each conv (the paper and torchvision use none: convs have biases).
    Param names: ``squeeze/conv``, ``expand1x1/conv``, ``expand3x3/conv`` (``kernel``, ``bias``).
    Input ``[B, H, W, C_in]`` → ``[B, H, W, expand1x1 + expand3x3]``.
    """

    squeeze: int
    expand1x1: int
    expand3x3: int
    bypass: bool = False
    norm: bool = False
    act: Callable = nn.relu
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None
    kernel_init: Callable = nn.initializers.kaiming_uniform()

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = check_array(x, "x", ndim=4, kind="floating", shape_hint="[B, H, W, C]")
        for field in ("squeeze", "expand1x1", "expand3x3"):
            check_int(getattr(self, field), field, ge=1)
        out_ch = self.expand1x1 + self.expand3x3
        if self.bypass and x.shape[-1] != out_ch:
            raise ValueError(f"bypass=True needs input channels == expand1x1 + expand3x3 = {out_ch}; "
                             f"got input with {x.shape[-1]} channels")
        common = dict(norm=self.norm, act=self.act, dtype=self.dtype, param_dtype=self.param_dtype,
                      bn_axis_name=self.bn_axis_name, kernel_init=self.kernel_init)
        s = ConvBNAct(self.squeeze, 1, name="squeeze", **common)(x, train=train)
        e1 = ConvBNAct(self.expand1x1, 1, name="expand1x1", **common)(s, train=train)
        e3 = ConvBNAct(self.expand3x3, 3, name="expand3x3", **common)(s, train=train)
        y = jnp.concatenate([e1, e3], axis=-1)
        return y + x if self.bypass else y
