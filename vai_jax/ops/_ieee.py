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
