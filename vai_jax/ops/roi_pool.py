"""RoIPool on NHWC features (Girshick 2015), value-exact with torchvision's compiled kernel.

Frames as :mod:`vai_jax.ops.roi_align`.

RoIPool: torchvision's quantisation (``std::round`` of the scaled corners, half away from zero;
``+1`` sizes; bin ``p`` spans ``[floor(p * bin), ceil((p + 1) * bin))`` clipped to the map;
empty bins give 0). The bins of one RoI differ in size by at most one cell, so each RoI is a
scan over the offsets ``(dy, dx)`` of its largest bin, gathering one ``[oh, ow, C]`` slab per
step and keeping the running maximum -- the work of torchvision's loops, no temporary larger
than a chunk of outputs. RoIs are sorted by step count and scanned a chunk at a time (a
``while_loop`` per chunk, as long as the chunk's largest RoI). Under ``jax.grad`` a second scan
finds the argmax (the first maximal element in row-major order, torchvision's strict ``>``) and
the backward scatter-adds the cotangents there (a custom VJP). A 2-D sparse table of maxima
(``floor(log2 H + 1) * floor(log2 W + 1)`` copies of the features, four gathers per bin) would
need no loop but is several times slower than torchvision on the CPU. On a GPU / TPU
(:func:`vai_jax.ops._roi_common.loop_plan`) all RoIs form one chunk and the backward is one
scatter-add: each loop step there is a kernel launch, not a cache-sized piece of work.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from vai_jax.ops._ieee import div_rn, scale_offset
from vai_jax.ops._roi_common import _check_roi_inputs, _check_scale, _output_size, loop_plan


def _round_half_away(x):
    """C ``std::round``: halves away from zero (``jnp.round`` rounds halves to even)."""
    return jnp.sign(x) * jnp.floor(jnp.abs(x) + 0.5)


def _pool_bounds(lo, hi, pooled: int, size: int, scale):
    """Integer bin bounds ``[start, end)`` ``[K, P]`` of torchvision's RoIPool along one axis."""
    rs = _round_half_away(scale_offset(lo, scale, 0.0))
    re = _round_half_away(scale_offset(hi, scale, 0.0))
    length = jnp.maximum(re - rs + 1, 1)
    bin_size = div_rn(length, jnp.asarray(pooled, lo.dtype))  # IEEE, as the C++ kernel
    p = jnp.arange(pooled, dtype=lo.dtype)[None, :]
    start = jnp.floor(p * bin_size[:, None]) + rs[:, None]
    end = jnp.ceil((p + 1) * bin_size[:, None]) + rs[:, None]
    # Clip before the cast (large values) and after it (NaN casts to an arbitrary int32).
    start = jnp.clip(jnp.clip(start, 0, size).astype(jnp.int32), 0, size)
    end = jnp.clip(jnp.clip(end, 0, size).astype(jnp.int32), 0, size)
    return start, end


def _pool_scan(features, ys, ye, xs, xe, box_indices, chunk: int, with_arg: bool):
    """Per-bin maxima by a scan over bin offsets, RoIs sorted by work and taken ``chunk`` at a time.

    Args:
      features: ``[B, H, W, C]``. ys, ye: ``[K, oh]`` int32 row bounds ``[ys, ye)`` clipped to
        ``[0, H]``; xs, xe: ``[K, ow]`` column bounds. box_indices: ``[K]`` (clamped to the map).
      chunk: RoIs processed together. with_arg: also return the argmax.

    Returns:
      ``(out [K, oh, ow, C], arg [K, oh, ow, C] int32 or None)``: ``out`` is the bin maximum (0
      for an empty bin); ``arg`` the flat index ``(b * H + y) * W + x`` of the first maximal
      element in row-major order (torchvision's strict ``>`` scan from ``-FLT_MAX``), -1 for an
      empty bin or one without an element above ``-FLT_MAX``.

    Every RoI visits the offsets ``(dy, dx)`` of its largest bin, one per step, gathering
    ``[oh, ow, C]`` values; its bins are within one cell of each other in size, so the work is
    about that of torchvision's loops (twice with ``with_arg``: a second scan finds the first
    element equal to the maximum). A chunk runs as many steps as its largest RoI needs, and
    sorting the RoIs by their step count keeps the chunks balanced.
    """
    nb, h, w, c = features.shape
    k, oh = ys.shape
    ow = xs.shape[1]
    flat = features.reshape(nb * h * w, c)
    nh = jnp.max(ye - ys, axis=1)
    nw = jnp.maximum(jnp.max(xe - xs, axis=1), 1)
    steps = jnp.where((nh > 0) & (jnp.max(xe - xs, axis=1) > 0), nh * nw, 0)
    base = jnp.clip(box_indices, 0, nb - 1).astype(jnp.int32) * (h * w)
    n = -(-k // chunk)
    perm = jnp.argsort(steps).astype(jnp.int32)
    if n * chunk > k:  # padding RoIs take no steps
        perm = jnp.concatenate([perm, jnp.full((n * chunk - k,), k, jnp.int32)])

    def split(a):
        a = jnp.concatenate([a, jnp.zeros((1,) + a.shape[1:], a.dtype)])[perm]
        return a.reshape((n, chunk) + a.shape[1:])

    ys_, ye_, xs_, xe_, nw_, steps_, base_ = (split(a) for a in (ys, ye, xs, xe, nw, steps, base))
    lowest = jnp.asarray(jnp.finfo(features.dtype).min, features.dtype)  # torchvision's -FLT_MAX

    def one_chunk(t, carry):
        y0, y1, x0, x1, nwc, nsc, bc = (lax.dynamic_index_in_dim(a, t, 0, keepdims=False)
                                        for a in (ys_, ye_, xs_, xe_, nw_, steps_, base_))

        def step(state):
            i, m, a = state
            yy = y0 + (i // nwc)[:, None]  # [R, oh]
            xx = x0 + (i % nwc)[:, None]  # [R, ow]
            valid = (yy < y1)[:, :, None] & (xx < x1)[:, None, :] & (i < nsc)[:, None, None]
            pos = (bc[:, None, None] + jnp.minimum(yy, h - 1)[:, :, None] * w
                   + jnp.minimum(xx, w - 1)[:, None, :])  # [R, oh, ow], inside the map
            v = flat.at[pos].get(mode="promise_in_bounds")  # [R, oh, ow, C]
            better = valid[..., None] & (v > m)  # strict: ties keep the first, NaN is skipped
            return i + 1, jnp.where(better, v, m), a

        # Second pass for the argmax: the first step whose value equals the maximum. Measured
        # faster than tracking it in the first pass (two selects on the running maximum make
        # XLA copy it every step).
        def first_max(state):
            i, a = state
            yy = y0 + (i // nwc)[:, None]
            xx = x0 + (i % nwc)[:, None]
            valid = (yy < y1)[:, :, None] & (xx < x1)[:, None, :] & (i < nsc)[:, None, None]
            pos = (bc[:, None, None] + jnp.minimum(yy, h - 1)[:, :, None] * w
                   + jnp.minimum(xx, w - 1)[:, None, :])
            v = flat.at[pos].get(mode="promise_in_bounds")
            hit = valid[..., None] & (a < 0) & (v == m) & (m > lowest)
            return i + 1, jnp.where(hit, i, a)

        m0 = jnp.full((chunk, oh, ow, c), lowest)
        a0 = jnp.full((chunk, oh, ow, c) if with_arg else (), -1, jnp.int32)
        _, m, a = lax.while_loop(lambda st: st[0] < jnp.max(nsc), step, (jnp.int32(0), m0, a0))
        if with_arg:
            _, a = lax.while_loop(lambda st: st[0] < jnp.max(nsc), first_max, (jnp.int32(0), a0))
        out, arg = carry
        out = lax.dynamic_update_index_in_dim(out, m, t, 0)
        if with_arg:
            ai = jnp.maximum(a, 0)
            nw4 = nwc[:, None, None, None]
            pos = (bc[:, None, None, None] + jnp.minimum(y0[:, :, None, None] + ai // nw4, h - 1) * w
                   + jnp.minimum(x0[:, None, :, None] + ai % nw4, w - 1))
            arg = lax.dynamic_update_index_in_dim(arg, jnp.where(a >= 0, pos, -1), t, 0)
        return out, arg

    out0 = jnp.zeros((n, chunk, oh, ow, c), features.dtype)
    arg0 = jnp.zeros(out0.shape if with_arg else (), jnp.int32)
    out, arg = lax.fori_loop(0, n, one_chunk, (out0, arg0))
    inv = jnp.zeros((n * chunk,), jnp.int32).at[perm].set(jnp.arange(n * chunk, dtype=jnp.int32), mode="drop")
    out = out.reshape((n * chunk, oh, ow, c))[inv[:k]]
    empty = ((ye <= ys)[:, :, None] | (xe <= xs)[:, None, :])[..., None]  # [K, oh, ow, 1]
    out = jnp.where(empty, jnp.zeros((), features.dtype), out)
    if not with_arg:
        return out, None
    arg = jnp.where(empty, -1, arg.reshape((n * chunk, oh, ow, c))[inv[:k]])
    return out, arg


_POOL_CHUNK = 8  # RoIs per scan chunk (measured, experiments/BENCHMARKS.md)
_POOL_BWD_CHUNK = 64  # RoIs per backward scatter


@partial(jax.custom_vjp, nondiff_argnums=(6, 7))
def _pool_max(features, ys, ye, xs, xe, box_indices, chunk, bwd_chunk=_POOL_BWD_CHUNK):
    """Bin maxima with a reverse rule that sends each cotangent to the bin's argmax."""
    return _pool_scan(features, ys, ye, xs, xe, box_indices, chunk, with_arg=False)[0]


def _pool_max_fwd(features, ys, ye, xs, xe, box_indices, chunk, bwd_chunk):
    out, arg = _pool_scan(features, ys, ye, xs, xe, box_indices, chunk, with_arg=True)
    return out, (arg, features.shape)


def _pool_max_bwd(chunk, bwd_chunk, res, g):
    """Scatter-add of the cotangents at their argmax elements (none for ``arg == -1``), a loop
    over chunks of ``bwd_chunk`` RoIs so each scatter's updates stay in cache."""
    del chunk
    arg, (nb, h, w, c) = res
    k = arg.shape[0]
    r = min(bwd_chunk, k) or 1
    n = -(-k // r)
    pad = n * r - k
    if pad:
        arg = jnp.concatenate([arg, jnp.full((pad,) + arg.shape[1:], -1, arg.dtype)])
        g = jnp.concatenate([g, jnp.zeros((pad,) + g.shape[1:], g.dtype)])
    args = arg.reshape(n, -1)
    gs = g.reshape(n, -1)
    channel = jnp.tile(jnp.arange(c, dtype=jnp.int32), args.shape[1] // c)

    def body(t, acc):
        a = lax.dynamic_index_in_dim(args, t, 0, keepdims=False)
        valid = a >= 0
        idx = jnp.where(valid, a, 0) * c + channel
        upd = jnp.where(valid, lax.dynamic_index_in_dim(gs, t, 0, keepdims=False), jnp.zeros((), g.dtype))
        return acc.at[idx].add(upd, mode="promise_in_bounds")

    gf = lax.fori_loop(0, n, body, jnp.zeros((nb * h * w * c,), g.dtype))
    return gf.reshape(nb, h, w, c), None, None, None, None, None


_pool_max.defvjp(_pool_max_fwd, _pool_max_bwd)


def roi_pool(
    features: jax.Array,
    boxes: jax.Array,
    box_indices: jax.Array,
    output_size,
    *,
    spatial_scale: float = 1.0,
) -> jax.Array:
    """RoIPool (Girshick, 2015), value-exact with torchvision's compiled ``roi_pool``.

    Args:
      features: ``[B, H, W, C]`` float. boxes: ``[K, 4]`` xyxy input pixels.
      box_indices: ``[K]`` integer image index per box. output_size: ``oh`` or ``(oh, ow)``.
      spatial_scale: feature cells per input pixel.

    Returns:
      ``[K, oh, ow, C]``: the maximum of each bin; 0 for a bin that is empty after clipping to
      the map. Gradient: to the maximal element of each bin, the first one in row-major order
      when several tie (e.g. ReLU zeros) -- torchvision's argmax; zero with respect to
      ``boxes`` (the bins are integer). Forward-mode differentiation is not supported.

    Raises:
      As :func:`roi_align`. Under ``jax.jit``: ``x2 < x1`` follows torchvision's rule (side
      ``max(x2 - x1 + 1, 1)``), an index outside ``[0, B)`` reads the clamped image, non-finite
      coordinates give unspecified bins inside the map (never reads outside it). As in
      torchvision, NaN features are skipped (strict ``>`` against a running maximum that starts
      at the lowest finite float, which a bin of only NaN/-inf returns, with no gradient).
    """
    features, boxes, box_indices = _check_roi_inputs(features, boxes, box_indices)
    oh, ow = _output_size(output_size)
    _check_scale(spatial_scale)
    with jax.named_scope("roi_pool"):
        return _roi_pool_impl(features, boxes, box_indices, oh, ow, spatial_scale)


@partial(jax.jit, static_argnums=(3, 4, 6), static_argnames=("plan",))
def _roi_pool_impl(features, boxes, box_indices, oh, ow, spatial_scale, chunk=None, plan=None):
    """``chunk``: RoIs per scan chunk, ``None`` for the plan's (:func:`loop_plan`; ``None``: by
    backend): 8 RoIs per chunk and 64 per backward scatter on the CPU, all of them on
    accelerators."""
    boxes = boxes.astype(features.dtype)
    _, h, w, _ = features.shape
    ys, ye = _pool_bounds(boxes[:, 1], boxes[:, 3], oh, h, spatial_scale)  # [K, oh]
    xs, xe = _pool_bounds(boxes[:, 0], boxes[:, 2], ow, w, spatial_scale)  # [K, ow]
    k = max(boxes.shape[0], 1)
    accelerator = loop_plan(plan) == "accelerator"
    if chunk is None:
        chunk = k if accelerator else _POOL_CHUNK
    return _pool_max(features, ys, ye, xs, xe, box_indices, chunk,
                     k if accelerator else _POOL_BWD_CHUNK)
