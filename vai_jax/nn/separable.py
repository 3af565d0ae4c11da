"""Factorised convolutions: spatially separable (n×1 then 1×n), depthwise-separable
(depthwise k×k then point-wise 1×1) and grouped convolution."""
from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from vai_jax.nn.conv import ConvBNAct, same_padding
from vai_jax.ops.conv import conv_general_dilated


class SpatiallySeparableConv(nn.Module):
    """An ``n×n`` convolution factorised into ``n×1`` then ``1×n`` (Inception v3, Szegedy et al.
    2016, §3.2): ``2n·C_in·C_mid``-ish weights instead of ``n²·C_in·C_out``.

    With ``C_in == mid_features == features == C`` and ``norm=False`` the block has exactly
    ``2n·C²`` weights and no bias. Padding is symmetric (``n // 2``), so stride-1 keeps ``H, W``.

    Attributes:
      features: output channels.
      kernel_size: ``n``.
      mid_features: channels between the two convolutions (default ``features``).
      strides: stride of the whole block (the ``n×1`` conv strides along H, ``1×n`` along W).
      norm: BatchNorm after each convolution (then ``use_bias`` is False).
      act: activation after each convolution, or None.
      order: ``"nx1_first"`` (n×1 then 1×n) or ``"1xn_first"``.
    Param names: ``conv_nx1/conv/kernel``, ``conv_1xn/conv/kernel`` (+ ``bn`` when ``norm``).
    Input ``[B, H, W, C_in]`` → ``[B, H', W', features]``.
    """

    features: int
    kernel_size: int = 3
    mid_features: int | None = None
    strides: int | Sequence[int] = 1
    norm: bool = False
    act: Callable | None = None
    order: str = "nx1_first"
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x, *, train: bool):
        if self.order not in ("nx1_first", "1xn_first"):
            raise ValueError(f"order must be 'nx1_first' or '1xn_first'; got {self.order!r}")
        n = self.kernel_size
        sh, sw = (self.strides, self.strides) if isinstance(self.strides, int) else self.strides
        mid = self.features if self.mid_features is None else self.mid_features
        common = dict(norm=self.norm, act=self.act, use_bias=False, dtype=self.dtype,
                      param_dtype=self.param_dtype, bn_axis_name=self.bn_axis_name)
        vertical = dict(kernel_size=(n, 1), strides=(sh, 1), name="conv_nx1")
        horizontal = dict(kernel_size=(1, n), strides=(1, sw), name="conv_1xn")
        first, second = (vertical, horizontal) if self.order == "nx1_first" else (horizontal, vertical)
        x = ConvBNAct(mid, **first, **common)(x, train=train)
        return ConvBNAct(self.features, **second, **common)(x, train=train)


class DepthwiseSeparableConv(nn.Module):
    """Depthwise ``k×k`` convolution (one filter per input channel) then a point-wise ``1×1``
    convolution, each followed by BatchNorm and the activation (MobileNet v1, Howard et al. 2017,
    Fig. 3). Weights: ``k²·C_in + C_in·features`` (+ BN).

    Attributes:
      features: output channels of the point-wise conv.
      kernel_size, strides, dilation: of the depthwise conv (symmetric PyTorch padding).
      norm, act: BatchNorm and activation after both convolutions.
    Param names: ``depthwise/conv/kernel`` ``[k, k, 1, C_in]``, ``pointwise/conv/kernel``.
    Input ``[B, H, W, C_in]`` → ``[B, H / stride, W / stride, features]``.
    """

    features: int
    kernel_size: int = 3
    strides: int = 1
    dilation: int = 1
    norm: bool = True
    act: Callable | None = nn.relu
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x, *, train: bool):
        common = dict(norm=self.norm, act=self.act, dtype=self.dtype, param_dtype=self.param_dtype,
                      bn_axis_name=self.bn_axis_name)
        c_in = x.shape[-1]
        x = ConvBNAct(c_in, self.kernel_size, strides=self.strides, dilation=self.dilation,
                      groups=c_in, name="depthwise", **common)(x, train=train)
        return ConvBNAct(self.features, 1, name="pointwise", **common)(x, train=train)


class GroupedConv(nn.Module):
    """Grouped convolution (AlexNet, ResNeXt, ShuffleNet): the ``C_in`` input channels are split
    into ``groups`` consecutive groups, group ``g`` is convolved with its own
    ``features // groups`` filters, and the outputs are concatenated in group order.
    Weights: ``k²·(C_in / groups)·features``.

    Attributes:
      features: output channels (divisible by ``groups``).
      kernel_size, strides, dilation: as ``nn.Conv``; padding None = symmetric PyTorch padding.
      groups: number of groups (``C_in`` must be divisible by it).
      use_bias: add a bias.
    Param names: ``conv/kernel`` ``[kh, kw, C_in / groups, features]`` (output ``o`` belongs to group
    ``o // (features / groups)``), ``conv/bias``. Input ``[B, H, W, C_in]`` → ``[B, H', W', features]``.
    """

    features: int
    kernel_size: int | Sequence[int] = 1
    groups: int = 1
    strides: int | Sequence[int] = 1
    dilation: int | Sequence[int] = 1
    padding: object = None
    use_bias: bool = False
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    kernel_init: Callable = nn.initializers.variance_scaling(2.0, "fan_out", "normal")

    @nn.compact
    def __call__(self, x, *, train: bool):
        del train
        c_in = x.shape[-1]
        if self.groups < 1 or c_in % self.groups or self.features % self.groups:
            raise ValueError(f"groups={self.groups} must divide both the input channels ({c_in}) "
                             f"and features ({self.features})")
        ks = (self.kernel_size,) * 2 if isinstance(self.kernel_size, int) else tuple(self.kernel_size)
        st = (self.strides,) * 2 if isinstance(self.strides, int) else tuple(self.strides)
        dil = (self.dilation,) * 2 if isinstance(self.dilation, int) else tuple(self.dilation)
        padding = same_padding(ks, dil) if self.padding is None else self.padding
        return nn.Conv(self.features, ks, strides=st, padding=padding, kernel_dilation=dil,
                       feature_group_count=self.groups, use_bias=self.use_bias, dtype=self.dtype,
                       param_dtype=self.param_dtype, kernel_init=self.kernel_init,
                       conv_general_dilated=conv_general_dilated, name="conv")(x)
