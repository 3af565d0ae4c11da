"""torchvision's R-CNN inference post-processing with static shapes: ``postprocess_detections``
(boxes, scores, labels), ``paste_masks_in_image`` (Mask R-CNN) and ``heatmaps_to_keypoints``
(Keypoint R-CNN).

The last two resize a small map to a size that depends on each box (``F.interpolate`` to the
box's pixel size). Here every box is evaluated on a static canvas (the image for masks, the
resized image for keypoint heatmaps) with PyTorch's interpolation rule evaluated for that box's
size, so the values are those of the dynamic resize. The sampling positions
``scale * (o + 0.5) - 0.5`` and the bicubic weights are computed with one rounding per fused
multiply-add (:func:`_fma`), as PyTorch's CPU kernels are compiled.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from vai_jax.ops._ieee import _split, _two_sum, div_rn
from vai_jax.ops.boxes import clip_boxes, decode_boxes
from vai_jax.ops.nms import batched_nms

BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
_A = -0.75


def _fma(a, b, c):
    """float32 ``a * b + c`` with (almost always) one rounding: the product is split into exact
    12-bit partial products and summed with error-free additions."""
    a, b, c = jnp.broadcast_arrays(*(jnp.asarray(v, jnp.float32) for v in (a, b, c)))
    a_hi, a_lo = _split(a)
    b_hi, b_lo = _split(b)
    s, e1 = _two_sum(c, a_hi * b_hi)
    s, e2 = _two_sum(s, a_hi * b_lo)
    s, e3 = _two_sum(s, a_lo * b_hi)
    return s + (((e1 + e2) + e3) + a_lo * b_lo)


def _source(scale, o, *, cubic: bool):
    src = _fma(scale, o.astype(jnp.float32) + 0.5, -0.5)
    return src if cubic else jnp.maximum(src, 0.0)


def postprocess_detections(class_logits, box_deltas, proposals, proposal_valid, *,
                           image_size: Sequence[int], score_thresh: float = 0.05,
                           nms_thresh: float = 0.5, detections_per_img: int = 100,
                           candidates: int = 4096):
    """torchvision's ``RoIHeads.postprocess_detections`` for one image.

    Softmax over ``C`` classes; boxes decoded per class with weights ``(10, 10, 5, 5)`` and
    clipped to ``image_size``; background (class 0) dropped; every (proposal, class) with score
    ``> score_thresh`` and both sides ``>= 0.01`` is a candidate; NMS per class at
    ``nms_thresh``; the first ``detections_per_img`` kept.

    Static shapes: NMS runs on the ``candidates`` best-scoring candidates (stable order). The
    result equals torchvision's whenever at most ``candidates`` pass the thresholds or
    ``detections_per_img`` are kept among them.

    Args:
      class_logits ``[P, C]``; box_deltas ``[P, C, 4]``; proposals ``[P, 4]``; proposal_valid
      ``[P]`` bool.

    Returns:
      ``(boxes [D, 4], scores [D], labels [D] int32, valid [D] bool)``, ``D =
      detections_per_img``, descending score; padding rows zero.
    """
    h, w = (int(s) for s in image_size)
    p, c = class_logits.shape
    boxes = decode_boxes(box_deltas, proposals[:, None, :], BOX_WEIGHTS)
    boxes = clip_boxes(boxes, h, w)[:, 1:].reshape(-1, 4)
    scores = jax.nn.softmax(class_logits, axis=-1)[:, 1:].reshape(-1)
    labels = jnp.broadcast_to(jnp.arange(1, c, dtype=jnp.int32), (p, c - 1)).reshape(-1)
    ok = jnp.repeat(proposal_valid, c - 1) & (scores > score_thresh)
    ok &= (boxes[:, 2] - boxes[:, 0] >= 1e-2) & (boxes[:, 3] - boxes[:, 1] >= 1e-2)
    m = min(int(candidates), scores.shape[0])
    top, idx = lax.top_k(jnp.where(ok, scores, -jnp.inf), m)
    keep = batched_nms(boxes[idx], top, labels[idx], nms_thresh, max_outputs=detections_per_img,
                       valid=jnp.isfinite(top))
    good = keep >= 0
    k = idx[jnp.maximum(keep, 0)]
    return (jnp.where(good[:, None], boxes[k], 0.0), jnp.where(good, scores[k], 0.0),
            jnp.where(good, labels[k], 0), good)


def _expand_boxes(boxes, scale: float):
    w_half = (boxes[:, 2] - boxes[:, 0]) * 0.5 * jnp.float32(scale)
    h_half = (boxes[:, 3] - boxes[:, 1]) * 0.5 * jnp.float32(scale)
    x_c = (boxes[:, 2] + boxes[:, 0]) * 0.5
    y_c = (boxes[:, 3] + boxes[:, 1]) * 0.5
    return jnp.stack([x_c - w_half, y_c - h_half, x_c + w_half, y_c + h_half], axis=1)


def _linear_taps(size, n_in: int, n_out: int):
    """PyTorch's bilinear taps for resizing ``n_in`` to a traced ``size`` (``[N]``), evaluated
    at output positions ``0 .. n_out - 1``: ``(i0, i1, w0, w1)`` each ``[N, n_out]``."""
    scale = div_rn(jnp.float32(n_in), size.astype(jnp.float32))[:, None]
    src = _source(scale, jnp.arange(n_out)[None, :], cubic=False)
    i0 = jnp.minimum(jnp.floor(src), n_in - 1)
    lam = jnp.clip(src - i0, 0.0, 1.0)
    i0 = i0.astype(jnp.int32)
    same = (size[:, None] == n_in)
    i1 = jnp.where(same, i0, i0 + (i0 < n_in - 1))
    i0 = jnp.where(same, jnp.arange(n_out)[None, :], i0)
    i1 = jnp.where(same, jnp.arange(n_out)[None, :], i1)
    return (jnp.clip(i0, 0, n_in - 1), jnp.clip(i1, 0, n_in - 1), jnp.where(same, 1.0, 1.0 - lam),
            jnp.where(same, 0.0, lam))


def paste_masks_in_image(masks, boxes, image_size: Sequence[int], padding: int = 1):
    """torchvision's ``paste_masks_in_image``: each ``M x M`` mask padded by ``padding`` zeros,
    its box expanded by ``(M + 2 padding) / M`` and truncated to integers, the padded mask
    resized bilinearly to the box's ``(y2 - y1 + 1, x2 - x1 + 1)`` pixels and pasted at its
    corner, clipped to the image.

    Args: masks ``[N, M, M]`` probabilities; boxes ``[N, 4]`` in the image's pixels; image_size
    ``(H, W)``. Returns ``[N, H, W]``.
    """
    m = masks.shape[-1]
    im_h, im_w = (int(s) for s in image_size)
    padded = jnp.pad(masks, ((0, 0), (padding, padding), (padding, padding)))
    size = m + 2 * padding
    b = _expand_boxes(boxes, float(size) / m).astype(jnp.int32)  # truncation, as .to(int64)
    bw = jnp.maximum(b[:, 2] - b[:, 0] + 1, 1)
    bh = jnp.maximum(b[:, 3] - b[:, 1] + 1, 1)

    def axis(lo, hi, length, extent):
        pos = jnp.arange(extent)[None, :] - lo[:, None]  # position in the resized mask
        # Boxes inside the image expand by (size / m - 1) / 2 of their side beyond it, so
        # positions stay below ``reach``.
        reach = extent + extent // m + 4
        i0, i1, w0, w1 = _linear_taps(length, size, reach)
        pos_c = jnp.clip(pos, 0, reach - 1)
        take = lambda a: jnp.take_along_axis(a, pos_c, axis=1)  # noqa: E731
        inside = (pos >= 0) & (pos < (hi - lo + 1)[:, None])  # [max(lo, 0), min(hi + 1, extent))
        return take(i0), take(i1), take(w0), take(w1), inside

    # Positions beyond the canvas are outside the image anyway.
    yi0, yi1, yw0, yw1, yin = axis(b[:, 1], b[:, 3], bh, im_h)
    xi0, xi1, xw0, xw1, xin = axis(b[:, 0], b[:, 2], bw, im_w)
    rows = lambda idx: jnp.take_along_axis(padded, idx[:, :, None], axis=1)  # noqa: E731
    cols = lambda a, idx: jnp.take_along_axis(a, idx[:, None, :], axis=2)  # noqa: E731
    r0, r1 = rows(yi0), rows(yi1)  # [N, H, size]
    t0 = _fma(cols(r0, xi1), xw1[:, None, :], cols(r0, xi0) * xw0[:, None, :])
    t1 = _fma(cols(r1, xi1), xw1[:, None, :], cols(r1, xi0) * xw0[:, None, :])
    out = _fma(t1, yw1[:, :, None], t0 * yw0[:, :, None])
    return jnp.where(yin[:, :, None] & xin[:, None, :], out, 0.0)


def _cubic(t):
    one = jnp.float32(1.0)
    a = jnp.float32(_A)
    near = lambda x: _fma(_fma(a + 2, x, -(a + 3)) * x, x, one)  # noqa: E731
    far = lambda x: _fma(_fma(_fma(a, x, -5 * a), x, 8 * a), x, -4 * a)  # noqa: E731
    s = one - t
    return [far(t + one), near(t), near(s), far(s + one)]


def _cubic_taps(size, n_in: int, n_out: int):
    """Bicubic taps (indices ``[4, n_out]``, weights ``[4, n_out]``) resizing ``n_in`` to the
    traced scalar ``size``."""
    scale = div_rn(jnp.float32(n_in), size.astype(jnp.float32))
    src = _source(scale, jnp.arange(n_out), cubic=True)
    base = jnp.minimum(jnp.floor(src), n_in - 1)
    t = jnp.clip(src - base, 0.0, 1.0)
    base = base.astype(jnp.int32)
    idx = jnp.stack([jnp.clip(base - 1 + j, 0, n_in - 1) for j in range(4)])
    return idx, jnp.stack(_cubic(t))


def heatmaps_to_keypoints(maps, rois, canvas: Sequence[int]):
    """torchvision's ``heatmaps_to_keypoints``: each RoI's heatmaps ``[S, S, K]`` resized
    bicubically to ``(ceil(h), ceil(w))`` (box sides clamped at 1), the arg-max (first in row-major
    order) mapped to ``(x + 0.5) * w / ceil(w) + x1`` (and y), scored by the resized map there.

    Args:
      maps: ``[R, S, S, K]`` heatmap logits. rois: ``[R, 4]`` boxes. canvas: ``(H, W)`` bounding
        ``ceil`` of every box side (the resized image's size for clipped boxes).

    Returns:
      ``[R, K, 3]``: x, y, score (the resized heatmap's value at the arg-max).
    """
    n_in = maps.shape[1]
    ch, cw = (int(s) for s in canvas)
    widths = jnp.maximum(rois[:, 2] - rois[:, 0], 1.0)
    heights = jnp.maximum(rois[:, 3] - rois[:, 1], 1.0)
    wc = jnp.minimum(jnp.ceil(widths), cw)
    hc = jnp.minimum(jnp.ceil(heights), ch)

    def one(args):
        m, w, h, wr, hr, x1, y1 = args
        iy, wy = _cubic_taps(hr, n_in, ch)
        ix, wx = _cubic_taps(wr, n_in, cw)
        cols = None  # [S, cw, K]: width first, as PyTorch's kernel
        for j in range(4):
            term = m[:, ix[j], :] * wx[j][None, :, None]
            cols = term if cols is None else cols + term
        out = None  # [ch, cw, K]
        for j in range(4):
            term = cols[iy[j], :, :] * wy[j][:, None, None]
            out = term if out is None else out + term
        inside = (jnp.arange(ch)[:, None] < hr) & (jnp.arange(cw)[None, :] < wr)
        flat = jnp.where(inside[:, :, None], out, -jnp.inf).reshape(ch * cw, -1)
        pos = jnp.argmax(flat, axis=0)  # first maximum, [K]
        score = jnp.take_along_axis(flat, pos[None, :], axis=0)[0]
        xi, yi = pos % cw, pos // cw
        x = (xi.astype(jnp.float32) + 0.5) * div_rn(w, wr) + x1
        y = (yi.astype(jnp.float32) + 0.5) * div_rn(h, hr) + y1
        return jnp.stack([x, y, score], axis=-1)

    return lax.map(one, (maps, widths, heights, wc, hc, rois[:, 0], rois[:, 1]))

