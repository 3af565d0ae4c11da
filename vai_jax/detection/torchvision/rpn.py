"""torchvision's ``AnchorGenerator`` and ``RegionProposalNetwork.filter_proposals`` at inference,
with static shapes (the RPN head itself is :class:`vai_jax.detection.rpn.RPNHead`)."""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from vai_jax.detection.anchors import cell_anchors, grid_anchors
from vai_jax.ops.boxes import clip_boxes, decode_boxes
from vai_jax.ops.nms import batched_nms

ANCHOR_SIZES = ((32,), (64,), (128,), (256,), (512,))
ASPECT_RATIOS = (0.5, 1.0, 2.0)


def anchors_for(padded: Sequence[int], feature_shapes: Sequence[Sequence[int]],
                sizes=ANCHOR_SIZES, aspect_ratios=ASPECT_RATIOS) -> tuple[jax.Array, tuple]:
    """``AnchorGenerator`` for a padded batch ``(H_p, W_p)``: per level ``(h, w)`` the stride is
    ``(H_p // h, W_p // w)`` (integer division, as torchvision), the base anchors rounded, corners
    at ``(j * stride_w, i * stride_h)``. Returns ``(anchors [A, 4], anchors per level)``."""
    levels = []
    for (h, w), s in zip(feature_shapes, sizes):
        cell = cell_anchors(s, aspect_ratios, round_to_int=True)
        levels.append(grid_anchors(cell, (h, w), (padded[0] // h, padded[1] // w), offset=0.0))
    return jnp.concatenate(levels, 0), tuple(int(a.shape[0]) for a in levels)


def filter_proposals(anchors, logits, deltas, level_counts: Sequence[int], *,
                     image_size: Sequence[int], pre_nms_top_n: int, post_nms_top_n: int,
                     nms_thresh: float = 0.7, score_thresh: float = 0.0, min_size: float = 1e-3):
    """RPN outputs -> proposals, torchvision's ``filter_proposals``: per level the
    ``pre_nms_top_n`` highest objectness logits; boxes decoded with weights ``(1, 1, 1, 1)``
    (``dw, dh`` clamped at ``log(1000 / 16)``); sigmoid scores; clipped to ``image_size`` (the
    resized image, not the padding); boxes with a side < ``min_size`` and scores <
    ``score_thresh`` dropped; NMS per level at ``nms_thresh`` on the scores; the first
    ``post_nms_top_n`` kept.

    Args:
      anchors ``[A, 4]``; logits ``[B, A]``; deltas ``[B, A, 4]``; level_counts anchors per level.

    Returns:
      ``(boxes [B, post, 4], scores [B, post], valid [B, post] bool)`` in torchvision's order
      (descending score), padding rows zero.
    """
    h, w = (int(s) for s in image_size)
    starts = np.concatenate([[0], np.cumsum(level_counts)[:-1]]).astype(int)

    def one(lg, dl):
        idx, lvl = [], []
        for li, (s, c) in enumerate(zip(starts, level_counts)):
            k = min(pre_nms_top_n, int(c))
            _, i = jax.lax.top_k(lg[s:s + c], k)
            idx.append(i + s)
            lvl.append(jnp.full((k,), li, jnp.int32))
        idx, lvl = jnp.concatenate(idx), jnp.concatenate(lvl)
        boxes = clip_boxes(decode_boxes(dl[idx], anchors[idx]), h, w)
        scores = jax.nn.sigmoid(lg[idx])
        bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        ok = (bw >= min_size) & (bh >= min_size) & (scores >= score_thresh)
        keep = batched_nms(boxes, scores, lvl, nms_thresh, max_outputs=post_nms_top_n, valid=ok)
        good = keep >= 0
        k = jnp.maximum(keep, 0)
        return (jnp.where(good[:, None], boxes[k], 0.0), jnp.where(good, scores[k], 0.0), good)

    return jax.vmap(one)(jax.lax.stop_gradient(logits), jax.lax.stop_gradient(deltas))
