"""Detections from box-head outputs: class-specific decoding, score threshold, per-class NMS,
top-k, with static shapes."""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from vai_jax.detection.targets import ROI_BOX_WEIGHTS
from vai_jax.ops.boxes import clip_boxes, decode_boxes, valid_box_mask
from vai_jax.ops.nms import batched_nms
from vai_jax.ops.numerics import softmax


def detect(cls_scores, box_deltas, rois, roi_valid, *, image_size: Sequence[int],
           score_threshold: float = 0.05, nms_threshold: float = 0.5, max_detections: int = 100,
           pre_nms_top_n: int = 1000, box_weights: Sequence[float] = ROI_BOX_WEIGHTS,
           probabilities: bool = False):
    """Per-image detections (torchvision ``RoIHeads.postprocess_detections``).

    Every (RoI, foreground class) pair is a candidate: its box is the RoI decoded with that
    class's deltas and clipped, its score the class probability (softmax over ``C + 1``, or
    ``cls_scores`` as given when ``probabilities``). Candidates below ``score_threshold`` or
    with a side < 0.01 px are dropped; the ``pre_nms_top_n`` best go through class-aware NMS;
    the first ``max_detections`` are returned.

    Args:
      cls_scores ``[B, R, C+1]`` logits (or scores); box_deltas ``[B, R, C+1, 4]``;
      rois ``[B, R, 4]``; roi_valid ``[B, R]`` bool; image_size ``(H, W)``.

    Returns:
      dict of ``boxes [B, D, 4]``, ``scores [B, D]``, ``classes [B, D]`` int32 in ``[0, C)``,
      ``valid [B, D]`` bool, ``roi_index [B, D]`` int32 (source RoI); sorted by score.
    """
    h, w = (int(s) for s in image_size)
    c1 = cls_scores.shape[-1]

    def one(sc, dl, r, rv):
        p = sc if probabilities else softmax(sc, axis=-1)
        boxes = clip_boxes(decode_boxes(dl[:, 1:], r[:, None, :], box_weights), h, w)  # [R, C, 4]
        rr = jnp.broadcast_to(jnp.arange(r.shape[0])[:, None], (r.shape[0], c1 - 1)).reshape(-1)
        cls = jnp.broadcast_to(jnp.arange(c1 - 1)[None, :], (r.shape[0], c1 - 1)).reshape(-1)
        boxes = boxes.reshape(-1, 4)
        s = p[:, 1:].reshape(-1)
        ok = rv[rr] & (s > score_threshold) & valid_box_mask(boxes, min_size=1e-2)
        s = jnp.where(ok, s, -1.0)
        k = min(pre_nms_top_n, s.shape[0])
        top_s, top_i = jax.lax.top_k(s, k)
        keep = batched_nms(boxes[top_i], top_s, cls[top_i].astype(jnp.int32), nms_threshold,
                           max_outputs=max_detections, valid=ok[top_i])
        good = keep >= 0
        j = top_i[jnp.maximum(keep, 0)]
        return {"boxes": jnp.where(good[:, None], boxes[j], 0.0), "scores": jnp.where(good, s[j], 0.0),
                "classes": jnp.where(good, cls[j], 0).astype(jnp.int32), "valid": good,
                "roi_index": jnp.where(good, rr[j], 0).astype(jnp.int32)}

    return jax.vmap(one)(cls_scores, box_deltas, rois, roi_valid)
