"""Axis-aligned box arithmetic: areas, IoU, GIoU, format conversions, clipping, box coding.

Boxes are ``[..., 4]`` floating arrays. The default format is ``[x1, y1, x2, y2]`` in
input-image pixels in the continuous frame of :mod:`vai_jax.ops.coords`: pixel (row i, col j)
covers ``[j, j+1) x [i, i+1)``, so a box's width is ``x2 - x1`` with no ``+1`` (the torchvision
convention). ``cxcywh`` is ``[cx, cy, w, h]`` and ``xywh`` is ``[x1, y1, w, h]`` (COCO).

Everything here is elementwise or a broadcast over two box sets, works under ``jax.jit``,
``jax.vmap`` and ``jax.grad``, and keeps the input dtype.

Values: :func:`box_iou`, :func:`generalized_box_iou`, :func:`clip_boxes`, :func:`encode_boxes`
and :func:`decode_boxes` reject, on eager calls (concrete arrays), NaN/inf coordinates, inverted
boxes (``x2 < x1`` or ``y2 < y1``), non-positive image sizes, box-coder weights that are not
finite and ``> 0`` and (for the box coder) boxes or anchors of zero width or height, with a
ValueError naming the argument. Inside ``jax.jit`` (or ``vmap``) values cannot be checked; each
function's docstring says what such values give there.
"""
from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp

from vai_jax._validation import check_array, check_boxes, check_finite, check_number

# torchvision's BoxCoder clamp: exp(dw) never grows a box by more than 1000 / 16.
BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def _boxes(x, name: str):
    return check_array(x, name, min_ndim=1, last_dim=4, kind="floating", shape_hint="[..., 4]")


def _pair(x, name: str, shape_hint: str):
    return check_boxes(x, name, ndim=2, shape_hint=shape_hint)


def box_area(boxes: jax.Array) -> jax.Array:
    """Area ``(x2 - x1) * (y2 - y1)`` of ``[..., 4]`` xyxy boxes -> ``[...]``.

    No clamping: a box with ``x2 < x1`` has a negative or zero area, as in torchvision.
    """
    boxes = _boxes(boxes, "boxes")
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _inter_union(a: jax.Array, b: jax.Array):
    """Intersection and union of broadcastable ``[..., 4]`` xyxy boxes."""
    lt = jnp.maximum(a[..., :2], b[..., :2])
    rb = jnp.minimum(a[..., 2:], b[..., 2:])
    wh = jnp.clip(rb - lt, 0)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter, area_a + area_b - inter


def _safe_div(num: jax.Array, den: jax.Array) -> jax.Array:
    """``num / den`` where ``den > 0``, else 0, with finite gradients in both branches."""
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, 1), 0)


def _iou(a, b):
    inter, union = _inter_union(a, b)
    return _safe_div(inter, union)


def _giou(a, b):
    inter, union = _inter_union(a, b)
    iou = _safe_div(inter, union)
    lt = jnp.minimum(a[..., :2], b[..., :2])
    rb = jnp.maximum(a[..., 2:], b[..., 2:])
    wh = jnp.clip(rb - lt, 0)
    hull = wh[..., 0] * wh[..., 1]
    return iou - _safe_div(hull - union, hull)


def box_iou(boxes1: jax.Array, boxes2: jax.Array) -> jax.Array:
    """Pairwise intersection over union of xyxy boxes.

    Args:
      boxes1: ``[N, 4]`` float xyxy boxes.
      boxes2: ``[M, 4]`` float xyxy boxes, same frame.

    Returns:
      ``[N, M]`` IoU in ``[0, 1]`` with the dtype of the inputs. Computed as
      ``inter / (area1 + area2 - inter)`` exactly as ``torchvision.ops.box_iou``, except that a
      pair whose union is not positive (two empty boxes) gives 0 where torchvision gives NaN.
      XLA flushes subnormal float results to zero, so a box whose area is below the dtype's
      smallest normal number (``jnp.finfo(dtype).tiny``) counts as empty.

    Raises:
      ValueError: wrong shapes; for concrete inputs also NaN/inf coordinates or inverted boxes
        (``x2 < x1`` or ``y2 < y1``; empty boxes with ``x2 == x1`` are fine and give 0).
        Under ``jit`` such boxes are not checked: a box with a NaN coordinate, or an inverted
        one (whose intersection with anything is empty), gives IoU 0 with every box.
    """
    boxes1 = _pair(boxes1, "boxes1", "[N, 4]")
    boxes2 = _pair(boxes2, "boxes2", "[M, 4]")
    return _iou(boxes1[:, None, :], boxes2[None, :, :])


def generalized_box_iou(boxes1: jax.Array, boxes2: jax.Array) -> jax.Array:
    """Pairwise generalized IoU ``iou - (hull - union) / hull`` (Rezatofighi et al., 2019).

    Args:
      boxes1: ``[N, 4]`` float xyxy boxes. boxes2: ``[M, 4]`` float xyxy boxes.

    Returns:
      ``[N, M]`` GIoU in ``[-1, 1]`` and ``<=`` the IoU, as ``torchvision.ops.generalized_box_iou``
      (terms with a non-positive denominator are taken as 0 instead of NaN).

    Raises:
      ValueError: as :func:`box_iou`. Under ``jit`` a box with a NaN coordinate gives GIoU 0 with
        every box; an inverted box enters the formula with its negative area, so its GIoU can
        fall below -1.
    """
    boxes1 = _pair(boxes1, "boxes1", "[N, 4]")
    boxes2 = _pair(boxes2, "boxes2", "[M, 4]")
    return _giou(boxes1[:, None, :], boxes2[None, :, :])


def _check_broadcast(boxes1, boxes2) -> None:
    try:
        jnp.broadcast_shapes(boxes1.shape, boxes2.shape)
    except ValueError:
        raise ValueError(f"boxes1 and boxes2 must broadcast to one shape [..., 4]; got "
                         f"{tuple(boxes1.shape)} and {tuple(boxes2.shape)}") from None


def paired_box_iou(boxes1: jax.Array, boxes2: jax.Array) -> jax.Array:
    """Elementwise IoU of matched boxes: broadcastable ``[..., 4]`` and ``[..., 4]`` -> ``[...]``."""
    boxes1 = _boxes(boxes1, "boxes1")
    boxes2 = _boxes(boxes2, "boxes2")
    _check_broadcast(boxes1, boxes2)
    return _iou(boxes1, boxes2)


def paired_generalized_box_iou(boxes1: jax.Array, boxes2: jax.Array) -> jax.Array:
    """Elementwise GIoU of matched boxes: broadcastable ``[..., 4]`` and ``[..., 4]`` -> ``[...]``."""
    boxes1 = _boxes(boxes1, "boxes1")
    boxes2 = _boxes(boxes2, "boxes2")
    _check_broadcast(boxes1, boxes2)
    return _giou(boxes1, boxes2)


def box_xyxy_to_cxcywh(boxes: jax.Array) -> jax.Array:
    """``[..., 4]`` ``[x1, y1, x2, y2]`` -> ``[cx, cy, w, h]`` (same pixel frame)."""
    boxes = _boxes(boxes, "boxes")
    x1, y1, x2, y2 = jnp.moveaxis(boxes, -1, 0)
    return jnp.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=-1)


def box_cxcywh_to_xyxy(boxes: jax.Array) -> jax.Array:
    """``[..., 4]`` ``[cx, cy, w, h]`` -> ``[x1, y1, x2, y2]`` (same pixel frame)."""
    boxes = _boxes(boxes, "boxes")
    cx, cy, w, h = jnp.moveaxis(boxes, -1, 0)
    return jnp.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=-1)


def box_xyxy_to_xywh(boxes: jax.Array) -> jax.Array:
    """``[..., 4]`` ``[x1, y1, x2, y2]`` -> COCO ``[x1, y1, w, h]``."""
    boxes = _boxes(boxes, "boxes")
    x1, y1, x2, y2 = jnp.moveaxis(boxes, -1, 0)
    return jnp.stack([x1, y1, x2 - x1, y2 - y1], axis=-1)


def box_xywh_to_xyxy(boxes: jax.Array) -> jax.Array:
    """COCO ``[..., 4]`` ``[x1, y1, w, h]`` -> ``[x1, y1, x2, y2]``."""
    boxes = _boxes(boxes, "boxes")
    x1, y1, w, h = jnp.moveaxis(boxes, -1, 0)
    return jnp.stack([x1, y1, x1 + w, y1 + h], axis=-1)


def clip_boxes(boxes: jax.Array, height, width) -> jax.Array:
    """Clamp xyxy boxes to the image ``[0, width] x [0, height]`` (torchvision's
    ``clip_boxes_to_image``).

    Args:
      boxes: ``[..., 4]`` float xyxy boxes in pixels.
      height, width: image size in pixels (Python numbers or scalars / arrays broadcastable to
        ``boxes[..., 0]``, e.g. per-image sizes ``[B, 1]`` for boxes ``[B, R, 4]``).

    Returns:
      ``[..., 4]`` clipped boxes, inside the image (clipping twice changes nothing). Gradients
      pass where a coordinate is strictly inside.

    Raises:
      TypeError: ``height``/``width`` not real numbers (arrays). ValueError: for concrete inputs,
        NaN/inf coordinates, inverted boxes or sizes that are not finite and ``> 0``. Under
        ``jit`` these are not checked: a NaN coordinate stays NaN and a negative size ``s``
        gives ``s`` for every coordinate clipped against it (``min(max(c, 0), s)``).
    """
    boxes = check_boxes(boxes, "boxes")
    check_number(height, "height", gt=0, scalar=False)
    check_number(width, "width", gt=0, scalar=False)
    height = jnp.asarray(height, boxes.dtype)
    width = jnp.asarray(width, boxes.dtype)
    x1, y1, x2, y2 = jnp.moveaxis(boxes, -1, 0)
    x1 = jnp.clip(x1, 0, width)
    x2 = jnp.clip(x2, 0, width)
    y1 = jnp.clip(y1, 0, height)
    y2 = jnp.clip(y2, 0, height)
    return jnp.stack([x1, y1, x2, y2], axis=-1)


def valid_box_mask(boxes: jax.Array, *, min_size: float = 0.0) -> jax.Array:
    """Boolean ``[...]`` mask of usable xyxy boxes ``[..., 4]``.

    A box is valid when all four coordinates are finite, ``x2 - x1 > 0``, ``y2 - y1 > 0`` and both
    sides are ``>= min_size`` (torchvision's ``remove_small_boxes`` keeps ``>= min_size``).
    ``min_size`` must be a number ``>= 0``.
    """
    boxes = _boxes(boxes, "boxes")
    check_number(min_size, "min_size", ge=0.0)
    w = boxes[..., 2] - boxes[..., 0]
    h = boxes[..., 3] - boxes[..., 1]
    finite = jnp.all(jnp.isfinite(boxes), axis=-1)
    return finite & (w > 0) & (h > 0) & (w >= min_size) & (h >= min_size)


def _check_weights(weights: Sequence[float]) -> None:
    if not hasattr(weights, "__len__") or len(weights) != 4:
        raise ValueError(f"weights must have 4 entries (wx, wy, ww, wh); got {weights!r}")
    for name, w in zip(("wx", "wy", "ww", "wh"), weights):
        check_number(w, f"weights ({name})", gt=0)


def _weights(weights: Sequence[float], dtype):
    return [jnp.asarray(w, dtype) for w in weights]


def encode_boxes(
    boxes: jax.Array, anchors: jax.Array, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)
) -> jax.Array:
    """Regression targets of ``boxes`` relative to ``anchors`` (torchvision ``BoxCoder.encode``).

    ``dx = wx * (cx - acx) / aw``, ``dy = wy * (cy - acy) / ah``, ``dw = ww * log(w / aw)``,
    ``dh = wh * log(h / ah)`` with centres ``x1 + w / 2`` and widths ``x2 - x1`` (no ``+1``).

    Args:
      boxes: ``[..., 4]`` float xyxy target boxes with positive width and height.
      anchors: ``[..., 4]`` float xyxy boxes, broadcastable against ``boxes``, with positive
        width and height.
      weights: ``(wx, wy, ww, wh)``, finite and ``> 0``; Faster R-CNN's second stage uses
        ``(10, 10, 5, 5)``.

    Returns:
      ``[..., 4]`` deltas ``[dx, dy, dw, dh]``; :func:`decode_boxes` with the same anchors and
      weights gives ``boxes`` back (up to rounding, and while ``dw / ww``, ``dh / wh`` stay
      below its clamp).

    Raises:
      TypeError: a weight that is not a real number.
      ValueError: wrong shapes or weights; for concrete inputs NaN/inf coordinates or boxes or
        anchors of zero or negative width or height. Under ``jit`` values are not checked: a
        zero-size box gives ``dw``/``dh = -inf``, a zero-size anchor divides by zero (inf, or
        NaN where the numerator is 0 too) and NaN coordinates give NaN deltas.
    """
    _check_weights(weights)
    boxes = check_boxes(boxes, "boxes", allow_degenerate=False)
    anchors = check_boxes(anchors, "anchors", allow_degenerate=False)
    wx, wy, ww, wh = _weights(weights, boxes.dtype)
    aw = anchors[..., 2] - anchors[..., 0]
    ah = anchors[..., 3] - anchors[..., 1]
    acx = anchors[..., 0] + 0.5 * aw
    acy = anchors[..., 1] + 0.5 * ah
    gw = boxes[..., 2] - boxes[..., 0]
    gh = boxes[..., 3] - boxes[..., 1]
    gcx = boxes[..., 0] + 0.5 * gw
    gcy = boxes[..., 1] + 0.5 * gh
    return jnp.stack(
        [wx * (gcx - acx) / aw, wy * (gcy - acy) / ah, ww * jnp.log(gw / aw), wh * jnp.log(gh / ah)],
        axis=-1,
    )


def decode_boxes(
    deltas: jax.Array,
    anchors: jax.Array,
    weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
    *,
    clamp: float = BBOX_XFORM_CLIP,
) -> jax.Array:
    """Inverse of :func:`encode_boxes` (torchvision ``BoxCoder.decode_single``).

    ``dw / ww`` and ``dh / wh`` are clamped from above at ``clamp`` (default ``log(1000 / 16)``)
    before ``exp`` so that a wild prediction cannot overflow.

    Args:
      deltas: ``[..., 4]`` float ``[dx, dy, dw, dh]``, finite.
      anchors: ``[..., 4]`` xyxy boxes with positive width and height, broadcastable.
      weights: ``(wx, wy, ww, wh)`` as used for encoding (finite, ``> 0``).
      clamp: upper bound for the scaled log-size deltas (a real number, not NaN).

    Returns:
      ``[..., 4]`` xyxy boxes in the anchors' pixel frame.

    Raises:
      TypeError: a weight or ``clamp`` that is not a real number.
      ValueError: wrong shapes, weights or clamp; for concrete inputs NaN/inf deltas or anchor
        coordinates, or anchors of zero or negative width or height. Under ``jit`` values are
        not checked: NaN deltas give NaN coordinates and a zero-size anchor gives a zero-size
        box at its centre.
    """
    _check_weights(weights)
    check_number(clamp, "clamp", finite=False)
    deltas = check_array(deltas, "deltas", min_ndim=1, last_dim=4, kind="floating",
                         shape_hint="[..., 4]")
    check_finite(deltas, "deltas")
    anchors = check_boxes(anchors, "anchors", allow_degenerate=False)
    wx, wy, ww, wh = _weights(weights, deltas.dtype)
    aw = anchors[..., 2] - anchors[..., 0]
    ah = anchors[..., 3] - anchors[..., 1]
    acx = anchors[..., 0] + 0.5 * aw
    acy = anchors[..., 1] + 0.5 * ah
    dx = deltas[..., 0] / wx
    dy = deltas[..., 1] / wy
    dw = jnp.minimum(deltas[..., 2] / ww, clamp)
    dh = jnp.minimum(deltas[..., 3] / wh, clamp)
    cx = dx * aw + acx
    cy = dy * ah + acy
    half_w = 0.5 * jnp.exp(dw) * aw
    half_h = 0.5 * jnp.exp(dh) * ah
    return jnp.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=-1)
