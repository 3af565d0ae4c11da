"""Keypoint ops: spatial soft-max and soft-argmax (integral regression), Gaussian heatmap
targets, arg-max decoding with sub-pixel refinement, peak finding, and coordinate binning.

Frames (see :mod:`vai_jax.ops.coords`): a heatmap ``[..., H, W, K]`` has one cell per
``stride × stride`` image pixels; cell (row i, col j) covers ``[j, j+1) × [i, i+1)`` in the
*heatmap frame* and its centre is ``(j + 0.5, i + 0.5)``. Image coordinates are
``stride ×`` heatmap coordinates (:func:`vai_jax.ops.coords.heatmap_to_image`). All points are
``(x, y)`` = (column, row) order. Keypoints are ``[..., K, 3]`` as ``[x, y, visibility]`` in
image pixels; a visibility ``> 0`` means "labelled".
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from vai_jax._validation import (check_array, check_finite, check_number, check_positive,
                                 is_concrete)
from vai_jax.ops.coords import image_to_heatmap, inside_image, pixel_centers
from vai_jax.ops.numerics import softmax

_HEATMAP_HINT = "[..., H, W, K]"
_REFINE_MODES = (None, "quarter", "taylor")


def _compute_dtype(dtype):
    # float64 only when enabled (jax_enable_x64); otherwise it would be truncated with a warning.
    return jax.dtypes.canonicalize_dtype(jnp.float64) if dtype == jnp.float64 else jnp.float32


def _prepare_heatmaps(heatmaps, name: str = "heatmaps"):
    """Validate ``[..., H, W, K]`` floating finite heatmaps and upcast to float32/float64."""
    heatmaps = check_array(heatmaps, name, min_ndim=3, kind="floating", shape_hint=_HEATMAP_HINT)
    if 0 in heatmaps.shape[-3:]:
        raise ValueError(f"{name} must have H, W, K >= 1 {_HEATMAP_HINT}; got shape "
                         f"{tuple(heatmaps.shape)}")
    check_finite(heatmaps, name)
    return heatmaps.astype(_compute_dtype(heatmaps.dtype))


def _check_beta(beta):
    check_number(beta, "beta", gt=0.0)


def _check_shape(shape, name: str = "shape") -> tuple[int, int]:
    try:
        h, w = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (H, W) of ints; got {shape!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"{name} must be (H, W) with H, W >= 1; got {shape!r}")
    return h, w


def _prepare_keypoints(keypoints, name: str = "keypoints"):
    keypoints = check_array(keypoints, name, min_ndim=2, kind="numeric", last_dim=3,
                            shape_hint="[..., K, 3] as [x, y, visibility]")
    check_finite(keypoints, name)
    return keypoints.astype(_compute_dtype(keypoints.dtype))


def spatial_softmax(heatmaps, *, beta=1.0):
    """Per-map soft-max ``P = softmax(β · H)`` over the two spatial axes.

    Args:
      heatmaps: floating ``[..., H, W, K]`` (NHWC, any number of leading batch axes; rank >= 3),
        finite. bfloat16/float16 input is computed in float32.
      beta: inverse temperature, a scalar ``> 0`` (may be a traced/learned value, which is then
        not checked).

    Returns:
      ``P`` ``[..., H, W, K]`` float32 (float64 for float64 input); each map ``P[..., :, :, k]``
      is non-negative and sums to 1. Computed with the exp-normalise trick
      (:func:`vai_jax.ops.softmax`), so logits of any finite magnitude give finite values.

    Raises:
      ValueError: rank < 3, an empty axis, non-finite (concrete) values or ``beta <= 0``.
      TypeError: non-floating heatmaps.
    """
    _check_beta(beta)
    h = _prepare_heatmaps(heatmaps)
    return softmax(beta * h, axis=(-3, -2))


def soft_argmax(heatmaps, *, beta=1.0):
    """Integral regression (Sun et al. 2018): the expected position under ``softmax(β · H)``.

    ``x = Σ_{u,v} x_uv P[u, v]`` with ``x_uv`` the cell centres ``(j + 0.5, i + 0.5)``. Its
    Jacobian is ``∂x/∂H[u, v] = β P[u, v] (x_uv − x)``.

    Args:
      heatmaps: floating ``[..., H, W, K]`` (rank >= 3), finite; see :func:`spatial_softmax`.
      beta: inverse temperature, a finite scalar ``> 0`` (may be traced; then not checked).
        Large ``β`` approaches the (cell-centre) arg-max; small ``β`` pulls the estimate to the
        map centre.

    Returns:
      ``[..., K, 2]`` ``(x, y)`` in the heatmap's continuous frame (float32, or float64 for
      float64 input); multiply by the stride (:func:`vai_jax.ops.coords.heatmap_to_image`) for
      image pixels. Always inside ``[0.5, W − 0.5] × [0.5, H − 0.5]``. With two equal maxima the
      result is their midpoint — the known failure mode of the expectation.

      The soft-max is taken of ``β · (H − max H)`` with ``β`` capped at the largest finite
      value of the compute dtype, so any ``β`` gives finite results: one beyond that range
      (``1e39`` in float32, or ``inf`` under ``jit``) gives exactly the arg-max cell centre
      (with tied maxima, the mean of their centres).
    """
    _check_beta(beta)
    h = _prepare_heatmaps(heatmaps)
    big = jnp.finfo(h.dtype).max
    if is_concrete(beta):
        beta = min(float(beta), float(big))  # a Python 1e39 would overflow to inf in float32
    beta = jnp.minimum(jnp.asarray(beta, h.dtype), big)
    # Shifting by the (constant) maximum first keeps β · shifted <= 0 and exactly 0 at the
    # maximum, so huge β cannot produce inf − inf or 0 · inf.
    shifted = h - lax.stop_gradient(jnp.max(h, axis=(-3, -2), keepdims=True))
    p = softmax(beta * shifted, axis=(-3, -2))
    height, width = p.shape[-3], p.shape[-2]
    xs, ys = pixel_centers(height, width, p.dtype)
    x = jnp.einsum("...wk,w->...k", jnp.sum(p, axis=-3), xs)
    y = jnp.einsum("...hk,h->...k", jnp.sum(p, axis=-2), ys)
    return jnp.stack([x, y], axis=-1)


def heatmap_weights(keypoints, shape, *, stride):
    """Which keypoints have a heatmap target: labelled (visibility > 0) and inside the map.

    Args:
      keypoints: ``[..., K, 3]`` ``[x, y, v]`` in image pixels.
      shape: heatmap ``(H, W)``; the map covers image ``[0, W·stride) × [0, H·stride)``.
      stride: image pixels per heatmap cell (> 0).

    Returns:
      float32 ``[..., K]``: 1.0 where ``v > 0`` and the point lies inside the covered image
      region, else 0.0 (use as loss weights).
    """
    check_positive(stride, "stride")
    height, width = _check_shape(shape)
    kp = _prepare_keypoints(keypoints)
    inside = inside_image(image_to_heatmap(kp, stride), height, width)
    return ((kp[..., 2] > 0) & inside).astype(jnp.float32)


def gaussian_heatmaps(keypoints, shape, *, sigma, stride):
    """Gaussian heatmap targets, one map per keypoint.

    Map ``k`` is ``exp(−|c_uv − p_k|² / (2σ²))`` evaluated at the cell centres ``c_uv`` of the
    heatmap frame, with ``p_k = keypoint_k / stride`` the keypoint's exact (sub-cell) position in
    that frame — so the peak value is 1 only when the keypoint sits on a cell centre.

    Args:
      keypoints: ``[..., K, 3]`` ``[x, y, v]`` in image pixels (finite).
      shape: heatmap ``(H, W)``.
      sigma: Gaussian standard deviation in *heatmap cells* (> 0).
      stride: image pixels per heatmap cell (> 0).

    Returns:
      float32 ``[..., H, W, K]``. Keypoints with ``v == 0`` (unlabelled) or lying outside the
      map's image region ``[0, W·stride) × [0, H·stride)`` get an all-zero map (documented
      choice: no target, rather than a clipped tail); :func:`heatmap_weights` gives the
      matching 0/1 weights.
    """
    check_positive(sigma, "sigma")
    check_positive(stride, "stride")
    height, width = _check_shape(shape)
    kp = _prepare_keypoints(keypoints)
    weights = heatmap_weights(kp, (height, width), stride=stride).astype(kp.dtype)
    centre = image_to_heatmap(kp, stride)
    xs, ys = pixel_centers(height, width, kp.dtype)
    gx = jnp.exp(-((xs - centre[..., 0:1]) ** 2) / (2.0 * sigma ** 2))  # [..., K, W]
    gy = jnp.exp(-((ys - centre[..., 1:2]) ** 2) / (2.0 * sigma ** 2))  # [..., K, H]
    maps = jnp.einsum("...kh,...kw->...hwk", gy * weights[..., None], gx)
    return maps.astype(jnp.float32)


def _flat_gather(maps_khw, rows, cols):
    """``maps_khw[..., K, H, W]`` at integer ``rows``/``cols`` ``[..., K]`` (clipped)."""
    height, width = maps_khw.shape[-2:]
    rows = jnp.clip(rows, 0, height - 1)
    cols = jnp.clip(cols, 0, width - 1)
    flat = maps_khw.reshape(maps_khw.shape[:-2] + (height * width,))
    idx = (rows * width + cols)[..., None]
    return jnp.take_along_axis(flat, idx, axis=-1)[..., 0]


def heatmap_argmax(heatmaps, *, refine: str | None = "taylor", eps: float = 1e-10):
    """Decode each map by its arg-max cell, optionally refined to sub-cell precision.

    Args:
      heatmaps: floating ``[..., H, W, K]`` (rank >= 3), finite.
      refine: ``None`` — the arg-max cell's centre ``(j + 0.5, i + 0.5)`` (error up to half a
        cell per axis); ``"quarter"`` — shift a quarter cell towards the larger neighbour along
        each axis (Newell et al. 2016; only where both neighbours exist); ``"taylor"`` — one
        Newton step on ``log(max(H, eps))`` with central finite differences (second-order
        Taylor expansion, Zhang et al. 2020 "DARK"). For a sampled Gaussian the log is exactly
        quadratic, so ``"taylor"`` recovers its centre exactly (to rounding) away from the
        border. The offset is used only where the local Hessian is negative definite and is
        clipped to ``[−0.5, 0.5]``; along an axis where the arg-max is on the border there is
        no refinement on that axis.
      eps: floor before the logarithm for ``"taylor"``.

    Returns:
      ``(coords, confidence)``: coords ``[..., K, 2]`` ``(x, y)`` in the heatmap frame (float32)
      and confidence ``[..., K]`` = the maximum value of each map (in the input's scale). Not
      differentiable (use :func:`soft_argmax` for training).
    """
    if refine not in _REFINE_MODES:
        raise ValueError(f"refine must be one of {_REFINE_MODES}; got {refine!r}")
    h = _prepare_heatmaps(heatmaps)
    height, width = h.shape[-3], h.shape[-2]
    hk = jnp.moveaxis(h, -1, -3)  # [..., K, H, W]
    flat = hk.reshape(hk.shape[:-2] + (height * width,))
    idx = jnp.argmax(flat, axis=-1)
    conf = jnp.max(flat, axis=-1)
    row, col = idx // width, idx % width
    x = col.astype(h.dtype) + 0.5
    y = row.astype(h.dtype) + 0.5
    in_x = (col > 0) & (col < width - 1)
    in_y = (row > 0) & (row < height - 1)
    if refine == "quarter":
        dx = _flat_gather(hk, row, col + 1) - _flat_gather(hk, row, col - 1)
        dy = _flat_gather(hk, row + 1, col) - _flat_gather(hk, row - 1, col)
        x = x + jnp.where(in_x, 0.25 * jnp.sign(dx), 0.0)
        y = y + jnp.where(in_y, 0.25 * jnp.sign(dy), 0.0)
    elif refine == "taylor":
        lg = jnp.log(jnp.maximum(hk, eps))

        def at(di, dj):
            return _flat_gather(lg, row + di, col + dj)

        c = at(0, 0)
        gx = 0.5 * (at(0, 1) - at(0, -1))
        gy = 0.5 * (at(1, 0) - at(-1, 0))
        hxx = at(0, 1) - 2.0 * c + at(0, -1)
        hyy = at(1, 0) - 2.0 * c + at(-1, 0)
        hxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
        # An axis without both neighbours is not refined: decouple it with a unit curvature.
        gx, hxx = jnp.where(in_x, gx, 0.0), jnp.where(in_x, hxx, -1.0)
        gy, hyy = jnp.where(in_y, gy, 0.0), jnp.where(in_y, hyy, -1.0)
        hxy = jnp.where(in_x & in_y, hxy, 0.0)
        det = hxx * hyy - hxy * hxy
        ok = (hxx < 0) & (det > 0)
        det = jnp.where(ok, det, 1.0)
        ox = -(hyy * gx - hxy * gy) / det
        oy = -(hxx * gy - hxy * gx) / det
        x = x + jnp.where(ok, jnp.clip(ox, -0.5, 0.5), 0.0)
        y = y + jnp.where(ok, jnp.clip(oy, -0.5, 0.5), 0.0)
    coords = jnp.stack([x, y], axis=-1)
    return lax.stop_gradient(coords).astype(jnp.float32), lax.stop_gradient(conf)


def heatmap_peaks(heatmaps, *, max_peaks: int, threshold: float = 0.1, window: int = 3):
    """Local maxima of each map (multi-instance decoding), a static number per map.

    A cell is a peak when it equals the maximum of its ``window × window`` neighbourhood and
    exceeds ``threshold``. Peaks are returned best first.

    Args:
      heatmaps: floating ``[..., H, W, K]``, finite.
      max_peaks: ``N``, the static number of peak slots per map.
      threshold: minimum peak value.
      window: odd neighbourhood size for non-maximum suppression.

    Returns:
      ``(coords, scores, valid)``: coords ``[..., K, N, 2]`` cell centres ``(x, y)`` in the
      heatmap frame (float32), scores ``[..., K, N]`` (the peak value; ``-inf`` in empty
      slots), valid bool ``[..., K, N]``.
    """
    if int(max_peaks) < 1:
        raise ValueError(f"max_peaks must be >= 1; got {max_peaks}")
    if int(window) < 1 or int(window) % 2 == 0:
        raise ValueError(f"window must be an odd int >= 1; got {window}")
    h = _prepare_heatmaps(heatmaps)
    height, width = h.shape[-3], h.shape[-2]
    dims = (1,) * (h.ndim - 3) + (window, window, 1)
    pooled = lax.reduce_window(h, -jnp.inf, lax.max, dims, (1,) * h.ndim, "SAME")
    is_peak = (h >= pooled) & (h > threshold)
    scores = jnp.where(is_peak, h, -jnp.inf)
    sk = jnp.moveaxis(scores, -1, -3)
    flat = sk.reshape(sk.shape[:-2] + (height * width,))
    n = min(int(max_peaks), height * width)
    top, idx = lax.top_k(flat, n)
    if n < max_peaks:
        pad = [(0, 0)] * (top.ndim - 1) + [(0, max_peaks - n)]
        top = jnp.pad(top, pad, constant_values=-jnp.inf)
        idx = jnp.pad(idx, pad)
    valid = jnp.isfinite(top)
    coords = jnp.stack([(idx % width).astype(jnp.float32) + 0.5,
                        (idx // width).astype(jnp.float32) + 0.5], axis=-1)
    return coords, top.astype(jnp.float32), valid


def _extent(extent):
    e = np.broadcast_to(np.asarray(extent, np.float64), (2,))
    if not np.all(np.isfinite(e)) or np.any(e <= 0):
        raise ValueError(f"extent must be a positive scalar or (width, height); got {extent!r}")
    return e


def bin_centers(num_bins: int, extent):
    """Centres of ``num_bins`` equal bins over ``[0, extent)`` per axis.

    Args:
      num_bins: bins per axis (>= 1).
      extent: scalar or ``(width, height)`` in pixels.

    Returns:
      float32 ``[2, num_bins]``: row 0 the x centres ``(b + 0.5) · width / num_bins``, row 1 y.
    """
    if int(num_bins) < 1:
        raise ValueError(f"num_bins must be >= 1; got {num_bins}")
    e = _extent(extent)
    b = np.arange(int(num_bins), dtype=np.float64) + 0.5
    return jnp.asarray(b[None, :] * (e[:, None] / int(num_bins)), jnp.float32)


def encode_bins(coords, *, num_bins: int, extent):
    """Coordinates as classes: the index of the bin containing each coordinate.

    Args:
      coords: ``[..., 2]`` ``(x, y)`` in pixels (a keypoint array ``[..., K, 3]`` may be sliced
        to ``[..., :2]`` first), finite.
      num_bins: bins per axis.
      extent: scalar or ``(width, height)``; bin ``b`` of an axis covers
        ``[b · e / n, (b + 1) · e / n)``.

    Returns:
      int32 ``[..., 2]`` bin labels. Coordinates outside ``[0, extent)`` are clipped to the
      first/last bin (documented choice: the nearest class).
    """
    coords = check_array(coords, "coords", min_ndim=1, last_dim=2, kind="numeric",
                         shape_hint="[..., 2] as (x, y)")
    check_finite(coords, "coords")
    if int(num_bins) < 1:
        raise ValueError(f"num_bins must be >= 1; got {num_bins}")
    width = jnp.asarray(_extent(extent) / int(num_bins), jnp.float32)
    idx = jnp.floor(coords.astype(jnp.float32) / width).astype(jnp.int32)
    return jnp.clip(idx, 0, int(num_bins) - 1)


def decode_bins(logits, *, extent, expectation: bool = False):
    """Coordinates from per-axis bin logits.

    Args:
      logits: floating ``[..., 2, num_bins]`` (axis -2 is x then y), finite.
      extent: scalar or ``(width, height)``.
      expectation: False — the arg-max bin's centre; True — the soft-max-weighted mean of the
        bin centres (differentiable; sub-bin precision).

    Returns:
      float32 ``[..., 2]`` ``(x, y)`` in pixels.
    """
    logits = check_array(logits, "logits", min_ndim=2, kind="floating",
                         shape_hint="[..., 2, num_bins]")
    if logits.shape[-2] != 2:
        raise ValueError(f"logits must have shape [..., 2, num_bins]; got {tuple(logits.shape)}")
    check_finite(logits, "logits")
    centers = bin_centers(logits.shape[-1], extent)
    if expectation:
        p = softmax(logits.astype(jnp.float32), axis=-1)
        return jnp.sum(p * centers, axis=-1)
    idx = jnp.argmax(logits, axis=-1)
    return jnp.take_along_axis(jnp.broadcast_to(centers, logits.shape), idx[..., None],
                               axis=-1)[..., 0]


__all__ = [
    "bin_centers",
    "decode_bins",
    "encode_bins",
    "gaussian_heatmaps",
    "heatmap_argmax",
    "heatmap_peaks",
    "heatmap_weights",
    "soft_argmax",
    "spatial_softmax",
]
