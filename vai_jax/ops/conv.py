"""Convolution as XLA's CPU backend runs it fastest: a drop-in for ``lax.conv_general_dilated``.

Two kinds of convolution are slow on XLA:CPU and are rewritten (same parameters and layout,
the same sums in another order: results agree to float32 rounding):

* **1×1** (36 of ResNet-50's 53 convolutions, MobileNets' expansions and projections): XLA
  differentiates a convolution into a backward-input convolution and a backward-filter
  convolution whose window is the whole feature map, run after transposing both operands to
  put the batch in the feature position. For a 1×1 kernel that is a plain matrix product
  ``x^T · dy``; :func:`conv_general_dilated` computes the convolution as ``dot_general`` over
  the channels (of ``x[:, ::s1, ::s2]`` when strided), so that autodiff yields matrix
  products for both backward passes. ResNet-50's 1×1 layers at batch 8, 224×224: 1.75 → 0.87
  CPU-s for both backward passes (3.3× for the strided shortcuts).
* **depthwise** (``feature_group_count`` = input channels, one filter per channel): XLA:CPU
  runs grouped convolutions, and their backward passes above all, channel group by channel
  group. As a sum over the kernel's taps of shifted, strided slices of the (padded) input
  times the tap's per-channel weights, the forward pass is one fused loop and autodiff gives
  fused element-wise products and reductions. MobileNetV2's 3×3 depthwise layers at batch 8,
  224×224, forward + backward: 3.76 → 0.38 CPU-s.

Every other convolution is ``lax.conv_general_dilated`` (XLA's own k×k backward filter beat
an im2col matrix product and a sum of per-tap products on every ResNet-50 shape tried).
Figures: 2-core AMD EPYC (Zen 4), XLA 0.10.2, process CPU time, ``experiments/BENCHMARKS.md``.

The rewrites apply on the CPU backend only (``jax.default_backend()`` at trace time), where
they were measured; ``rewrite="always"`` / ``"never"`` forces the choice (tests run both).
"""
from __future__ import annotations

import itertools
from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

REWRITES = ("auto", "always", "never")


def _is_channels_last(dn: lax.ConvDimensionNumbers, n: int) -> bool:
    spatial = tuple(range(1, n - 1))
    return (tuple(dn.lhs_spec) == (0, n - 1) + spatial
            and tuple(dn.rhs_spec) == (n - 1, n - 2) + tuple(range(n - 2))
            and tuple(dn.out_spec) == (0, n - 1) + spatial)


def _explicit_padding(padding, lhs_spatial, kernel_spatial, strides, rhs_dilation):
    """``padding`` as ``[(lo, hi), ...]`` per spatial axis (strings as lax resolves them)."""
    if isinstance(padding, str):
        window = [(k - 1) * d + 1 for k, d in zip(kernel_spatial, rhs_dilation)]
        return [tuple(p) for p in lax.padtype_to_pads(lhs_spatial, window, strides, padding)]
    return [tuple(int(v) for v in p) for p in padding]


def rewrite_of(lhs_shape: Sequence[int], rhs_shape: Sequence[int], *, window_strides=None,
               padding="VALID", lhs_dilation=None, rhs_dilation=None, dimension_numbers=None,
               feature_group_count: int = 1, batch_group_count: int = 1,
               rewrite: str = "auto") -> str | None:
    """How :func:`conv_general_dilated` computes this convolution: ``"matmul"`` (a 1×1 kernel,
    no padding, one group), ``"taps"`` (depthwise: ``feature_group_count`` equal to the input
    channels and to the output channels) or ``None`` (``lax.conv_general_dilated``). Both
    rewrites need the channels-last layout (``NHWC`` / ``HWIO`` or its N-d equivalent), no input
    dilation and one batch group, and (``rewrite="auto"``) the CPU backend."""
    if rewrite not in REWRITES:
        raise ValueError(f"rewrite must be one of {REWRITES}; got {rewrite!r}")
    if rewrite == "never" or (rewrite == "auto" and jax.default_backend() != "cpu"):
        return None
    n = len(lhs_shape)
    if n < 3 or len(rhs_shape) != n or batch_group_count != 1:
        return None
    if lhs_dilation is not None and any(d != 1 for d in lhs_dilation):
        return None
    if window_strides is not None and len(window_strides) != n - 2:
        return None
    dn = lax.conv_dimension_numbers(tuple(lhs_shape), tuple(rhs_shape), dimension_numbers)
    if not _is_channels_last(dn, n):
        return None
    kernel = tuple(rhs_shape[:n - 2])
    channels = lhs_shape[-1]
    if feature_group_count == 1 and all(k == 1 for k in kernel):
        strides = window_strides or (1,) * (n - 2)
        pads = _explicit_padding(padding, lhs_shape[1:-1], kernel, strides, (1,) * (n - 2))
        return "matmul" if all(p == (0, 0) for p in pads) else None
    if (feature_group_count == channels > 1 and rhs_shape[-2] == 1
            and rhs_shape[-1] == channels):
        return "taps"
    return None


def _depthwise_taps(lhs, rhs, strides, pads, dilation, preferred_element_type):
    """``sum_t slice_t(pad(lhs)) * rhs[t, 0, :]`` over the kernel taps ``t``."""
    n = lhs.ndim
    out_dtype = preferred_element_type or lhs.dtype
    acc = jnp.promote_types(out_dtype, jnp.float32)
    x = lax.pad(lhs.astype(acc), jnp.zeros((), acc),
                [(0, 0, 0)] + [(lo, hi, 0) for lo, hi in pads] + [(0, 0, 0)])
    kernel = rhs.shape[:n - 2]
    size = [(x.shape[1 + a] - dilation[a] * (kernel[a] - 1) - 1) // strides[a] + 1
            for a in range(n - 2)]
    out = None
    for tap in itertools.product(*(range(k) for k in kernel)):
        start = [t * d for t, d in zip(tap, dilation)]
        limit = [s0 + st * (o - 1) + 1 for s0, st, o in zip(start, strides, size)]
        term = lax.slice(x, (0, *start, 0), (x.shape[0], *limit, x.shape[-1]),
                         (1, *strides, 1)) * rhs[tap + (0,)].astype(acc)
        out = term if out is None else out + term
    return out.astype(out_dtype)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         batch_group_count=1, precision=None, preferred_element_type=None, *,
                         rewrite: str = "auto"):
    """``lax.conv_general_dilated`` with the same arguments and result, 1×1 and depthwise
    convolutions rewritten where :func:`rewrite_of` says so (module docstring). Pass it to
    Flax's ``nn.Conv`` as ``conv_general_dilated=`` (parameters keep their names and shapes)."""
    n = lhs.ndim
    strides = tuple(window_strides) if window_strides is not None else (1,) * (n - 2)
    how = rewrite_of(lhs.shape, rhs.shape, window_strides=strides, padding=padding,
                     lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
                     dimension_numbers=dimension_numbers,
                     feature_group_count=feature_group_count,
                     batch_group_count=batch_group_count, rewrite=rewrite)
    if how == "matmul":
        if any(s != 1 for s in strides):
            lhs = lhs[(slice(None),) + tuple(slice(None, None, s) for s in strides)]
        return lax.dot_general(lhs, rhs.reshape(rhs.shape[-2:]), (((n - 1,), (0,)), ((), ())),
                               precision=precision,
                               preferred_element_type=preferred_element_type)
    if how == "taps":
        dilation = tuple(rhs_dilation) if rhs_dilation is not None else (1,) * (n - 2)
        pads = _explicit_padding(padding, lhs.shape[1:-1], rhs.shape[:n - 2], strides, dilation)
        return _depthwise_taps(lhs, rhs, strides, pads, dilation, preferred_element_type)
    return lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
        batch_group_count=batch_group_count, precision=precision,
        preferred_element_type=preferred_element_type)
