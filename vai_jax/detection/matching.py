"""Matching boxes to ground truth and balanced sampling, with static shapes.

Both are the label-assignment steps of two-stage detectors (Ren et al., 2015; torchvision's
``Matcher`` and ``BalancedPositiveNegativeSampler``), written for ``jax.jit``: padded ground
truth is masked by ``gt_valid`` and a sample is a fixed number of index slots with a ``valid``
mask instead of a variable-length list.

Frames: boxes are ``[x1, y1, x2, y2]`` in input-image pixels (continuous frame of
:mod:`vai_jax.ops.coords`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from vai_jax._validation import check_array
from vai_jax.ops.boxes import box_iou, valid_box_mask

FOREGROUND = 1
BACKGROUND = 0
IGNORE = -1


def match_boxes(
    boxes: jax.Array,
    gt_boxes: jax.Array,
    gt_valid: jax.Array,
    *,
    high_threshold: float,
    low_threshold: float,
    allow_low_quality: bool = True,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Assign each box (anchor or proposal) to its best-overlapping ground-truth box.

    Rules (torchvision ``Matcher``): with ``iou`` the best IoU of a box over the valid ground
    truth, the box is foreground when ``iou >= high_threshold``, background when
    ``iou < low_threshold`` and ignored in between. With ``allow_low_quality`` every valid
    ground-truth box also makes foreground the box(es) that overlap it most (ties included,
    "the best anchor per box kept"), provided that overlap is > 0 (torchvision would also take
    every zero-overlap box of a ground-truth box that overlaps nothing; we do not). Padding
    (``gt_valid`` False) and degenerate ground truth (zero or negative area, non-finite) never
    match. Without valid ground truth every box is background.

    Args:
      boxes: ``[N, 4]`` float xyxy boxes.
      gt_boxes: ``[M, 4]`` float xyxy ground truth (padded).
      gt_valid: ``[M]`` bool.
      high_threshold, low_threshold: IoU thresholds (e.g. 0.7 / 0.3 for the RPN, 0.5 / 0.5 for
        the RoI head, where everything below 0.5 is background).
      allow_low_quality: keep the best box of each ground-truth box as foreground.

    Returns:
      ``(matched [N] int32, labels [N] int32, iou [N] float)``: index of the best valid ground
      truth (0 when there is none), ``1`` foreground / ``0`` background / ``-1`` ignore, and the
      best IoU (0 without ground truth).
    """
    boxes = check_array(boxes, "boxes", ndim=2, last_dim=4, kind="floating", shape_hint="[N, 4]")
    gt_boxes = check_array(gt_boxes, "gt_boxes", ndim=2, last_dim=4, kind="floating", shape_hint="[M, 4]")
    gt_valid = check_array(gt_valid, "gt_valid", ndim=1, kind="bool", shape_hint="[M]")
    if gt_valid.shape[0] != gt_boxes.shape[0]:
        raise ValueError(f"gt_valid must have shape [M]=[{gt_boxes.shape[0]}]; got {tuple(gt_valid.shape)}")
    if not low_threshold <= high_threshold:
        raise ValueError(f"low_threshold must be <= high_threshold; got {low_threshold} > {high_threshold}")
    n = boxes.shape[0]
    if gt_boxes.shape[0] == 0:
        return jnp.zeros((n,), jnp.int32), jnp.zeros((n,), jnp.int32), jnp.zeros((n,), boxes.dtype)
    ok = gt_valid & valid_box_mask(gt_boxes)
    safe_gt = jnp.where(ok[:, None], gt_boxes, 0)
    iou = jnp.where(ok[None, :], box_iou(boxes, safe_gt.astype(boxes.dtype)), -1.0)  # [N, M]
    best = jnp.max(iou, axis=1)
    matched = jnp.argmax(iou, axis=1).astype(jnp.int32)
    labels = jnp.where(best >= high_threshold, FOREGROUND,
                       jnp.where(best < low_threshold, BACKGROUND, IGNORE)).astype(jnp.int32)
    if allow_low_quality:
        best_per_gt = jnp.max(iou, axis=0)  # [M]
        is_best = (iou == best_per_gt[None, :]) & ok[None, :] & (best_per_gt[None, :] > 0)
        labels = jnp.where(jnp.any(is_best, axis=1), FOREGROUND, labels)
    best = jnp.maximum(best, 0.0)
    matched = jnp.where(jnp.any(ok), matched, 0)
    return matched, labels, best


def balanced_sample(
    rng: jax.Array,
    labels: jax.Array,
    *,
    num_samples: int,
    positive_fraction: float,
) -> tuple[jax.Array, jax.Array]:
    """Sample up to ``num_samples`` entries, at most ``positive_fraction`` of them foreground.

    As torchvision's ``BalancedPositiveNegativeSampler``: ``P = min(#fg, int(num_samples *
    positive_fraction))`` foreground entries and ``min(#bg, num_samples - P)`` background
    entries, uniformly at random without replacement; ignored entries (``-1``) are never taken.

    Args:
      rng: PRNG key.
      labels: ``[N]`` int: ``1`` foreground, ``0`` background, ``-1`` ignore (from
        :func:`match_boxes`; any value > 0 counts as foreground).
      num_samples: static number of slots ``S``.
      positive_fraction: in ``[0, 1]``.

    Returns:
      ``(indices [S] int32, valid [S] bool)``: sampled positions into ``labels`` — foreground
      first, then background, then padding slots (``valid`` False, index 0).
    """
    labels = check_array(labels, "labels", ndim=1, kind="integer", shape_hint="[N]")
    if not isinstance(num_samples, int) or num_samples <= 0:
        raise ValueError(f"num_samples must be a Python int > 0; got {num_samples!r}")
    if not 0.0 <= positive_fraction <= 1.0:
        raise ValueError(f"positive_fraction must be in [0, 1]; got {positive_fraction!r}")
    n = labels.shape[0]
    pos = labels > 0
    neg = labels == 0
    max_pos = min(int(num_samples * positive_fraction), n)
    k_neg = min(num_samples, n)
    u = jax.random.uniform(rng, (n,))
    num_pos = jnp.minimum(jnp.sum(pos), max_pos)
    num_neg = jnp.minimum(jnp.sum(neg), num_samples - num_pos)
    parts_idx, parts_ok = [], []
    if max_pos > 0:
        _, idx_p = jax.lax.top_k(jnp.where(pos, u, -1.0), max_pos)
        parts_idx.append(idx_p)
        parts_ok.append(jnp.arange(max_pos) < num_pos)
    _, idx_n = jax.lax.top_k(jnp.where(neg, u, -1.0), k_neg)
    parts_idx.append(idx_n)
    parts_ok.append(jnp.arange(k_neg) < num_neg)
    idx = jnp.concatenate(parts_idx).astype(jnp.int32)
    ok = jnp.concatenate(parts_ok)
    order = jnp.argsort(~ok, stable=True)[:num_samples]
    idx, ok = idx[order], ok[order]
    if idx.shape[0] < num_samples:
        pad = num_samples - idx.shape[0]
        idx = jnp.pad(idx, (0, pad))
        ok = jnp.pad(ok, (0, pad))
    return jnp.where(ok, idx, 0), ok


def sample_mask(indices: jax.Array, valid: jax.Array, size: int) -> jax.Array:
    """``[S]`` sampled ``indices``/``valid`` -> bool ``[size]`` mask of the sampled positions."""
    return jnp.zeros((size,), bool).at[indices].max(valid)
