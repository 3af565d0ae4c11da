"""Part affinity fields (Cao et al., "Realtime Multi-Person 2D Pose Estimation using Part
Affinity Fields", CVPR 2017): ground-truth fields, the line-integral limb score, and greedy
bipartite grouping of detected keypoints into instances.

Frames (see :mod:`vai_jax.ops.coords`): fields live on a heatmap grid ``[..., H, W, L, 2]``
whose cell (i, j) has centre ``(j + 0.5, i + 0.5)`` in the heatmap frame; image pixels are
``stride ×`` heatmap coordinates. Field vectors are ``(x, y)`` unit vectors (or averages of
them). A skeleton is ``[L, 2]`` integer pairs ``(a, b)``: limb ``l`` goes from keypoint ``a``
to keypoint ``b``.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from vai_jax._validation import check_array, check_finite, check_positive
from vai_jax.ops.coords import image_to_heatmap, pixel_center_grid


def _check_skeleton(skeleton, num_keypoints: int):
    sk = np.asarray(skeleton)
    if sk.ndim != 2 or sk.shape[-1] != 2 or not np.issubdtype(sk.dtype, np.integer):
        raise ValueError(f"skeleton must be an integer array [L, 2] of (a, b) keypoint pairs; "
                         f"got shape {sk.shape}, dtype {sk.dtype}")
    if sk.size and (sk.min() < 0 or sk.max() >= num_keypoints):
        raise ValueError(f"skeleton indices must lie in [0, {num_keypoints}); got values in "
                         f"[{sk.min()}, {sk.max()}]")
    return sk.astype(np.int32)


def part_affinity_fields(keypoints, skeleton, shape, *, stride, sigma):
    """Ground-truth part affinity fields, exactly as defined by Cao et al. (2017, Eq. 8–9).

    For instance ``m`` and limb ``l = (a, b)`` with endpoints ``x₁ = kp[m, a] / stride`` and
    ``x₂ = kp[m, b] / stride`` (heatmap frame), length ``ℓ = |x₂ − x₁|`` and unit vector
    ``v = (x₂ − x₁) / ℓ``, a cell centre ``p`` is on the limb when
    ``0 ≤ v·(p − x₁) ≤ ℓ`` and ``|v⊥·(p − x₁)| ≤ σ``; there the instance's field is ``v``,
    elsewhere 0. The limb's field is the average over the instances that are non-zero at
    ``p`` (``Σ_m L_m(p) / n(p)``), and 0 where no instance is.

    Args:
      keypoints: ``[..., M, K, 3]`` ``[x, y, v]`` in image pixels for ``M`` instances (finite).
        A limb is drawn only when both endpoints have ``v > 0`` and distinct positions, so
        padded instances (all ``v = 0``) contribute nothing. Limbs reaching outside the map
        are drawn where they cross it (documented choice).
      skeleton: integer ``[L, 2]`` (NumPy/static) keypoint index pairs.
      shape: field ``(H, W)``.
      stride: image pixels per field cell (> 0).
      sigma: limb half-width in *field cells* (> 0).

    Returns:
      float32 ``[..., H, W, L, 2]``.
    """
    keypoints = check_array(keypoints, "keypoints", min_ndim=3, last_dim=3, kind="numeric",
                            shape_hint="[..., M, K, 3]")
    check_finite(keypoints, "keypoints")
    check_positive(stride, "stride")
    check_positive(sigma, "sigma")
    height, width = (int(s) for s in shape)
    if height < 1 or width < 1:
        raise ValueError(f"shape must be (H, W) with H, W >= 1; got {shape!r}")
    sk = _check_skeleton(skeleton, keypoints.shape[-2])
    kp = image_to_heatmap(keypoints.astype(jnp.float32), stride)
    a, b = kp[..., sk[:, 0], :], kp[..., sk[:, 1], :]  # [..., M, L, 3]
    d = b[..., :2] - a[..., :2]
    length = jnp.linalg.norm(d, axis=-1)  # [..., M, L]
    ok = (a[..., 2] > 0) & (b[..., 2] > 0) & (length > 0)
    v = d / jnp.where(ok, length, 1.0)[..., None]
    grid = pixel_center_grid(height, width)  # [H, W, 2]
    rel = grid - a[..., None, None, :2]  # [..., M, L, H, W, 2]
    vv = v[..., None, None, :]
    along = jnp.sum(rel * vv, axis=-1)
    across = rel[..., 1] * vv[..., 0] - rel[..., 0] * vv[..., 1]  # v⊥ = (−v_y, v_x)
    on = ((along >= 0) & (along <= length[..., None, None]) & (jnp.abs(across) <= sigma)
          & ok[..., None, None])  # [..., M, L, H, W]
    total = jnp.sum(jnp.where(on[..., None], vv, 0.0), axis=-5)  # [..., L, H, W, 2]
    count = jnp.sum(on, axis=-4).astype(jnp.float32)  # [..., L, H, W]
    field = total / jnp.maximum(count, 1.0)[..., None]
    return jnp.moveaxis(field, -4, -2)


def limb_dots(field, p1, p2, *, num_samples: int = 10):
    """Field samples projected on the candidate limb direction.

    Args:
      field: ``[H, W, 2]`` one limb's field (heatmap frame).
      p1, p2: ``[..., 2]`` candidate endpoints ``(x, y)`` in the heatmap frame.
      num_samples: ``N`` points ``p(u) = (1 − u) p1 + u p2`` at the midpoints
        ``u = (n + ½) / N``; each reads its nearest cell (the cell containing it, clipped to
        the grid).

    Returns:
      float32 ``[..., N]``: ``field(p(u)) · (p2 − p1) / |p2 − p1|`` (0 when ``p1 == p2``).
    """
    field = check_array(field, "field", ndim=3, last_dim=2, kind="floating",
                        shape_hint="[H, W, 2]")
    p1 = check_array(p1, "p1", min_ndim=1, last_dim=2, kind="numeric").astype(jnp.float32)
    p2 = check_array(p2, "p2", min_ndim=1, last_dim=2, kind="numeric").astype(jnp.float32)
    if int(num_samples) < 1:
        raise ValueError(f"num_samples must be >= 1; got {num_samples}")
    height, width = field.shape[:2]
    d = p2 - p1
    length = jnp.linalg.norm(d, axis=-1, keepdims=True)
    u = (jnp.arange(int(num_samples), dtype=jnp.float32) + 0.5) / int(num_samples)
    pts = p1[..., None, :] + u[:, None] * d[..., None, :]  # [..., N, 2]
    col = jnp.clip(jnp.floor(pts[..., 0]).astype(jnp.int32), 0, width - 1)
    row = jnp.clip(jnp.floor(pts[..., 1]).astype(jnp.int32), 0, height - 1)
    samples = field.astype(jnp.float32)[row, col]  # [..., N, 2]
    unit = jnp.where(length > 0, d / jnp.where(length > 0, length, 1.0), 0.0)
    return jnp.sum(samples * unit[..., None, :], axis=-1)


def _limb_dots_numpy(field, p1, p2, num_samples):
    """NumPy twin of :func:`limb_dots` for the host-side grouping loop (no dispatch cost)."""
    height, width = field.shape[:2]
    d = p2 - p1
    length = np.linalg.norm(d, axis=-1, keepdims=True)
    u = (np.arange(num_samples, dtype=np.float32) + 0.5) / num_samples
    pts = p1[..., None, :] + u[:, None] * d[..., None, :]
    col = np.clip(np.floor(pts[..., 0]).astype(np.int64), 0, width - 1)
    row = np.clip(np.floor(pts[..., 1]).astype(np.int64), 0, height - 1)
    unit = np.where(length > 0, d / np.where(length > 0, length, 1.0), 0.0)
    return np.sum(field[row, col] * unit[..., None, :], axis=-1).astype(np.float32)


def limb_score(field, p1, p2, *, num_samples: int = 10):
    """Line-integral association score ``E = ∫₀¹ L(p(u)) · (p2 − p1)/|p2 − p1| du`` (Cao et
    al. Eq. 10), approximated by the midpoint rule over ``num_samples`` samples (see
    :func:`limb_dots`).

    Returns:
      float32 ``[...]`` in ``[−1, 1]`` for a field of unit or averaged unit vectors; 0 for
      ``p1 == p2``.
    """
    return jnp.mean(limb_dots(field, p1, p2, num_samples=num_samples), axis=-1)


def group_keypoints(peaks, peak_scores, peak_valid, fields, skeleton, *, num_samples: int = 10,
                    min_limb_score: float = 0.05, min_fraction: float = 0.8,
                    dot_threshold: float = 0.05, min_keypoints: int = 2):
    """Greedy bipartite grouping of keypoint candidates into instances (Cao et al. §2.4).

    For each limb ``(a, b)`` every pair of candidates (one of type ``a``, one of type ``b``) is
    scored with :func:`limb_score`; pairs with score ``> min_limb_score`` and at least
    ``min_fraction`` of samples with dot product ``> dot_threshold`` are accepted greedily by
    decreasing score, each candidate used at most once per limb (a maximal matching). The
    accepted limbs are then merged into instances: a limb that shares a candidate with an
    instance extends it; two instances joined by a limb are merged when they hold no common
    keypoint type. Runs in NumPy on one image (post-processing, not jitted).

    Args:
      peaks: ``[K, N, 2]`` candidate positions ``(x, y)`` in the field's heatmap frame.
      peak_scores: ``[K, N]`` candidate scores (e.g. heatmap values).
      peak_valid: bool ``[K, N]``.
      fields: ``[H, W, L, 2]`` part affinity fields (one per skeleton limb).
      skeleton: integer ``[L, 2]``.
      min_keypoints: instances with fewer keypoints are dropped.

    Returns:
      ``(keypoints, scores)``: float32 ``[M, K, 3]`` ``[x, y, v]`` in the heatmap frame with
      ``v = 2`` for assigned and ``v = 0`` (``x = y = 0``) for missing keypoints, and float32
      ``[M]`` instance scores (sum of its peak scores and limb scores, divided by its number of
      keypoints), sorted best first. ``M`` may be 0.
    """
    peaks = np.asarray(peaks, np.float32)
    peak_scores = np.asarray(peak_scores, np.float32)
    peak_valid = np.asarray(peak_valid, bool)
    fields = np.asarray(fields, np.float32)
    if peaks.ndim != 3 or peaks.shape[-1] != 2:
        raise ValueError(f"peaks must have shape [K, N, 2]; got {peaks.shape}")
    num_kp, num_cand = peaks.shape[:2]
    for name, arr in (("peak_scores", peak_scores), ("peak_valid", peak_valid)):
        if arr.shape != (num_kp, num_cand):
            raise ValueError(f"{name} must have shape {(num_kp, num_cand)}; got {arr.shape}")
    sk = _check_skeleton(skeleton, num_kp)
    if fields.ndim != 4 or fields.shape[-2:] != (len(sk), 2):
        raise ValueError(f"fields must have shape [H, W, {len(sk)}, 2]; got {fields.shape}")
    # Each instance: [K] candidate index (-1 = none), summed score.
    members: list[np.ndarray] = []
    totals: list[float] = []
    owner: dict[tuple[int, int], int] = {}  # (type, candidate) -> instance index
    for limb, (ka, kb) in enumerate(sk):
        ia = np.flatnonzero(peak_valid[ka])
        ib = np.flatnonzero(peak_valid[kb])
        if ia.size == 0 or ib.size == 0:
            continue
        p1 = np.repeat(peaks[ka, ia], ib.size, axis=0)
        p2 = np.tile(peaks[kb, ib], (ia.size, 1))
        dots = _limb_dots_numpy(fields[..., limb, :], p1, p2, int(num_samples))
        score = dots.mean(-1).reshape(ia.size, ib.size)
        frac = (dots > dot_threshold).mean(-1).reshape(ia.size, ib.size)
        good = (score > min_limb_score) & (frac >= min_fraction)
        order = np.argsort(-np.where(good, score, -np.inf), axis=None)
        used_a, used_b = set(), set()
        for flat in order:
            r, c = divmod(int(flat), ib.size)
            if not good[r, c]:
                break
            ca, cb = int(ia[r]), int(ib[c])
            if ca in used_a or cb in used_b:
                continue
            used_a.add(ca), used_b.add(cb)
            s = float(score[r, c])
            oa, ob = owner.get((ka, ca)), owner.get((kb, cb))
            if oa is None and ob is None:
                row = np.full(num_kp, -1, np.int64)
                row[ka], row[kb] = ca, cb
                members.append(row)
                totals.append(s + float(peak_scores[ka, ca] + peak_scores[kb, cb]))
                owner[(ka, ca)] = owner[(kb, cb)] = len(members) - 1
            elif oa is not None and ob is None:
                if members[oa][kb] < 0:
                    members[oa][kb] = cb
                    owner[(kb, cb)] = oa
                    totals[oa] += s + float(peak_scores[kb, cb])
            elif oa is None and ob is not None:
                if members[ob][ka] < 0:
                    members[ob][ka] = ca
                    owner[(ka, ca)] = ob
                    totals[ob] += s + float(peak_scores[ka, ca])
            elif oa != ob:
                ra, rb = members[oa], members[ob]
                if not np.any((ra >= 0) & (rb >= 0)):
                    ra[rb >= 0] = rb[rb >= 0]
                    totals[oa] += totals[ob] + s
                    for k in np.flatnonzero(rb >= 0):
                        owner[(int(k), int(rb[k]))] = oa
                    rb[:] = -1
                    totals[ob] = 0.0
    out_kp, out_score = [], []
    for row, total in zip(members, totals):
        n = int(np.sum(row >= 0))
        if n < max(int(min_keypoints), 1):
            continue
        inst = np.zeros((num_kp, 3), np.float32)
        for k in np.flatnonzero(row >= 0):
            inst[k, :2] = peaks[k, row[k]]
            inst[k, 2] = 2.0
        out_kp.append(inst)
        out_score.append(total / n)
    if not out_kp:
        return np.zeros((0, num_kp, 3), np.float32), np.zeros((0,), np.float32)
    order = np.argsort(-np.asarray(out_score), kind="stable")
    return np.stack(out_kp)[order], np.asarray(out_score, np.float32)[order]


__all__ = ["group_keypoints", "limb_dots", "limb_score", "part_affinity_fields"]
