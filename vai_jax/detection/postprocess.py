"""Detections from box-head outputs: class-specific decoding, score threshold, per-class NMS,
top-k, with static shapes.

Mask R-CNN masks are pasted back into the image by :func:`paste_masks`: a mask ``[S, S]``
predicted for box ``[x1, y1, x2, y2]`` covers the box: mask cell ``(p, q)`` covers
``[x1 + q * w / S, x1 + (q + 1) * w / S) x [y1 + p * h / S, ...)`` (the continuous frame of
:mod:`vai_jax.ops.coords`, scaled into the box). Image pixel ``(i, j)`` takes the bilinear
interpolation of the mask at its centre ``(j + 0.5, i + 0.5)`` (edge cells extended to the box
border) when the centre lies inside the box, and 0 outside. Done as two small interpolation
matrices per box (``out = Wy @ mask @ Wx^T``), jit-compatible with static shapes.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from vai_jax._validation import (check_array, check_boxes, check_image_size, check_int,
                                 check_number)
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

    Raises:
      ValueError / TypeError (at trace time): inputs whose ``B``, ``R`` or ``C + 1`` disagree
      (or ``C + 1 < 2``), ``image_size`` not two ints >= 1, thresholds outside ``[0, 1]``,
      counts not ints >= 1, ``box_weights`` not four numbers > 0; concrete RoIs that are not
      finite or are inverted. Under ``jit`` a NaN score is never above ``score_threshold``, so
      it is not detected.
    """
    cls_scores = check_array(cls_scores, "cls_scores", ndim=3, kind="floating",
                             shape_hint="[B, R, C+1]")
    box_deltas = check_array(box_deltas, "box_deltas", ndim=4, last_dim=4, kind="floating",
                             shape_hint="[B, R, C+1, 4]")
    rois = check_boxes(rois, "rois", ndim=3, shape_hint="[B, R, 4]")
    roi_valid = check_array(roi_valid, "roi_valid", ndim=2, kind="bool", shape_hint="[B, R]")
    b, r, c1 = cls_scores.shape
    if c1 < 2:
        raise ValueError(f"cls_scores must have C + 1 >= 2 scores per RoI (background and a "
                         f"class); got shape {tuple(cls_scores.shape)}")
    if (tuple(box_deltas.shape[:3]) != (b, r, c1) or tuple(rois.shape[:2]) != (b, r)
            or tuple(roi_valid.shape) != (b, r)):
        raise ValueError(f"cls_scores [B, R, C+1], box_deltas [B, R, C+1, 4], rois [B, R, 4] and "
                         f"roi_valid [B, R] must agree; got {tuple(cls_scores.shape)}, "
                         f"{tuple(box_deltas.shape)}, {tuple(rois.shape)}, "
                         f"{tuple(roi_valid.shape)}")
    h, w = check_image_size(image_size)
    check_number(score_threshold, "score_threshold", ge=0.0, le=1.0)
    check_number(nms_threshold, "nms_threshold", ge=0.0, le=1.0)
    max_detections = check_int(max_detections, "max_detections", ge=1)
    pre_nms_top_n = check_int(pre_nms_top_n, "pre_nms_top_n", ge=1)
    if len(box_weights) != 4:
        raise ValueError(f"box_weights must be four numbers (wx, wy, ww, wh); got {box_weights!r}")
    for v in box_weights:
        check_number(v, "box_weights", gt=0.0)

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


def _paste_weights(lo, hi, size: int, s: int):
    """``[N, size, s]`` interpolation weights from mask cells to image pixels along one axis."""
    centres = jnp.arange(size, dtype=jnp.float32) + 0.5  # [size]
    ext = jnp.maximum(hi - lo, 1e-6)[:, None]
    u = (centres[None, :] - lo[:, None]) / ext * s - 0.5  # mask-cell coordinate of the centre
    inside = (centres[None, :] >= lo[:, None]) & (centres[None, :] < hi[:, None])
    u = jnp.clip(u, 0.0, s - 1.0)
    i0 = jnp.floor(u)
    f = u - i0
    i0 = i0.astype(jnp.int32)
    i1 = jnp.minimum(i0 + 1, s - 1)
    w = (jax.nn.one_hot(i0, s) * (1 - f)[..., None] + jax.nn.one_hot(i1, s) * f[..., None])
    return w * inside[..., None]


def paste_masks(masks: jax.Array, boxes: jax.Array, image_size: Sequence[int]) -> jax.Array:
    """Paste box-frame masks into full images.

    Args:
      masks: ``[N, S, S]`` (or ``[N, Sh, Sw]``) float mask probabilities in each box's frame.
      boxes: ``[N, 4]`` float xyxy input pixels.
      image_size: ``(H, W)``.

    Returns:
      ``[N, H, W]`` float32 in the range of ``masks``; 0 at pixels whose centre is outside the
      box (threshold at 0.5 for a binary mask).
    """
    masks = check_array(masks, "masks", ndim=3, kind="floating", shape_hint="[N, S, S]")
    boxes = check_array(boxes, "boxes", ndim=2, last_dim=4, kind="floating", shape_hint="[N, 4]")
    if boxes.shape[0] != masks.shape[0]:
        raise ValueError(f"boxes must have shape [N, 4] with N={masks.shape[0]}; got {tuple(boxes.shape)}")
    h, w = check_image_size(image_size)
    b = boxes.astype(jnp.float32)
    wy = _paste_weights(b[:, 1], b[:, 3], h, masks.shape[1])  # [N, H, Sh]
    wx = _paste_weights(b[:, 0], b[:, 2], w, masks.shape[2])  # [N, W, Sw]
    return jnp.einsum("nhp,npq,nwq->nhw", wy, masks.astype(jnp.float32), wx)
