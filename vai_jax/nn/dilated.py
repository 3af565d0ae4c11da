"""Dilated (atrous) convolution helpers and the ESP block of ESPNet (Mehta et al., 2018).

A ``k×k`` convolution with dilation ``d`` samples the input every ``d`` pixels: it covers
``d·(k − 1) + 1`` pixels per side with only ``k²`` weights. Stacking dilations that share a
factor (e.g. rates 2, 4, 8 alone) leaves a regular sub-lattice of the input unused — the
"gridding"/checkerboard artefact that ESPNet's hierarchical feature fusion (HFF) removes by
adding the branch outputs cumulatively before concatenating them.
"""
from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from vai_jax._validation import check_int
from vai_jax.nn.conv import ConvBNAct


def effective_kernel_size(kernel_size: int, dilation: int) -> int:
    """Pixels spanned per side by a ``kernel_size`` filter with ``dilation``: ``d·(k − 1) + 1``."""
    if kernel_size < 1 or dilation < 1:
        raise ValueError(f"kernel_size and dilation must be >= 1; got {kernel_size}, {dilation}")
    return dilation * (kernel_size - 1) + 1


def receptive_field(kernel_sizes: Sequence[int], dilations: Sequence[int] | None = None,
                    strides: Sequence[int] | None = None) -> int:
    """Receptive field (pixels per side) of a chain of convolutions, first layer first:
    ``1 + Σ_l (k_eff,l − 1)·Π_{m<l} s_m`` with ``k_eff`` from :func:`effective_kernel_size`."""
    n = len(kernel_sizes)
    dilations = [1] * n if dilations is None else list(dilations)
    strides = [1] * n if strides is None else list(strides)
    if not len(dilations) == len(strides) == n:
        raise ValueError(f"kernel_sizes, dilations and strides must have equal lengths; got "
                         f"{n}, {len(dilations)}, {len(strides)}")
    rf, jump = 1, 1
    for k, d, s in zip(kernel_sizes, dilations, strides):
        rf += (effective_kernel_size(k, d) - 1) * jump
        jump *= s
    return rf


class DilatedConvStack(nn.Module):
    """A chain of ``3×3`` convolutions with the given dilation rates (each conv + BN + act,
    symmetric padding ``d`` so ``H, W`` are kept), e.g. the context module of Yu & Koltun (2016)
    with rates ``(1, 1, 2, 4, 8, 16, 1)``. Receptive field: :func:`receptive_field`.

    Param names: ``conv{i}`` (``i`` from 1). ``[B, H, W, C_in] → [B, H, W, features]``.
    """

    features: int
    dilations: Sequence[int] = (1, 2, 4, 8)
    kernel_size: int = 3
    norm: bool = True
    act: Callable | None = nn.relu
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x, *, train: bool):
        if not len(self.dilations):
            raise ValueError(f"dilations must be a non-empty sequence of ints >= 1; got "
                             f"{self.dilations!r}")
        for d in self.dilations:
            check_int(d, "dilations", ge=1)
        for i, d in enumerate(self.dilations, start=1):
            x = ConvBNAct(self.features, self.kernel_size, dilation=d, norm=self.norm, act=self.act,
                          dtype=self.dtype, param_dtype=self.param_dtype,
                          bn_axis_name=self.bn_axis_name, name=f"conv{i}")(x, train=train)
        return x


class ESPBlock(nn.Module):
    """Efficient spatial pyramid of dilated convolutions (ESPNet, Mehta et al. 2018, Fig. 1),
    following the authors' reference implementation (``DilatedParllelResidualBlockB``).

    1. Reduce: point-wise conv ``C_in → d = features // K`` (a ``3×3`` stride-2 conv when
       ``strides == 2``), no bias, no BN.
    2. Split–transform: ``K`` parallel ``3×3`` convs with dilation ``2^k``, ``k = 0..K-1``
       (rates 1, 2, 4, 8, 16 for ``K = 5``); branch 1 outputs ``features − (K − 1)·d`` channels,
       the others ``d``, so the concatenation has exactly ``features`` channels.
    3. HFF (``hff=True``): branch outputs ``o_2, …, o_K`` are summed cumulatively,
       ``(o_2, o_2 + o_3, …, o_2 + … + o_K)``, then concatenated after ``o_1`` (the rate-1 branch
       is kept as is, as in the reference code). ``hff=False`` concatenates ``o_1, …, o_K``
       unchanged (the gridding-prone variant).
    4. Residual: the input is added when ``strides == 1`` and ``C_in == features``
       (and ``residual=True``).
    5. ``output_norm_act``: BatchNorm + channel-wise PReLU at the end (the reference's ``BR``).

    Param names: ``reduce/conv/kernel``, ``branch{k}/conv/kernel`` (``k = 1..K``, dilation
    ``2^(k−1)``), ``bn``, ``prelu``. ``[B, H, W, C_in] → [B, H/s, W/s, features]``
    (``features=None`` keeps ``C_in``).
    """

    features: int | None = None
    branches: int = 5
    strides: int = 1
    hff: bool = True
    residual: bool = True
    output_norm_act: bool = True
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x, *, train: bool):
        c_in = x.shape[-1]
        out = c_in if self.features is None else self.features
        k = self.branches
        if k < 1 or out < k:
            raise ValueError(f"branches must be in [1, features]; got branches={k}, features={out}")
        if self.strides not in (1, 2):
            raise ValueError(f"strides must be 1 or 2; got {self.strides}")
        d = out // k
        first = out - (k - 1) * d
        conv = dict(norm=False, act=None, use_bias=False, dtype=self.dtype, param_dtype=self.param_dtype)
        reduce_k = 1 if self.strides == 1 else 3
        r = ConvBNAct(d, reduce_k, strides=self.strides, name="reduce", **conv)(x, train=train)
        outs = [ConvBNAct(first if i == 0 else d, 3, dilation=2 ** i, name=f"branch{i + 1}", **conv)(
            r, train=train) for i in range(k)]
        if self.hff:
            for i in range(2, k):
                outs[i] = outs[i] + outs[i - 1]
        y = jnp.concatenate(outs, axis=-1)
        if self.residual and self.strides == 1 and c_in == out:
            y = y + x
        if self.output_norm_act:
            y = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-3,
                             dtype=self.dtype, param_dtype=self.param_dtype,
                             axis_name=self.bn_axis_name, name="bn")(y)
            alpha = self.param("prelu", nn.initializers.constant(0.25), (out,), self.param_dtype)
            y = jnp.where(y >= 0, y, alpha.astype(y.dtype) * y)
        return y
