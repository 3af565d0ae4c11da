"""Squeeze-and-excitation (Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018)."""
from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax.numpy as jnp

from vai_jax._validation import check_array


class SqueezeExcite(nn.Module):
    """Channel gating ``x · gate(fc2(act(fc1(mean_hw(x)))))``.

    ``fc1`` (``channels → hidden_channels``) and ``fc2`` (``hidden_channels → channels``) are
    dense layers with bias (1×1 convolutions on the pooled map, as in the paper and torchvision's
    ``SqueezeExcitation``). The SENet paper's reduction ratio ``r`` is ``hidden_channels =
    channels // r`` (r = 16 in SE-ResNet-50).

    Attributes:
      hidden_channels: width of the bottleneck layer.
      act: activation after ``fc1`` (ReLU in the paper).
      gate: squashing of the gate (sigmoid in the paper; MobileNetV3 uses hard-sigmoid).
    Input ``[B, H, W, C]`` (any floating dtype) → output of the same shape.
    """

    hidden_channels: int
    act: Callable = nn.relu
    gate: Callable = nn.sigmoid
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        x = check_array(x, "x", ndim=4, kind="floating", shape_hint="[B, H, W, C]")
        if self.hidden_channels < 1:
            raise ValueError(f"hidden_channels must be >= 1; got {self.hidden_channels}")
        channels = x.shape[-1]
        s = jnp.mean(x, axis=(1, 2), keepdims=True)
        s = nn.Dense(self.hidden_channels, dtype=self.dtype, param_dtype=self.param_dtype,
                     name="fc1")(s)
        s = self.act(s)
        s = nn.Dense(channels, dtype=self.dtype, param_dtype=self.param_dtype, name="fc2")(s)
        return x * self.gate(s)
