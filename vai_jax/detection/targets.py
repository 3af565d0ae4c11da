"""Training targets of two-stage detectors: anchor labels for the RPN, sampled RoIs with class
and box targets for the box head, and mask targets, per image with static shapes (``vmap`` them
over the batch).

Frames: boxes ``[x1, y1, x2, y2]`` in input-image pixels; masks ``[M, H, W]`` on the image's
pixel grid (pixel (i, j) covers ``[j, j+1) x [i, i+1)``).
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from vai_jax.ops.boxes import encode_boxes, valid_box_mask
from vai_jax.detection.matching import IGNORE, balanced_sample, match_boxes, sample_mask
from vai_jax.ops.roi_align import roi_align_batched

ROI_BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


def _safe_encode(boxes, refs, fg, weights):
    """encode_boxes where ``fg``; zeros elsewhere (no NaN from padding / degenerate boxes)."""
    ok = fg & valid_box_mask(boxes) & valid_box_mask(refs)
    unit = jnp.array([0.0, 0.0, 1.0, 1.0], boxes.dtype)
    d = encode_boxes(jnp.where(ok[..., None], boxes, unit), jnp.where(ok[..., None], refs, unit), weights)
    return jnp.where(ok[..., None], d, 0.0)


def rpn_targets(rng, anchors, gt_boxes, gt_valid, *, high_threshold: float = 0.7,
                low_threshold: float = 0.3, num_samples: int = 256,
                positive_fraction: float = 0.5):
    """Anchor labels and regression targets of one image (Faster R-CNN's RPN).

    Anchors are matched with :func:`vai_jax.detection.matching.match_boxes` (IoU >= 0.7 object,
    < 0.3 background, the best anchor of each box kept) and ``num_samples`` of them are sampled
    with at most ``positive_fraction`` objects. Cross-boundary anchors are kept (torchvision).

    Args:
      rng: PRNG key. anchors: ``[A, 4]``. gt_boxes ``[M, 4]``, gt_valid ``[M]`` bool.

    Returns:
      ``(labels [A] int32 (1/0/-1), weights [A] float32 (1 = sampled), box_targets [A, 4])``
      (deltas for weights ``(1, 1, 1, 1)``, zero where not foreground).
    """
    matched, labels, _ = match_boxes(anchors, gt_boxes, gt_valid, high_threshold=high_threshold,
                                     low_threshold=low_threshold, allow_low_quality=True)
    idx, ok = balanced_sample(rng, labels, num_samples=num_samples, positive_fraction=positive_fraction)
    weights = sample_mask(idx, ok, anchors.shape[0]).astype(jnp.float32)
    targets = _safe_encode(gt_boxes[matched], anchors, labels > 0, (1.0, 1.0, 1.0, 1.0))
    return labels, weights, targets


def roi_targets(rng, proposals, proposal_valid, gt_boxes, gt_classes, gt_valid, *,
                num_samples: int = 512, positive_fraction: float = 0.25,
                fg_threshold: float = 0.5, bg_threshold: float = 0.5,
                box_weights: Sequence[float] = ROI_BOX_WEIGHTS, add_gt: bool = True):
    """Sample RoIs of one image for the box head (Fast R-CNN's mini-batch sampling).

    Proposals (plus the ground truth boxes themselves when ``add_gt``) with IoU >=
    ``fg_threshold`` are foreground, those with IoU < ``bg_threshold`` background; up to
    ``num_samples`` are sampled with at most ``positive_fraction`` foreground (the paper:
    R/N = 64 RoIs per image, 25% foreground, background IoU in [0.1, 0.5) — here [0, 0.5)).

    Args:
      rng: PRNG key. proposals ``[P, 4]``, proposal_valid ``[P]`` bool (padding is never
        sampled). gt_boxes ``[M, 4]``, gt_classes ``[M]`` int in ``[0, C)``, gt_valid ``[M]``.

    Returns:
      dict: ``rois [S, 4]``, ``valid [S]`` bool, ``labels [S]`` int32 (class + 1, 0 background),
      ``box_targets [S, 4]`` (weights ``box_weights``, zero unless foreground), ``matched [S]``
      int32 (ground-truth index of each RoI).
    """
    gt_ok = gt_valid & valid_box_mask(gt_boxes)
    if add_gt:
        proposals = jnp.concatenate([proposals, gt_boxes.astype(proposals.dtype)], 0)
        proposal_valid = jnp.concatenate([proposal_valid, gt_ok], 0)
    matched, fg, _ = match_boxes(proposals, gt_boxes, gt_valid, high_threshold=fg_threshold,
                                 low_threshold=bg_threshold, allow_low_quality=False)
    fg = jnp.where(proposal_valid & valid_box_mask(proposals), fg, IGNORE)
    idx, ok = balanced_sample(rng, fg, num_samples=num_samples, positive_fraction=positive_fraction)
    rois = jnp.where(ok[:, None], proposals[idx], 0.0)
    m = matched[idx]
    is_fg = ok & (fg[idx] > 0)
    labels = jnp.where(is_fg, gt_classes[m] + 1, 0).astype(jnp.int32)
    targets = _safe_encode(gt_boxes[m].astype(rois.dtype), rois, is_fg, box_weights)
    return {"rois": jax.lax.stop_gradient(rois), "valid": ok, "labels": labels,
            "box_targets": targets, "matched": m}


def mask_targets(gt_masks, matched, rois, size: int = 28):
    """Mask targets of one image's RoIs: the matched object's mask cropped to each RoI and
    resampled to ``size x size`` with RoIAlign (aligned, 2x2 samples per bin), in ``[0, 1]``.

    Args: gt_masks ``[M, H, W]`` bool/float; matched ``[S]`` int; rois ``[S, 4]``.
    Returns ``[S, size, size]`` float32 (the loss thresholds nothing; soft targets at edges).
    """
    m = gt_masks[matched].astype(jnp.float32)[..., None]  # [S, H, W, 1]
    out = roi_align_batched(m, rois[:, None, :].astype(jnp.float32), size, sampling_ratio=2, aligned=True)
    return out[:, 0, :, :, 0]
