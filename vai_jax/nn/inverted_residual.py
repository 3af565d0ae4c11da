"""The inverted residual of MobileNetV2 (Sandler et al., "MobileNetV2: Inverted Residuals and
Linear Bottlenecks", CVPR 2018, Fig. 3b and Table 1), with the squeeze-and-excitation and
activation options of MobileNetV3 (Howard et al., "Searching for MobileNetV3", ICCV 2019, §5)."""
from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax.numpy as jnp

from vai_jax._validation import check_array, check_int, check_number
from vai_jax.nn.conv import ConvBNAct
from vai_jax.nn.squeeze_excite import SqueezeExcite


def make_divisible(value: float, divisor: int = 8) -> int:
    """The MobileNets' channel rounding (TF-slim's, as torchvision): the multiple of ``divisor``
    nearest to ``value`` (at least ``divisor``), raised by ``divisor`` when that is more than
    10% below ``value``."""
    divisor = check_int(divisor, "divisor", ge=1)
    check_number(value, "value", gt=0)
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class InvertedResidual(nn.Module):
    """1×1 expansion to ``expanded`` channels (conv-BN-act; skipped when ``expanded`` equals the
    input channels) → ``kernel_size`` depthwise conv with ``strides`` (conv-BN-act) → optional
    squeeze-and-excitation → 1×1 linear projection to ``features`` (conv-BN, no activation);
    the input is added when ``strides == 1`` and the input has ``features`` channels.

    Attributes:
      features: output channels.
      expanded: channels of the expansion and the depthwise conv.
      kernel_size: of the depthwise conv (symmetric PyTorch padding).
      strides: of the depthwise conv (1 or 2).
      act: activation after the expansion and the depthwise conv (ReLU6 in MobileNetV2; ReLU
        or hard-swish in MobileNetV3).
      se_channels: hidden width of the squeeze-and-excitation after the depthwise conv (ReLU,
        then ``se_gate``); 0 for none.
      se_gate: the gate's squashing (hard-sigmoid in MobileNetV3).
      bn_epsilon, bn_momentum: of every BatchNorm (see :class:`~vai_jax.nn.ConvBNAct`).
    Parameter names: ``expand``, ``depthwise``, ``project`` (each ``conv``, ``bn``), ``se``
    (``fc1``, ``fc2``). Input ``[B, H, W, C_in]`` → ``[B, ceil(H / strides), ceil(W / strides),
    features]``.
    """

    features: int
    expanded: int
    kernel_size: int = 3
    strides: int = 1
    act: Callable = nn.relu6
    se_channels: int = 0
    se_gate: Callable = nn.hard_sigmoid
    bn_epsilon: float = 1e-5
    bn_momentum: float = 0.9
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = check_array(x, "x", ndim=4, kind="floating", shape_hint="[B, H, W, C]")
        if self.strides not in (1, 2):
            raise ValueError(f"strides must be 1 or 2; got {self.strides!r}")
        check_int(self.features, "features", ge=1)
        check_int(self.expanded, "expanded", ge=1)
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, bn_axis_name=self.bn_axis_name,
                  bn_epsilon=self.bn_epsilon, bn_momentum=self.bn_momentum)
        c_in = x.shape[-1]
        h = x
        if self.expanded != c_in:
            h = ConvBNAct(self.expanded, 1, act=self.act, name="expand", **kw)(h, train=train)
        h = ConvBNAct(self.expanded, self.kernel_size, strides=self.strides, groups=self.expanded,
                      act=self.act, name="depthwise", **kw)(h, train=train)
        if self.se_channels:
            h = SqueezeExcite(self.se_channels, act=nn.relu, gate=self.se_gate, dtype=self.dtype,
                              param_dtype=self.param_dtype, name="se")(h)
        h = ConvBNAct(self.features, 1, act=None, name="project", **kw)(h, train=train)
        if self.strides == 1 and c_in == self.features:
            h = h + x
        return h
