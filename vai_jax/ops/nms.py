"""Greedy non-maximum suppression with static output shapes, identical to torchvision.

The result is the list torchvision's CPU kernel returns (same boxes, same order) for **any**
IoU threshold, truncated / padded to ``max_outputs`` entries:

* boxes are visited in descending score order, ties broken by the original index (a stable
  sort, as torchvision's ``scores.sort(stable=True, descending=True)``);
* box ``j`` is suppressed by an earlier kept box ``i`` when
  ``inter / (area_i + area_j - inter) > iou_threshold`` (strictly greater, areas
  ``(x2 - x1) * (y2 - y1)`` without ``+1``; a 0/0 IoU of two empty boxes suppresses nothing).

Values: eager calls (concrete arrays) reject NaN/inf or inverted boxes, NaN scores and a NaN or
infinite threshold with a ValueError naming the argument (a non-numeric threshold is a
TypeError). Inside ``jax.jit`` they are processed as follows: boxes with NaN scores sort after
every other box (among themselves by index) and suppress nothing, though they can still be kept;
a box with a NaN coordinate has NaN IoU with everything, so it suppresses nothing and is never
suppressed; a NaN threshold suppresses nothing.

Algorithm (exact, no threshold-specific shortcut): boxes are processed in score-sorted tiles
of ``tile_size``. A tile is first suppressed by every box kept in earlier tiles (one
``[tile, N]`` IoU block), then the greedy recurrence inside the tile,
``keep_i = alive_i and not any_{j < i}(keep_j and iou_ij > t)``, is iterated to its fixed
point. Because ``keep_i`` depends only on earlier entries, the iteration is exact after at
most ``tile_size`` rounds and the fixed point is unique; in practice it takes a few rounds.
The loop over tiles stops early once ``max_outputs`` boxes are kept.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from vai_jax._validation import check_array, check_boxes, check_finite, check_number
from vai_jax.ops._ieee import div_rn


def _check_inputs(boxes, scores, iou_threshold, max_outputs, valid, classes=None):
    check_number(iou_threshold, "iou_threshold")
    boxes = check_boxes(boxes, "boxes", ndim=2, shape_hint="[N, 4]")
    scores = check_array(scores, "scores", ndim=1, kind="numeric", shape_hint="[N]")
    n = boxes.shape[0]
    if scores.shape[0] != n:
        raise ValueError(f"scores must have shape [N]=[{n}] to match boxes; got {tuple(scores.shape)}")
    check_finite(scores, "scores", allow_inf=True)
    if valid is not None:
        valid = check_array(valid, "valid", ndim=1, kind="bool", shape_hint="[N]")
        if valid.shape[0] != n:
            raise ValueError(f"valid must have shape [{n}]; got {tuple(valid.shape)}")
    if classes is not None:
        classes = check_array(classes, "classes", ndim=1, kind="integer", shape_hint="[N]")
        if classes.shape[0] != n:
            raise ValueError(f"classes must have shape [{n}]; got {tuple(classes.shape)}")
    if not isinstance(max_outputs, int) or max_outputs <= 0:
        raise ValueError(f"max_outputs must be a Python int > 0; got {max_outputs!r}")
    return boxes, scores, valid, classes


def _pairwise_iou_gt(a, b, threshold):
    """``iou(a_i, b_j) > threshold`` with torchvision's exact float formula. a [T,4], b [M,4]."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    w = jnp.maximum(jnp.minimum(a[:, None, 2], b[None, :, 2]) - jnp.maximum(a[:, None, 0], b[None, :, 0]), 0)
    h = jnp.maximum(jnp.minimum(a[:, None, 3], b[None, :, 3]) - jnp.maximum(a[:, None, 1], b[None, :, 1]), 0)
    inter = w * h
    return div_rn(inter, area_a[:, None] + area_b[None, :] - inter) > threshold


def _nms_sorted_keep(boxes, alive, suppressor, classes, threshold, max_outputs, tile):
    """Keep mask over score-sorted ``boxes [N, 4]``; ``alive`` [N] marks candidates and
    ``suppressor`` [N] the boxes that suppress others when kept."""
    n = boxes.shape[0]
    n_tiles = -(-n // tile)
    npad = n_tiles * tile
    pad = npad - n
    boxes = jnp.pad(boxes, ((0, pad), (0, 0)))
    alive = jnp.pad(alive, (0, pad))
    suppressor = jnp.pad(suppressor, (0, pad))
    if classes is not None:
        classes = jnp.pad(classes, (0, pad), constant_values=-1)
    lower = jnp.tril(jnp.ones((tile, tile), bool), k=-1)  # [i, j]: j < i

    def tile_body(state):
        t, keep, count = state
        start = t * tile
        tb = lax.dynamic_slice_in_dim(boxes, start, tile)
        ta = lax.dynamic_slice_in_dim(alive, start, tile)
        ts = lax.dynamic_slice_in_dim(suppressor, start, tile)
        over_all = _pairwise_iou_gt(tb, boxes, threshold)  # [tile, npad]
        over_in = lax.dynamic_slice_in_dim(over_all, start, tile, axis=1) & lower
        if classes is not None:
            tc = lax.dynamic_slice_in_dim(classes, start, tile)
            over_all = over_all & (tc[:, None] == classes[None, :])
            over_in = over_in & (tc[:, None] == tc[None, :])
        # ``keep`` only holds entries of earlier tiles here.
        ta = ta & ~jnp.any(over_all & (keep & suppressor)[None, :], axis=1)

        def fp_cond(s):
            return s[1]

        def fp_body(s):
            k, _ = s
            k_new = ta & ~jnp.any(over_in & (k & ts)[None, :], axis=1)
            return k_new, jnp.any(k_new != k)

        k, _ = lax.while_loop(fp_cond, fp_body, (ta, jnp.array(True)))
        keep = lax.dynamic_update_slice_in_dim(keep, k, start, axis=0)
        return t + 1, keep, count + jnp.sum(k, dtype=jnp.int32)

    def tile_cond(state):
        t, _, count = state
        return (t < n_tiles) & (count < max_outputs)

    _, keep, _ = lax.while_loop(
        tile_cond, tile_body, (jnp.int32(0), jnp.zeros((npad,), bool), jnp.int32(0))
    )
    return keep[:n]


@partial(jax.jit, static_argnums=(3, 6))
def _nms(boxes, scores, threshold, max_outputs, valid, classes, tile_size):
    n = boxes.shape[0]
    if n == 0:
        return jnp.full((max_outputs,), -1, jnp.int32)
    # Descending score, ties by index; NaN scores last (a descending sort alone puts them first).
    order = jnp.argsort(scores, descending=True, stable=True)
    nan = jnp.isnan(scores) if jnp.issubdtype(scores.dtype, jnp.floating) else None
    if nan is not None:
        order = order[jnp.argsort(nan[order], stable=True)]
    sb = boxes[order]
    alive = jnp.ones((n,), bool) if valid is None else valid[order]
    suppressor = jnp.ones((n,), bool) if nan is None else ~nan[order]
    sc = None if classes is None else classes[order]
    tile = max(1, min(int(tile_size), n))
    keep = _nms_sorted_keep(sb, alive, suppressor, sc, jnp.asarray(threshold, boxes.dtype),
                            max_outputs, tile)
    (pos,) = jnp.nonzero(keep, size=max_outputs, fill_value=-1)
    return jnp.where(pos >= 0, order[jnp.maximum(pos, 0)], -1).astype(jnp.int32)


def nms(
    boxes: jax.Array,
    scores: jax.Array,
    iou_threshold: float,
    *,
    max_outputs: int,
    valid: jax.Array | None = None,
    tile_size: int = 256,
) -> jax.Array:
    """Greedy non-maximum suppression, exactly ``torchvision.ops.nms`` with a static output size.

    Args:
      boxes: ``[N, 4]`` float xyxy boxes in pixels (any consistent frame).
      scores: ``[N]`` scores; higher is better (``±inf`` allowed, NaN only under ``jit``).
      iou_threshold: suppress a box whose IoU with a kept, higher-scored box is ``> iou_threshold``
        (a real number: a Python float or a concrete or traced scalar; every finite value
        works, no tile shortcut).
      max_outputs: static length of the result (a Python int).
      valid: optional ``[N]`` bool mask; invalid boxes (padding) are never kept and suppress
        nothing.
      tile_size: static tile length of the blocked algorithm (a speed knob only).

    Returns:
      ``[max_outputs]`` int32 indices into ``boxes`` of the kept boxes in descending score order
      (torchvision's order), padded with -1 after the last kept box; truncated when more than
      ``max_outputs`` are kept (the first ``max_outputs`` of torchvision's list).

    Raises:
      TypeError: wrong dtypes, or an ``iou_threshold`` that is not a real number.
      ValueError: wrong ranks or shapes; for concrete (non-traced) values also NaN/inf boxes,
        ``x2 < x1`` / ``y2 < y1``, NaN scores or a NaN/inf ``iou_threshold``. Inside
        ``jax.jit`` values are not checked: boxes are processed with the same formula as
        torchvision (a NaN box has NaN IoU with everything, so it suppresses nothing and is
        never suppressed); boxes with NaN scores come after all others in the visiting order
        (among themselves by index) and suppress nothing, though they can be kept; a NaN
        threshold suppresses nothing.
    """
    boxes, scores, valid, _ = _check_inputs(boxes, scores, iou_threshold, max_outputs, valid)
    return _nms(boxes, scores, iou_threshold, max_outputs, valid, None, tile_size)


def batched_nms(
    boxes: jax.Array,
    scores: jax.Array,
    classes: jax.Array,
    iou_threshold: float,
    *,
    max_outputs: int,
    valid: jax.Array | None = None,
    tile_size: int = 256,
) -> jax.Array:
    """Class-aware NMS: boxes only suppress boxes of the same class (``torchvision.ops.batched_nms``).

    Implemented by masking the suppression matrix with ``classes_i == classes_j`` (the exact
    per-class semantics of torchvision's per-class ``_batched_nms_vanilla``; its coordinate-
    offset variant only approximates it in float arithmetic).

    Args:
      boxes: ``[N, 4]`` float xyxy boxes. scores: ``[N]``. classes: ``[N]`` integer class ids.
      iou_threshold, max_outputs, valid, tile_size: as in :func:`nms`.

    Returns:
      ``[max_outputs]`` int32 indices of kept boxes over all classes, in descending score order
      (ties by index), padded with -1.

    Raises:
      TypeError, ValueError: as :func:`nms` (also for ``classes``); the behaviour under ``jit``
        is that of :func:`nms`.
    """
    boxes, scores, valid, classes = _check_inputs(boxes, scores, iou_threshold, max_outputs, valid,
                                                  classes)
    return _nms(boxes, scores, iou_threshold, max_outputs, valid, classes, tile_size)
