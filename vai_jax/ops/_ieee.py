"""Correctly rounded float32 division for ops that must reproduce C++ kernels bit for bit.

XLA:CPU lowers ``x / d`` to a fast reciprocal-based sequence that can be 1 ulp off
(``13 / 5`` gives ``2.6000001`` instead of ``2.5999999``). Kernels such as torchvision's
RoIPool and RoIAlign take ``floor``/``ceil`` of such quotients (``ceil(14 / 7)`` must be 2,
not 3) and NMS compares ``inter / union > threshold``, so a 1-ulp error changes results. This
module rounds the quotient correctly: it takes the XLA quotient and its two float neighbours
and keeps the one whose exact residual ``q * d - x`` is smallest, the residual computed with
12-bit splits of ``q`` and ``d`` (every partial product is exact in float32).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


def _split(v):
    """``v = hi + lo`` with ``hi`` holding the top 12 significant bits (exact)."""
    bits = lax.bitcast_convert_type(v, jnp.uint32)
    hi = lax.bitcast_convert_type(bits & jnp.uint32(0xFFFFF000), jnp.float32)
    return hi, v - hi


def _residual(q, d_hi, d_lo, x):
    """``q * d - x`` for ``q ~= x / d``, accurate to far below ``ulp(x)``."""
    q_hi, q_lo = _split(q)
    return (((q_hi * d_hi - x) + q_hi * d_lo) + q_lo * d_hi) + q_lo * d_lo


def div_rn(x: jax.Array, d: jax.Array) -> jax.Array:
    """IEEE round-to-nearest ``x / d`` for float32 (other dtypes: plain division).

    Inputs broadcast; where ``x / d`` is not finite, zero or subnormal-adjacent the XLA result is
    returned unchanged. No gradient subtlety: the correction is piecewise constant, so the
    derivative is that of ``x / d``.
    """
    x = jnp.asarray(x)
    d = jnp.asarray(d)
    q0 = x / d
    if q0.dtype != jnp.float32:
        return q0
    xs = lax.stop_gradient(x).astype(jnp.float32)
    ds = lax.stop_gradient(d).astype(jnp.float32)
    qs = lax.stop_gradient(q0)
    d_hi, d_lo = _split(ds)
    q_dn = jnp.nextafter(qs, jnp.float32(-jnp.inf))
    q_up = jnp.nextafter(qs, jnp.float32(jnp.inf))
    r0 = jnp.abs(_residual(qs, d_hi, d_lo, xs))
    r_dn = jnp.abs(_residual(q_dn, d_hi, d_lo, xs))
    r_up = jnp.abs(_residual(q_up, d_hi, d_lo, xs))
    best = jnp.where(r_dn < r0, q_dn, qs)
    best = jnp.where(r_up < jnp.minimum(r0, r_dn), q_up, best)
    tiny = jnp.float32(2.0**-100)  # keep away from subnormals where the splits are not exact
    usable = jnp.isfinite(qs) & (jnp.abs(qs) > tiny) & jnp.isfinite(xs) & (jnp.abs(xs) > tiny)
    fixed = jnp.where(usable, best, qs)
    return q0 + lax.stop_gradient(fixed - q0)


def _two_sum(a, b):
    """``a + b = s + e`` exactly (Knuth), additions only."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def mul_rn(a: jax.Array, b: jax.Array) -> jax.Array:
    """IEEE round-to-nearest float32 ``a * b`` that stays correct when XLA fuses it.

    XLA:CPU contracts ``a * b - c`` into a fused multiply-add (one rounding instead of two), so
    ``x2 * scale - x1 * scale`` differs from the C++ kernel's ``float`` arithmetic in the last bit,
    which flips ``ceil(roi / output)`` on exact ratios. Here the product is assembled from four
    exact 12-bit partial products with error-free additions, so no contraction can change it.
    Other dtypes: plain product.
    """
    a = jnp.asarray(a)
    b = jnp.asarray(b)
    if jnp.result_type(a, b) != jnp.float32:
        return a * b
    a, b = jnp.broadcast_arrays(a.astype(jnp.float32), b.astype(jnp.float32))
    a_hi, a_lo = _split(a)
    b_hi, b_lo = _split(b)
    s, e = _two_sum(a_hi * b_hi, a_hi * b_lo)
    s, e2 = _two_sum(s, a_lo * b_hi)
    s, e3 = _two_sum(s, a_lo * b_lo)
    exact = s + ((e + e2) + e3)
    product = a * b
    ok = jnp.isfinite(product) & (jnp.abs(product) > jnp.float32(2.0**-100))
    return jnp.where(ok, exact, product)


def scale_offset(x: jax.Array, scale, offset: float) -> jax.Array:
    """``float(x * scale) - offset`` with two roundings, as torchvision's ``float`` kernels."""
    return mul_rn(x, jnp.asarray(scale, x.dtype)) - jnp.asarray(offset, x.dtype)
