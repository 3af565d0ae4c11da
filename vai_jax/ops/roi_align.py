"""RoIAlign on NHWC features, value-exact with torchvision's compiled kernel.

Frames: ``features`` are ``[B, H, W, C]``; ``boxes`` are ``[x1, y1, x2, y2]`` in input-image
pixels and ``spatial_scale`` (feature cells per input pixel, e.g. 1/16) maps them onto the
feature grid. With ``aligned=True`` the box is shifted by -0.5 cell, so that continuous
coordinate ``u`` on the feature grid samples between cell centres exactly as the pixel frame of
:mod:`vai_jax.ops.coords` prescribes (cell ``j`` covers ``[j, j+1)``, centre ``j + 0.5``).
``aligned=False`` is the legacy Mask R-CNN / torchvision default (no shift, RoI sides at least
one cell).

RoIAlign formulations (chosen by measurement, figures in ``experiments/BENCHMARKS.md``). Bilinear
sampling on a grid is separable, and so are torchvision's boundary rules (a sample outside
``[-1, H] x [-1, W]`` contributes 0, coordinates in ``[-1, 0]`` / ``[H-1, H]`` are clamped to the
border cell) and the average over the ``gh x gw`` samples of a bin. Two exact forms use this:

* **gather** (used for ``sampling_ratio > 0``, and for adaptive sampling when ``max_sampling``
  is given): per axis, each bin's samples give ``2 * slots`` (index, weight) pairs (low/high
  neighbour, weight divided by the sample count); the output is the sum over row-slot x
  column-slot pairs of ``wy * wx * F[b, iy, ix]`` -- fused gathers, nothing of size
  ``K * bins * samples * C`` is materialised. On the 2-core CPU it is several times faster than
  torchvision's kernel forward. Its backward is a custom VJP: a loop over chunks of a few RoIs,
  one scatter-add of all their slot-pair updates per chunk, so the update buffer stays in cache
  (XLA's own transpose of the gathers, 16 full-size scatter-adds for sampling 2, was slower than
  torchvision's backward; the chunked one is several times faster). On a GPU / TPU
  (:func:`vai_jax.ops._roi_common.loop_plan`) there is no loop: the forward is one fused gather
  over all RoIs and the backward one scatter-add. A ``custom_vjp`` has no forward-mode rule:
  ``jax.jvp`` / ``jax.jacfwd`` through this path raise.
* **dense closed form** (adaptive ``sampling_ratio <= 0`` without ``max_sampling``): each RoI
  gets two interpolation matrices ``Wy [oh, H]`` and ``Wx [ow, W]`` (sample average folded in)
  and ``out = Wy @ F @ Wx^T`` as two matrix products. The samples of a bin form an arithmetic
  progression, so each row weight is a count and an arithmetic sum over the samples falling in a
  unit interval: exact for *any* number of samples (``ceil(roi / output)`` is unbounded for
  huge boxes) with static shapes. It costs ``K * oh * B * H * W * C`` multiply-adds (a one-hot
  image factor; :func:`roi_align_batched` avoids it), which suits matrix units (GPU/TPU) more
  than a 2-core CPU.

The RoI geometry (``x * spatial_scale - offset``, ``roi / output``) is evaluated with float32
rounding exactly as the C++ kernel's ``float`` code (see :mod:`vai_jax.ops._ieee`): XLA's fused
multiply-add contraction and reciprocal division would otherwise flip ``ceil`` and ``floor`` on
exact ratios. The gradient with respect to ``features`` is the transpose of the sampling map
(the chunked scatter / autodiff of the matrix products; tested against explicitly built
sampling matrices).
The gradient with respect to ``boxes`` is the true derivative of the output with respect to
the box coordinates wherever it exists (sample counts and in/out-of-map decisions are piecewise
constant and carry no gradient); torchvision returns none. Wrap boxes in
``jax.lax.stop_gradient`` (as two-stage detectors do for proposals) to cut it.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero

from vai_jax._validation import check_array
from vai_jax.ops._ieee import div_rn, scale_offset
from vai_jax.ops._roi_common import (_check_box_values, _check_roi_inputs, _check_scale,
                                     _output_size, loop_plan)


# ----------------------------------------------------------------------------- RoIAlign


def _count_below(x, a, step, n, inclusive: bool):
    """Number of samples ``a + (k + 0.5) * step`` (k < n, step >= 0) that are ``< x`` (``<= x``)."""
    pos = step > 0
    t = (x - a) / jnp.where(pos, step, 1) - 0.5
    c = jnp.floor(t) + 1 if inclusive else jnp.ceil(t)
    at_point = (a <= x) if inclusive else (a < x)
    return jnp.where(pos, jnp.clip(c, 0, n), jnp.where(at_point, n, 0))


def _axis_weights(lo, hi, pooled: int, size: int, sampling_ratio: int, aligned: bool, scale):
    """Closed-form RoIAlign interpolation matrix along one axis.

    Args:
      lo, hi: ``[K]`` box start / end in input pixels along this axis.
      pooled: output bins. size: feature length. scale: spatial scale (float32).

    Returns:
      ``(weights [K, pooled, size], n [K])`` where weights already include the ``1 / n`` sample
      average and ``n`` is the number of samples per bin along this axis (0 for none).
    """
    dtype = lo.dtype
    start = scale_offset(lo, scale, 0.5 if aligned else 0.0)
    end = scale_offset(hi, scale, 0.5 if aligned else 0.0)
    length = end - start
    if not aligned:
        length = jnp.maximum(length, 1)
    bin_size = div_rn(length, jnp.asarray(pooled, dtype))  # IEEE, as the C++ kernel
    if sampling_ratio > 0:
        n = jnp.full_like(start, float(sampling_ratio))
    else:
        n = lax.stop_gradient(jnp.maximum(jnp.ceil(bin_size), 0))
    n_safe = jnp.maximum(n, 1)
    a = start[:, None] + jnp.arange(pooled, dtype=dtype)[None, :] * bin_size[:, None]  # [K, P]
    step = (bin_size / n_safe)[:, None]
    n2 = n[:, None]
    flip = step < 0  # negative sizes with a fixed sampling ratio: same points, reversed
    a = jnp.where(flip, a + n2 * step, a)
    step = jnp.abs(step)
    a3, s3, n3 = a[..., None], step[..., None], n2[..., None]
    sa3, ss3 = lax.stop_gradient(a3), lax.stop_gradient(s3)

    grid = jnp.arange(size, dtype=dtype)  # unit-interval boundaries 0 .. size-1
    below = lax.stop_gradient(_count_below(grid, sa3, ss3, n3, False))  # [K, P, size]
    below_m1 = lax.stop_gradient(_count_below(jnp.asarray(-1, dtype), sa3, ss3, n3, False))
    upto_end = lax.stop_gradient(_count_below(jnp.asarray(size, dtype), sa3, ss3, n3, True))
    # Unit intervals [j, j+1), j = 0 .. size-2: count c_j and sum of (y - j) over their samples.
    k0 = below[..., :-1]
    c = below[..., 1:] - k0
    first = a3 + (k0 + 0.5) * s3 - grid[:-1]
    s = c * first + s3 * c * (c - 1) / 2
    s = jnp.where(c > 0, s, 0)
    count_a = below[..., :1] - below_m1  # samples in [-1, 0): all on row 0
    count_c = upto_end - below[..., -1:]  # samples in [size-1, size]: all on the last row
    zero = jnp.zeros_like(count_a)
    left = jnp.concatenate([zero, s], axis=-1)  # from interval [h-1, h): y - (h-1)
    right = jnp.concatenate([c - s, zero], axis=-1)  # from interval [h, h+1): (h+1) - y
    edge = jnp.concatenate([count_a, jnp.zeros_like(grid[1:-1])[None, None, :] + zero, count_c], axis=-1)
    if size == 1:
        edge = count_a + count_c
    w = (left + right + edge) / n_safe[:, None, None]
    return w, n


def _align_weights(boxes, oh, ow, h, w, scale, sampling_ratio, aligned):
    wy, _ = _axis_weights(boxes[:, 1], boxes[:, 3], oh, h, sampling_ratio, aligned, scale)
    wx, _ = _axis_weights(boxes[:, 0], boxes[:, 2], ow, w, sampling_ratio, aligned, scale)
    return wy, wx


def _apply_separable(features, wy, wx, box_indices):
    """``out[k] = wy[k] @ features[box_indices[k]] @ wx[k]^T`` for every channel.

    The image selection is folded into the first matrix product as a one-hot factor (an index
    outside ``[0, B)`` selects nothing and gives zeros). The larger spatial axis is contracted
    first so the second, per-RoI product is the cheaper one.
    """
    b = features.shape[0]
    onehot = (box_indices[:, None] == jnp.arange(b)[None, :]).astype(features.dtype)  # [K, B]
    if features.shape[2] >= features.shape[1]:
        sel_x = jnp.einsum("kqw,kb->kqbw", wx, onehot)
        t = jnp.einsum("kqbw,bhwc->kqhc", sel_x, features)
        return jnp.einsum("kph,kqhc->kpqc", wy, t)
    sel_y = jnp.einsum("kph,kb->kpbh", wy, onehot)
    t = jnp.einsum("kpbh,bhwc->kpwc", sel_y, features)
    return jnp.einsum("kqw,kpwc->kpqc", wx, t)


def _axis_samples(lo, hi, pooled: int, size: int, sampling_ratio: int, aligned: bool, scale, slots: int):
    """Explicit samples along one axis, ``slots`` per bin.

    Fixed ``sampling_ratio`` S > 0 (``slots == S``): the S samples of each bin. Adaptive
    (``sampling_ratio <= 0``): bin ``p`` has ``n = ceil(bin)`` samples
    ``a_p + (k + 0.5) * bin / n``; the ``slots`` used are the first ones at or after ``-1`` (the
    samples before it contribute 0), so the result is exact whenever at most ``slots`` samples
    of a bin fall in ``[-1, size]``.

    Returns ``(index [K, P, 2 * slots] int32, weight [K, P, 2 * slots])``: for each sample its
    low and high neighbour and their bilinear weights (0 outside ``[-1, size]`` or for unused
    slots, clamped at the edges), already divided by the per-axis sample count.
    """
    dtype = lo.dtype
    start = scale_offset(lo, scale, 0.5 if aligned else 0.0)
    length = scale_offset(hi, scale, 0.5 if aligned else 0.0) - start
    if not aligned:
        length = jnp.maximum(length, 1)
    bin_size = div_rn(length, jnp.asarray(pooled, dtype))[:, None, None]  # [K, 1, 1]
    a = start[:, None, None] + jnp.arange(pooled, dtype=dtype)[None, :, None] * bin_size
    slot = jnp.arange(slots, dtype=dtype)[None, None, :]
    if sampling_ratio > 0:
        n = jnp.asarray(float(sampling_ratio), dtype)
        k = slot
        used = jnp.ones_like(a + slot, bool)
    else:
        n = lax.stop_gradient(jnp.maximum(jnp.ceil(bin_size), 0))
        step = lax.stop_gradient(bin_size / jnp.maximum(n, 1))
        ok = step > 0
        first = jnp.ceil((-1 - lax.stop_gradient(a)) / jnp.where(ok, step, 1) - 0.5)
        first = jnp.where(ok, jnp.clip(first, 0, n), 0)
        k = first + slot
        used = k < n
    y = a + (k + 0.5) * bin_size / jnp.maximum(n, 1)
    inside = used & (y >= -1) & (y <= size)
    yc = jnp.maximum(y, 0)
    low = lax.stop_gradient(jnp.floor(yc))
    at_end = low >= size - 1
    low = jnp.where(at_end, size - 1, low)
    high = jnp.where(at_end, size - 1, low + 1)
    frac = jnp.where(at_end, 0, yc - low)
    scale_w = jnp.where(inside, 1 / jnp.maximum(n, 1), 0).astype(dtype)
    index = jnp.concatenate([low, high], axis=-1).astype(jnp.int32)
    weight = jnp.concatenate([(1 - frac) * scale_w, frac * scale_w], axis=-1)
    return index, weight


def _gather_sum(features, iy, wy, ix, wx, box_indices):
    """``out[k,p,q] = sum_{i,j} wy[k,p,i] wx[k,q,j] F[b_k, iy[k,p,i], ix[k,q,j]]`` by gathers.

    One gather of ``[K, oh, ow, C]`` per (row slot, column slot) pair, accumulated in place so
    nothing of size ``K * oh * ow * slots**2 * C`` is materialised. An image index outside
    ``[0, B)`` gives zeros. Plain autodiff of this function (XLA scatter-adds) is the slow
    backward that :func:`_apply_gather` replaces; it stays for the benchmark.
    """
    b, h, w, c = features.shape
    flat = features.reshape(b * h * w, c)
    ok = ((box_indices >= 0) & (box_indices < b)).astype(features.dtype)
    base = (jnp.clip(box_indices, 0, b - 1) * (h * w))[:, None, None]
    wy = wy * ok[:, None, None]
    if iy.shape[-1] * ix.shape[-1] > 16:  # many slots (adaptive max_sampling): a loop over rows
        def body(i, acc):
            row = base + lax.dynamic_index_in_dim(iy, i, 2) * w  # [K, oh, 1]
            idx = row[:, :, None, :] + ix[:, None, :, :]  # [K, oh, ow, slots_x]
            vals = jnp.take(flat, idx, axis=0, mode="clip")  # [K, oh, ow, slots_x, C]
            wgt = lax.dynamic_index_in_dim(wy, i, 2)[:, :, None, :] * wx[:, None, :, :]
            return acc + jnp.einsum("kpqj,kpqjc->kpqc", wgt, vals)

        zero = jnp.zeros((iy.shape[0], iy.shape[1], ix.shape[1], c), features.dtype)
        return lax.fori_loop(0, iy.shape[-1], body, zero)
    out = None
    for i in range(iy.shape[-1]):
        row = base + iy[:, :, None, i] * w  # [K, oh, 1]
        for j in range(ix.shape[-1]):
            idx = row + ix[:, None, :, j]  # [K, oh, ow]
            wgt = wy[:, :, None, i] * wx[:, None, :, j]
            term = jnp.take(flat, idx, axis=0, mode="clip") * wgt[..., None]
            out = term if out is None else out + term
    return out


_FWD_CHUNK = 32  # RoIs per forward step of the gather path


def _gather_sum_looped(features, iy, wy, ix, wx, box_indices, chunk: int | None = _FWD_CHUNK):
    """:func:`_gather_sum` as a loop over chunks of ``chunk`` RoIs (same values; ``None``: no
    loop, the accelerator plan).

    The loop is a fusion boundary: when the output feeds a reduction (a loss, the product with
    a cotangent), XLA:CPU otherwise splits the fused gathers and materialises every one of them
    (about 20-50x slower on the 2-core CPU); within a step they stay one loop fusion.
    """
    k = iy.shape[0]
    if chunk is None or k <= chunk:
        return _gather_sum(features, iy, wy, ix, wx, box_indices)
    n = -(-k // chunk)
    pad = n * chunk - k

    def split(a):  # zero padding: weight 0, index 0 (in range)
        if pad:
            a = jnp.concatenate([a, jnp.zeros((pad,) + a.shape[1:], a.dtype)])
        return a.reshape((n, chunk) + a.shape[1:])

    parts = tuple(split(a) for a in (iy, wy, ix, wx, box_indices))

    def body(t, out):
        a = [lax.dynamic_index_in_dim(x, t, 0, keepdims=False) for x in parts]
        o = _gather_sum(features, a[0], a[1], a[2], a[3], a[4])
        return lax.dynamic_update_index_in_dim(out, o, t, 0)

    shape = (n, chunk, iy.shape[1], ix.shape[1], features.shape[3])
    out = lax.fori_loop(0, n, body, jnp.zeros(shape, features.dtype))
    return out.reshape((n * chunk,) + shape[2:])[:k]


def _default_chunk(slots_y: int, slots_x: int) -> int:
    """RoIs per scatter in the backward: about 64 slot pairs per RoI chunk (4 RoIs for
    sampling 2), so the ``chunk * oh * ow * pairs * C`` updates stay in the CPU's L2 cache."""
    return max(1, 64 // (slots_y * slots_x))


def _gather_sum_transpose(g, iy, wy, ix, wx, box_indices, feature_shape, chunk: int):
    """Features cotangent of :func:`_gather_sum`: ``sum_{k,p,q,i,j} wy wx g[k,p,q]`` added at
    ``F[b_k, iy[k,p,i], ix[k,q,j]]``, exactly the transposed sampling map.

    A loop over chunks of ``chunk`` RoIs, each one scatter-add of all its (row slot, column
    slot) updates into the ``[B*H*W, C]`` gradient. XLA:CPU's scatter is fast when its update
    buffer is small (cache-resident); the one-shot transpose of the fused gathers (16 scatters of
    ``[K, oh, ow, C]`` updates for sampling 2) materialises every update first and is several
    times slower (figures in ``experiments/BENCHMARKS.md``).
    """
    b, h, w, c = feature_shape
    k, oh, sy = iy.shape
    ow, sx = ix.shape[1], ix.shape[2]
    ok = ((box_indices >= 0) & (box_indices < b)).astype(g.dtype)
    wy = wy * ok[:, None, None]
    base = jnp.clip(box_indices, 0, b - 1) * (h * w)
    n = -(-k // chunk)
    pad = n * chunk - k

    def split(a):  # [K, ...] -> [n, chunk, ...], zero padding (zero weights) at the end
        if pad:
            a = jnp.concatenate([a, jnp.zeros((pad,) + a.shape[1:], a.dtype)])
        return a.reshape((n, chunk) + a.shape[1:])

    gs, iys, wys, ixs, wxs, bs = (split(a) for a in (g, iy, wy, ix, wx, base))

    def body(t, acc):
        gk, yi, yw, xi, xw, bk = (lax.dynamic_index_in_dim(a, t, 0, keepdims=False)
                                  for a in (gs, iys, wys, ixs, wxs, bs))
        idx = bk[:, None, None, None, None] + yi[:, :, None, :, None] * w + xi[:, None, :, None, :]
        wgt = yw[:, :, None, :, None] * xw[:, None, :, None, :]  # [R, oh, ow, sy, sx]
        upd = gk[:, :, :, None, None, :] * wgt[..., None]
        return acc.at[idx.reshape(-1)].add(upd.reshape(-1, c), mode="promise_in_bounds")

    zero = jnp.zeros((b * h * w, c), g.dtype)
    return lax.fori_loop(0, n, body, zero).reshape(b, h, w, c)


def _gather_sum_weight_grads(features, g, iy, wy, ix, wx, box_indices):
    """Cotangents of :func:`_gather_sum` with respect to ``wy`` and ``wx`` (the path to the
    boxes gradient): ``d[k,p,q,i,j] = <F[b_k, iy, ix], g[k,p,q]>`` contracted with the other
    axis' weights. Gathers like the forward; dropped by XLA when boxes need no gradient."""
    b, h, w, c = features.shape
    flat = features.reshape(b * h * w, c)
    ok = ((box_indices >= 0) & (box_indices < b)).astype(features.dtype)
    base = (jnp.clip(box_indices, 0, b - 1) * (h * w))[:, None, None]
    wyo = wy * ok[:, None, None]
    gwy = [None] * iy.shape[-1]
    gwx = [None] * ix.shape[-1]
    for i in range(iy.shape[-1]):
        row = base + iy[:, :, None, i] * w
        for j in range(ix.shape[-1]):
            d = jnp.einsum("kpqc,kpqc->kpq", jnp.take(flat, row + ix[:, None, :, j], axis=0, mode="clip"), g)
            ty = jnp.einsum("kpq,kq->kp", d, wx[:, :, j]) * ok[:, None]
            tx = jnp.einsum("kpq,kp->kq", d, wyo[:, :, i])
            gwy[i] = ty if gwy[i] is None else gwy[i] + ty
            gwx[j] = tx if gwx[j] is None else gwx[j] + tx
    return jnp.stack(gwy, -1), jnp.stack(gwx, -1)


@partial(jax.custom_vjp, nondiff_argnums=(6, 7))
def _apply_gather(features, iy, wy, ix, wx, box_indices, chunk=None, fwd_chunk=_FWD_CHUNK):
    """:func:`_gather_sum` with a custom reverse-mode rule (see :func:`_gather_sum_transpose`).

    ``chunk``: RoIs per backward scatter, ``None`` for :func:`_default_chunk`; ``fwd_chunk``:
    RoIs per forward loop step (``None``: no loop). Forward-mode differentiation
    (``jax.jvp``) of this path is not supported (a ``custom_vjp``).
    """
    return _gather_sum_looped(features, iy, wy, ix, wx, box_indices, fwd_chunk)


def _apply_gather_fwd(features, iy, wy, ix, wx, box_indices, chunk, fwd_chunk):
    # symbolic_zeros=True: the primals arrive as CustomVJPPrimal(value, perturbed), which tells
    # whether the weights (hence the boxes) need a gradient at all.
    need_w = wy.perturbed or wx.perturbed
    features, iy, wy, ix, wx, box_indices = (
        a.value for a in (features, iy, wy, ix, wx, box_indices)
    )
    out = _gather_sum_looped(features, iy, wy, ix, wx, box_indices, fwd_chunk)
    marker = jnp.zeros((0,), jnp.int8) if need_w else None  # static flag carried as structure
    return out, (features, iy, wy, ix, wx, box_indices, marker)


def _apply_gather_bwd(chunk, fwd_chunk, res, g):
    del fwd_chunk
    features, iy, wy, ix, wx, box_indices, marker = res
    if isinstance(g, SymbolicZero):
        g = jnp.zeros(g.shape, g.dtype)
    if chunk is None:
        chunk = _default_chunk(iy.shape[-1], ix.shape[-1])
    gf = _gather_sum_transpose(g, iy, wy, ix, wx, box_indices, features.shape, chunk)
    gwy = gwx = None
    if marker is not None:  # the weights' cotangents cost as much as a forward pass: only on demand
        gwy, gwx = _gather_sum_weight_grads(features, g, iy, wy, ix, wx, box_indices)
    return gf, None, gwy, None, gwx, None


_apply_gather.defvjp(_apply_gather_fwd, _apply_gather_bwd, symbolic_zeros=True)


def _check_sampling(sampling_ratio, max_sampling) -> tuple[int, int | None]:
    if not isinstance(sampling_ratio, (int, np.integer)):
        raise TypeError(f"sampling_ratio must be a Python int; got {type(sampling_ratio).__name__}")
    if max_sampling is not None and (not isinstance(max_sampling, (int, np.integer)) or max_sampling <= 0):
        raise ValueError(f"max_sampling must be None or a Python int > 0; got {max_sampling!r}")
    return int(sampling_ratio), None if max_sampling is None else int(max_sampling)


@partial(jax.jit, static_argnums=(3, 4, 6, 7, 8), static_argnames=("plan",))
def _roi_align_impl(features, boxes, box_indices, oh, ow, spatial_scale, sampling_ratio, aligned,
                    max_sampling, keep=None, plan=None):
    """Dispatch between the gather and the dense closed-form formulations (see module doc).

    ``keep`` ([K] bool, optional) zeroes the rows of RoIs that are not computed here. ``plan``:
    the gather path's loops (:func:`vai_jax.ops._roi_common.loop_plan`; ``None``: by backend).
    """
    _, h, w, _ = features.shape
    boxes = boxes.astype(features.dtype)
    if sampling_ratio > 0 or max_sampling is not None:
        slots = sampling_ratio if sampling_ratio > 0 else max_sampling
        scale = spatial_scale
        iy, wy = _axis_samples(boxes[:, 1], boxes[:, 3], oh, h, sampling_ratio, aligned, scale, slots)
        ix, wx = _axis_samples(boxes[:, 0], boxes[:, 2], ow, w, sampling_ratio, aligned, scale, slots)
        if keep is not None:
            wy = wy * keep.astype(wy.dtype)[:, None, None]
        if loop_plan(plan) == "accelerator":  # one gather, one scatter-add
            return _apply_gather(features, iy, wy, ix, wx, box_indices, max(iy.shape[0], 1), None)
        return _apply_gather(features, iy, wy, ix, wx, box_indices, None, _FWD_CHUNK)
    wy, wx = _align_weights(boxes, oh, ow, h, w, spatial_scale, sampling_ratio, aligned)
    if keep is not None:
        wy = wy * keep.astype(wy.dtype)[:, None, None]
    return _apply_separable(features, wy, wx, box_indices)


def roi_align(
    features: jax.Array,
    boxes: jax.Array,
    box_indices: jax.Array,
    output_size,
    *,
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = True,
    max_sampling: int | None = None,
) -> jax.Array:
    """RoIAlign (He et al., 2017), value-exact with torchvision's compiled ``roi_align``.

    Args:
      features: ``[B, H, W, C]`` float feature maps.
      boxes: ``[K, 4]`` float ``[x1, y1, x2, y2]`` in input-image pixels.
      box_indices: ``[K]`` integer image index of each box, in ``[0, B)``.
      output_size: ``oh`` or ``(oh, ow)``.
      spatial_scale: feature cells per input pixel (1/stride); a Python float or traced scalar.
      sampling_ratio: samples per bin along each axis when ``> 0``; ``<= 0`` uses torchvision's
        adaptive ``ceil(roi_size / output_size)`` per axis and per RoI, computed exactly (no
        static bound on the count is needed, see the module docstring).
      aligned: shift boxes by -0.5 feature cell (pixel-frame correct, default); False is the
        legacy behaviour (no shift, RoI sides clamped to >= 1 cell).
      max_sampling: adaptive mode only. ``None`` (default): the exact closed-form dense
        formulation, whatever the box sizes. An int ``S``: the fast gather formulation with
        ``S`` static sample slots per bin and axis, exact whenever at most ``S`` samples of a bin
        fall on the map ``[-1, H]`` -- guaranteed for every box inside the map when
        ``S >= ceil(max(H, W) / min(oh, ow))`` (more generally for RoIs of at most ``S * oh``
        by ``S * ow`` feature cells); a bigger box silently uses only its first ``S`` on-map
        samples per bin (still divided by the full count). Cost grows as ``S**2`` per bin, so
        it is faster than the dense form only for small ``S``.

    Returns:
      ``[K, oh, ow, C]`` in the features' dtype. Bin ``(p, q)`` averages ``gh * gw`` bilinear
      samples; samples outside ``[-1, H] x [-1, W]`` count as 0, samples in ``[-1, 0]`` or
      ``[H-1, H]`` are clamped to the border cells; a bin without samples (an empty box with
      adaptive sampling) gives 0.

    Raises:
      ValueError/TypeError: wrong ranks, dtypes or sizes, ``output_size`` or ``spatial_scale``
      not positive; for concrete (non-traced) inputs also non-finite boxes, boxes with
      ``x2 < x1`` or ``y2 < y1`` and ``box_indices`` outside ``[0, B)``.

    Inside ``jax.jit`` (values unknown) nothing is raised and: a box with ``x2 < x1`` is computed
    as torchvision does (with ``aligned=False`` its side is clamped to 1 cell; with
    ``aligned=True`` adaptive sampling gives zeros and a fixed ratio samples the reversed span);
    a box index outside ``[0, B)`` gives a zero output row; a NaN/inf coordinate gives NaN in
    that RoI's output only.
    """
    features, boxes, box_indices = _check_roi_inputs(features, boxes, box_indices)
    oh, ow = _output_size(output_size)
    _check_scale(spatial_scale)
    sampling_ratio, max_sampling = _check_sampling(sampling_ratio, max_sampling)
    with jax.named_scope("roi_align"):
        return _roi_align_impl(
            features, boxes, box_indices, oh, ow, spatial_scale, sampling_ratio, aligned,
            max_sampling,
        )


def roi_align_batched(
    features: jax.Array,
    boxes: jax.Array,
    output_size,
    *,
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = True,
    max_sampling: int | None = None,
) -> jax.Array:
    """RoIAlign over padded per-image boxes, the layout of detection heads.

    Args:
      features: ``[B, H, W, C]``. boxes: ``[B, R, 4]`` xyxy input pixels; box ``(b, r)`` is read
        from image ``b``. Padding rows may hold any finite box (e.g. zeros) and are masked by
        the caller.
      output_size, spatial_scale, sampling_ratio, aligned, max_sampling: as :func:`roi_align`.

    Returns:
      ``[B, R, oh, ow, C]``, equal to ``roi_align`` on the flattened boxes with
      ``box_indices = repeat(arange(B), R)``; the dense formulation runs as per-image matrix
      products (no image-selection factor, about ``B`` times less work than the flat form).
    """
    features = check_array(features, "features", ndim=4, kind="floating", shape_hint="[B, H, W, C]")
    boxes = check_array(boxes, "boxes", ndim=3, last_dim=4, kind="floating", shape_hint="[B, R, 4]")
    if boxes.shape[0] != features.shape[0]:
        raise ValueError(
            f"boxes must have shape [B, R, 4] with B={features.shape[0]} from features; "
            f"got {tuple(boxes.shape)}"
        )
    _check_box_values(boxes, "boxes")
    oh, ow = _output_size(output_size)
    _check_scale(spatial_scale)
    sampling_ratio, max_sampling = _check_sampling(sampling_ratio, max_sampling)
    with jax.named_scope("roi_align_batched"):
        b, r = boxes.shape[:2]
        _, h, w, _ = features.shape
        flat = boxes.reshape(b * r, 4).astype(features.dtype)
        if sampling_ratio > 0 or max_sampling is not None:
            idx = jnp.repeat(jnp.arange(b, dtype=jnp.int32), r)
            out = _roi_align_impl(
                features, flat, idx, oh, ow, spatial_scale, sampling_ratio, aligned,
                max_sampling,
            )
            return out.reshape(b, r, oh, ow, -1)
        wy, wx = _align_weights(flat, oh, ow, h, w, spatial_scale, sampling_ratio, aligned)
        wy = wy.reshape(b, r, oh, h)
        wx = wx.reshape(b, r, ow, w)
        if w >= h:
            t = jnp.einsum("brqw,bhwc->brqhc", wx, features)
            return jnp.einsum("brph,brqhc->brpqc", wy, t)
        t = jnp.einsum("brph,bhwc->brpwc", wy, features)
        return jnp.einsum("brqw,brpwc->brpqc", wx, t)
