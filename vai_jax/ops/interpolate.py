"""PyTorch's ``F.interpolate(mode="bilinear" | "bicubic", align_corners=False)`` on NHWC maps,
without anti-aliasing (``jax.image.resize`` anti-aliases when down-sampling and places its
samples differently; torchvision's detection transforms and heads use PyTorch's rule).

Per axis, output index ``o`` samples the input at ``src = scale * (o + 0.5) - 0.5`` with
``scale = in_size / out_size`` in float32 (or ``1 / scale_factor`` when a scale factor is given
and not recomputed). Bilinear clamps ``src`` at 0 and mixes inputs ``floor(src)`` and the next
one (the last index repeats at the border); bicubic (Keys' kernel, ``A = -0.75``) mixes the
four inputs ``floor(src) - 1 .. floor(src) + 2``, indices clamped to the map. The weights are
computed in float32 as PyTorch's CPU kernel computes them; a map is interpolated along its width
first, then along its height (the kernel's order of summation).
"""
from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from vai_jax._validation import check_array

_A = -0.75  # PyTorch's bicubic coefficient
MODES = ("bilinear", "bicubic")


def fma(a, b, c):
    """float32 ``a * b + c`` rounded once (the product is exact in float64), as the C++ kernel
    compiled with fused multiply-adds computes it."""
    return (np.asarray(a, np.float64) * np.asarray(b, np.float64)
            + np.asarray(c, np.float64)).astype(np.float32)


def cubic_weights(t):
    """Keys' cubic convolution weights (``A = -0.75``) of the four taps ``floor(src) - 1 ..
    floor(src) + 2`` for float32 fractional parts ``t`` (any shape; returns ``[..., 4]``),
    with the kernel's fused multiply-adds."""
    t = np.asarray(t, np.float32)
    a, one = np.float32(_A), np.float32(1.0)

    def near(x):  # |x| <= 1: ((A + 2) x - (A + 3)) x x + 1
        return fma(fma(a + 2, x, -(a + 3)) * x, x, one)

    def far(x):  # 1 < |x| < 2: ((A x - 5A) x + 8A) x - 4A
        return fma(fma(fma(a, x, -5 * a), x, 8 * a), x, -4 * a)

    s = one - t
    return np.stack([far(t + one), near(t), near(s), far(s + one)], axis=-1)


def source_index(scale, out_size: int, *, cubic: bool):
    """``scale * (o + 0.5) - 0.5`` for ``o < out_size`` in float32 (one rounding), clamped at 0
    unless ``cubic`` (PyTorch's ``area_pixel_compute_source_index``)."""
    o = np.arange(out_size, dtype=np.float32) + np.float32(0.5)
    src = fma(np.float32(scale), o, np.float32(-0.5))
    return src if cubic else np.maximum(src, np.float32(0.0))


def axis_taps(in_size: int, out_size: int, mode: str, scale_factor: float | None = None):
    """``(indices [out_size, taps] int32, weights [out_size, taps] float32)`` of one axis
    (NumPy, static sizes): ``out[o] = sum_t weights[o, t] * in[indices[o, t]]``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
    if in_size == out_size and scale_factor is None and mode == "bilinear":
        return np.arange(out_size, dtype=np.int32)[:, None], np.ones((out_size, 1), np.float32)
    scale = (np.float32(1.0 / scale_factor) if scale_factor is not None
             else np.float32(in_size) / np.float32(out_size))
    src = source_index(scale, out_size, cubic=mode == "bicubic")
    base = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    t = np.clip(src - base.astype(np.float32), np.float32(0), np.float32(1)).astype(np.float32)
    if mode == "bilinear":
        idx = np.stack([base, np.where(base < in_size - 1, base + 1, base)], axis=1)
        w = np.stack([np.float32(1) - t, t], axis=1)
    else:
        idx = np.clip(base[:, None] + np.arange(-1, 3)[None, :], 0, in_size - 1)
        w = cubic_weights(t)
    return idx.astype(np.int32), w.astype(np.float32)


def apply_taps(x: jax.Array, axis: int, indices, weights) -> jax.Array:
    """``sum_t weights[o, t] * take(x, indices[o, t], axis)`` along ``axis`` (taps summed in
    order). ``indices``/``weights`` ``[out, taps]``, NumPy or traced arrays."""
    axis = axis % x.ndim
    shape = [1] * x.ndim
    shape[axis] = -1
    out = None
    for t in range(indices.shape[1]):
        term = jnp.take(x, jnp.asarray(indices[:, t]), axis=axis) * jnp.asarray(
            weights[:, t], x.dtype).reshape(shape)
        out = term if out is None else out + term
    return out


def interpolate(x: jax.Array, size: Sequence[int] | None = None, *, mode: str = "bilinear",
                scale_factor: float | None = None) -> jax.Array:
    """PyTorch's ``F.interpolate(x, size, mode=mode, align_corners=False)`` of NHWC ``x``.

    Args:
      x: ``[B, H, W, C]`` floating.
      size: ``(H', W')``; or None with ``scale_factor``.
      mode: ``"bilinear"`` or ``"bicubic"``.
      scale_factor: with ``size=None``, the output is ``floor(H * scale_factor)`` and the
        sampling uses ``1 / scale_factor`` (PyTorch's ``recompute_scale_factor=False``).

    Returns:
      ``[B, H', W', C]`` in ``x``'s dtype.
    """
    x = check_array(x, "x", ndim=4, kind="floating", shape_hint="[B, H, W, C]")
    h, w = x.shape[1:3]
    if size is None:
        if scale_factor is None or not scale_factor > 0:
            raise ValueError("interpolate needs size or a scale_factor > 0")
        size = (math.floor(h * float(scale_factor)), math.floor(w * float(scale_factor)))
        factors = (float(scale_factor), float(scale_factor))
    else:
        factors = (None, None)
    oh, ow = (int(s) for s in size)
    if oh < 1 or ow < 1:
        raise ValueError(f"size must be two positive ints; got {tuple(size)}")
    iy, wy = axis_taps(h, oh, mode, factors[0])
    ix, wx = axis_taps(w, ow, mode, factors[1])
    return apply_taps(apply_taps(x, 2, ix, wx), 1, iy, wy)
