"""Convolution + BatchNorm + activation, the block every backbone family is built from."""
from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from vai_jax._validation import check_array, check_int
from vai_jax.nn.norm import batch_norm
from vai_jax.ops.conv import conv_general_dilated


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def same_padding(kernel_size, dilation=1) -> tuple[tuple[int, int], tuple[int, int]]:
    """Symmetric padding ``d·(k − 1) // 2`` per side, PyTorch's ``padding=k // 2`` convention.

    Unlike ``'SAME'`` (which pads asymmetrically for even strides), this keeps the centre of
    output (i, j) at input ``(s·i, s·j)`` in the pixel-centre frame, as torchvision's nets do.
    """
    kh, kw = (check_int(k, "kernel_size", ge=1) for k in _pair(kernel_size))
    dh, dw = (check_int(d, "dilation", ge=1) for d in _pair(dilation))
    ph, pw = dh * (kh - 1) // 2, dw * (kw - 1) // 2
    return ((ph, ph), (pw, pw))


class ConvBNAct(nn.Module):
    """``act(BN(conv(x)))`` on NHWC input.

    Attributes:
      features: output channels.
      kernel_size: int or (kh, kw).
      strides: int or (sh, sw).
      padding: None for symmetric ``same_padding`` (PyTorch convention), else any Flax padding.
      dilation: int or (dh, dw) (atrous convolution).
      groups: feature groups (``groups == in_channels`` is depthwise).
      use_bias: conv bias; defaults to ``not norm`` (a bias before BN is redundant).
      norm: apply BatchNorm.
      act: activation, or None for none.
      bn_axis_name: ``pmap`` axis to synchronise BatchNorm statistics over.
      bn_scale_init: init of the BN scale (``nn.initializers.zeros`` for zero-init residuals).
      bn_epsilon: BatchNorm epsilon (1e-5, PyTorch's default; torchvision's Inception v1/v3
        ``BasicConv2d`` and MobileNetV3 use 1e-3).
      bn_momentum: BatchNorm momentum in Flax's convention (0.9, PyTorch's 0.1; torchvision's
        MobileNetV3 uses 0.99, PyTorch's 0.01).
    Input ``[..., H, W, C_in]`` → output ``[..., H', W', features]``.
    """

    features: int
    kernel_size: int | Sequence[int] = 3
    strides: int | Sequence[int] = 1
    padding: object = None
    dilation: int | Sequence[int] = 1
    groups: int = 1
    use_bias: bool | None = None
    norm: bool = True
    act: Callable | None = nn.relu
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None
    bn_scale_init: Callable = nn.initializers.ones
    bn_epsilon: float = 1e-5
    bn_momentum: float = 0.9
    kernel_init: Callable = nn.initializers.variance_scaling(2.0, "fan_out", "normal")

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = check_array(x, "x", min_ndim=3, kind="floating", shape_hint="[B, H, W, C]")
        check_int(self.features, "features", ge=1)
        groups = check_int(self.groups, "groups", ge=1)
        if x.shape[-1] % groups or self.features % groups:
            raise ValueError(f"groups={groups} must divide the input channels ({x.shape[-1]}) and "
                             f"features ({self.features})")
        padding = same_padding(self.kernel_size, self.dilation) if self.padding is None else self.padding
        use_bias = (not self.norm) if self.use_bias is None else self.use_bias
        x = nn.Conv(self.features, _pair(self.kernel_size), strides=_pair(self.strides),
                    padding=padding, kernel_dilation=_pair(self.dilation),
                    feature_group_count=self.groups, use_bias=use_bias, dtype=self.dtype,
                    param_dtype=self.param_dtype, kernel_init=self.kernel_init,
                    conv_general_dilated=conv_general_dilated, name="conv")(x)
        if self.norm:
            x = batch_norm(train=train, dtype=self.dtype, param_dtype=self.param_dtype,
                           axis_name=self.bn_axis_name, scale_init=self.bn_scale_init,
                           epsilon=self.bn_epsilon, momentum=self.bn_momentum)(name="bn")(x)
        if self.act is not None:
            x = self.act(x)
        return x
