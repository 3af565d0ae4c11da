"""Region proposals with static shapes: decoding the RPN (top-k, decode, clip, remove small,
NMS, top-k) and the dense sliding-window generator used by R-CNN / Fast R-CNN here.

R-CNN's selective search (grouping superpixels by colour and texture) is replaced by dense
sliding windows: every position of a regular grid with a few sizes and aspect ratios, clipped to
the image. On the shapes data this gives the same role — a few hundred class-agnostic boxes
per image, independent of the network — with a static count and no extra dependency: the
sliding-window detectors that preceded selective search.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from vai_jax._validation import (check_array, check_boxes, check_image_size, check_int,
                                 check_number)
from vai_jax.detection.anchors import level_anchors
from vai_jax.ops.boxes import box_iou, clip_boxes, decode_boxes, valid_box_mask
from vai_jax.ops.nms import batched_nms


def sliding_window_proposals(image_size: Sequence[int], *, stride: int, sizes: Sequence[float],
                             aspect_ratios: Sequence[float]) -> jnp.ndarray:
    """Dense windows: centres every ``stride`` pixels (cell centres), ``len(sizes) *
    len(aspect_ratios)`` shapes each, clipped to the image, boxes that collapse dropped.

    Returns ``[P, 4]`` float32 xyxy input pixels (a constant; P depends only on the arguments).

    Raises:
      TypeError / ValueError: ``image_size`` not two ints >= 1, ``stride`` not an int >= 1,
      ``sizes`` / ``aspect_ratios`` empty or not positive finite numbers.
    """
    h, w = check_image_size(image_size)
    stride = check_int(stride, "stride", ge=1)
    for name, values in (("sizes", sizes), ("aspect_ratios", aspect_ratios)):
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or not len(values):
            raise ValueError(f"{name} must be a non-empty sequence of numbers > 0; got {values!r}")
        for v in values:
            check_number(v, name, gt=0)
    fh, fw = -(-h // stride), -(-w // stride)
    a = np.array(level_anchors((fh, fw), stride, sizes, aspect_ratios, offset=0.5, round_to_int=False))
    a[:, [0, 2]] = np.clip(a[:, [0, 2]], 0, w)
    a[:, [1, 3]] = np.clip(a[:, [1, 3]], 0, h)
    keep = (a[:, 2] - a[:, 0] >= 1) & (a[:, 3] - a[:, 1] >= 1)
    return jnp.asarray(np.unique(a[keep], axis=0))


def decode_proposals(anchors, logits, deltas, *, image_size: Sequence[int], pre_nms_top_n: int,
                     post_nms_top_n: int, nms_threshold: float = 0.7, min_size: float = 1e-3,
                     level_counts: Sequence[int] | None = None):
    """RPN outputs -> proposals of each image (torchvision ``RegionProposalNetwork.filter_proposals``).

    Per image and level: the ``pre_nms_top_n`` highest objectness logits; decode (weights
    1, 1, 1, 1), clip to the image, drop boxes with a side < ``min_size``; NMS at
    ``nms_threshold`` (per level when ``level_counts`` is given); keep the best
    ``post_nms_top_n``.

    Args:
      anchors ``[A, 4]``; logits ``[B, A]``; deltas ``[B, A, 4]``; image_size ``(H, W)``;
      level_counts: anchors per level (from :func:`vai_jax.detection.anchors.multilevel_anchors`).

    Returns:
      ``(boxes [B, post, 4], scores [B, post] (sigmoid objectness), valid [B, post] bool)``,
      boxes sorted by score, padding rows zero; gradients stopped.

    Raises:
      ValueError / TypeError (at trace time): ``anchors``, ``logits`` and ``deltas`` whose
      anchor counts ``A`` or batch sizes differ, ``level_counts`` not summing to ``A``,
      ``image_size`` not two ints >= 1, top-n counts not ints >= 1, ``nms_threshold`` outside
      ``[0, 1]``, negative ``min_size``. Concrete anchors are also checked to be finite and
      not inverted; traced NaN logits rank last in NMS (see :func:`vai_jax.ops.nms.nms`).
    """
    anchors = jnp.asarray(check_boxes(anchors, "anchors", ndim=2, shape_hint="[A, 4]"))
    logits = check_array(logits, "logits", ndim=2, kind="floating", shape_hint="[B, A]")
    deltas = check_array(deltas, "deltas", ndim=3, last_dim=4, kind="floating",
                         shape_hint="[B, A, 4]")
    a = anchors.shape[0]
    if logits.shape[1] != a or tuple(deltas.shape[:2]) != tuple(logits.shape):
        raise ValueError(f"anchors [A, 4], logits [B, A] and deltas [B, A, 4] must agree on A "
                         f"and B; got anchors {tuple(anchors.shape)}, logits "
                         f"{tuple(logits.shape)}, deltas {tuple(deltas.shape)}")
    h, w = check_image_size(image_size)
    pre_nms_top_n = check_int(pre_nms_top_n, "pre_nms_top_n", ge=1)
    post_nms_top_n = check_int(post_nms_top_n, "post_nms_top_n", ge=1)
    check_number(nms_threshold, "nms_threshold", ge=0.0, le=1.0)
    check_number(min_size, "min_size", ge=0.0)
    if level_counts is not None:
        level_counts = [check_int(c, "level_counts", ge=1) for c in level_counts]
        if sum(level_counts) != a:
            raise ValueError(f"level_counts must sum to the number of anchors A={a}; got "
                             f"{level_counts} (sum {sum(level_counts)})")
    logits = jax.lax.stop_gradient(logits)
    deltas = jax.lax.stop_gradient(deltas)
    counts = [a] if level_counts is None else level_counts
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int)

    def one(lg, dl):
        sel_idx, lvl_ids = [], []
        for li, (s, c) in enumerate(zip(starts, counts)):
            k = min(pre_nms_top_n, c)
            _, i = jax.lax.top_k(lg[s:s + c], k)
            sel_idx.append(i + s)
            lvl_ids.append(jnp.full((k,), li, jnp.int32))
        idx = jnp.concatenate(sel_idx)
        lvl = jnp.concatenate(lvl_ids)
        boxes = clip_boxes(decode_boxes(dl[idx], anchors[idx]), h, w)
        sc = lg[idx]
        ok = valid_box_mask(boxes, min_size=min_size)
        keep = batched_nms(boxes, sc, lvl, nms_threshold, max_outputs=post_nms_top_n, valid=ok)
        good = keep >= 0
        k = jnp.maximum(keep, 0)
        return (jnp.where(good[:, None], boxes[k], 0.0), jnp.where(good, jax.nn.sigmoid(sc[k]), 0.0), good)

    return jax.vmap(one)(logits, deltas)


def proposal_recall(proposals, proposal_valid, gt_boxes, gt_valid, *,
                    thresholds: Sequence[float] = (0.5, 0.7)) -> dict:
    """Share of ground-truth boxes covered by a proposal with IoU >= each threshold.

    Args:
      proposals ``[B, P, 4]`` xyxy input pixels, proposal_valid ``[B, P]`` bool; gt_boxes
      ``[B, M, 4]`` (same frame), gt_valid ``[B, M]`` bool (padding False).

    Returns:
      ``{"recall@0.5": float, ...}`` over all valid ground-truth boxes of the batch (0 when
      there are none), and ``"mean_best_iou"`` (mean over them of the best proposal IoU).
    """
    p = jnp.asarray(proposals, jnp.float32)
    g = jnp.asarray(gt_boxes, jnp.float32)
    if p.ndim != 3 or p.shape[-1] != 4 or g.ndim != 3 or g.shape[-1] != 4 or p.shape[0] != g.shape[0]:
        raise ValueError(f"proposals must be [B, P, 4] and gt_boxes [B, M, 4] with the same B; got "
                         f"{tuple(p.shape)} and {tuple(g.shape)}")
    iou = jax.vmap(box_iou)(p, g)  # [B, P, M]
    iou = jnp.where(jnp.asarray(proposal_valid, bool)[:, :, None], iou, 0.0)
    best = jnp.max(iou, axis=1) if p.shape[1] else jnp.zeros(g.shape[:2])
    gv = jnp.asarray(gt_valid, bool)
    n = jnp.maximum(jnp.sum(gv), 1)
    out = {f"recall@{t:g}": float(jnp.sum(gv & (best >= t)) / n) for t in thresholds}
    out["mean_best_iou"] = float(jnp.sum(jnp.where(gv, best, 0.0)) / n)
    return out
