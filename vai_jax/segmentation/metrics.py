"""Semantic segmentation metrics from a confusion matrix: pixel accuracy, mean class accuracy,
per-class IoU, mean IoU, frequency-weighted IoU and the object-vs-background IoU; and boundary
metrics: the trimap band of width ``k`` around the true boundaries (accuracy and IoU counted in
the band only, as in Kohli et al. 2009, Krähenbühl & Koltun 2011 and DeepLab) and the boundary
F-score at a distance tolerance (Csurka et al. 2013).

The confusion matrix ``cm[t, p]`` counts pixels of true class ``t`` predicted as ``p``; pixels
labelled ``ignore_label`` are not counted. Matrices are additive, so a data set's matrix is the
sum over batches (:class:`ConfusionMatrix` on the host) and over devices: under ``jax.jit``
with the batch sharded over a mesh, :func:`confusion_matrix` already returns the global sum
(XLA reduces across shards); under ``pmap`` pass ``axis_name`` to ``psum`` it.

Labels (other than ``ignore_label``) and predictions outside ``[0, K)`` raise ValueError on eager
calls. Under ``jit`` they cannot, and are never dropped silently: a counted pixel with such a
value makes the whole matrix ``-1`` (:data:`INVALID`), which :class:`ConfusionMatrix`,
:func:`metrics_from_confusion` and :func:`object_iou` refuse with an error.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vai_jax._validation import check_array, check_int, check_labels, invalid_labels
from vai_jax.segmentation.losses import IGNORE_LABEL, check_segmentation_labels

# Every entry of a confusion matrix computed under jit from a batch with a label or prediction
# outside [0, K): the batch cannot be counted, and the matrix says so.
INVALID = -1


def _check_cm(cm, name: str = "cm") -> np.ndarray:
    """A concrete ``[K, K]`` matrix of counts as float64; ValueError naming a poisoned one."""
    cm = np.asarray(jax.device_get(cm))
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"{name} must be a square [K, K] matrix; got shape {cm.shape}")
    if np.any(cm < 0):
        raise ValueError(f"{name} holds negative counts: confusion_matrix marks a batch with a "
                         f"label or prediction outside [0, K) under jit by filling its matrix "
                         f"with {INVALID}; fix the labels / predictions of that batch")
    return cm.astype(np.float64)


def confusion_matrix(labels, predictions, num_classes: int, *,
                     ignore_label: int | None = IGNORE_LABEL, mask=None,
                     axis_name: str | None = None):
    """Confusion matrix of one batch (jit-able: a ``bincount`` of static length ``K²``).

    Args:
      labels: int ``[...]`` true classes in ``[0, K)`` or ``ignore_label``.
      predictions: int ``[...]`` (same shape) predicted classes in ``[0, K)``, e.g.
        ``argmax(logits, -1)``.
      num_classes: ``K``.
      ignore_label: label excluded from the count (None: none).
      mask: optional bool/0-1 array broadcastable to ``labels`` (e.g. ``[B, 1, 1]`` to drop
        padded examples).
      axis_name: ``pmap`` axis to sum the matrix over.

    Returns:
      int32 ``[K, K]``, rows = true class, columns = prediction. Under ``jit``, all
      :data:`INVALID` (-1) when a counted pixel (not ``ignore_label``, inside ``mask``) has a
      label or prediction outside ``[0, K)`` (on any device, with ``axis_name``).

    Raises:
      ValueError: shapes differ; concrete labels outside the range (other than
      ``ignore_label``) or predictions outside ``[0, K)``; ``num_classes`` < 1; ``mask`` that
      does not broadcast. TypeError: non-integer labels, predictions or ``num_classes``.
    """
    labels = check_array(labels, "labels", kind="integer")
    predictions = check_array(predictions, "predictions", kind="integer")
    k = check_int(num_classes, "num_classes", ge=1)
    if tuple(labels.shape) != tuple(predictions.shape):
        raise ValueError(f"labels and predictions must have the same shape; got "
                         f"{tuple(labels.shape)} and {tuple(predictions.shape)}")
    check_segmentation_labels(labels, k, ignore_label=ignore_label)
    check_labels(predictions, k, "predictions")
    counted = jnp.ones(labels.shape, bool)
    if ignore_label is not None:
        counted = labels != ignore_label
    if mask is not None:
        mask = jnp.asarray(mask)
        try:
            counted = counted & jnp.broadcast_to(mask.astype(bool), labels.shape)
        except ValueError:
            raise ValueError(f"mask must broadcast to labels' shape {tuple(labels.shape)}; got "
                             f"{tuple(mask.shape)}") from None
    bad = counted & (invalid_labels(labels, k) | invalid_labels(predictions, k))
    valid = counted & ~bad
    index = jnp.where(valid, labels * k + predictions, 0).astype(jnp.int32)
    cm = jnp.bincount(index.reshape(-1), weights=valid.reshape(-1).astype(jnp.int32),
                      length=k * k).astype(jnp.int32).reshape(k, k)
    poisoned = jnp.any(bad)
    if axis_name is not None:
        cm = jax.lax.psum(cm, axis_name)
        poisoned = jax.lax.psum(poisoned.astype(jnp.int32), axis_name) > 0
    return jnp.where(poisoned, INVALID, cm).astype(jnp.int32)


def metrics_from_confusion(cm) -> dict:
    """Metrics of a confusion matrix ``[K, K]`` (NumPy, float64).

    Returns a dict: ``pixel_accuracy`` (``trace / total``), ``mean_accuracy`` (mean over classes
    present in the labels of ``cm[c, c] / row_c``), ``iou`` ``[K]`` (``cm[c, c] / (row_c + col_c −
    cm[c, c])``, NaN for a class absent from both labels and predictions), ``miou`` (NaN-ignoring
    mean of ``iou``), ``fwiou`` (IoU weighted by label frequency). Empty matrix → NaNs.
    ValueError for a non-square matrix or negative counts (see :data:`INVALID`).
    """
    cm = _check_cm(cm)
    tp = np.diag(cm)
    rows, cols = cm.sum(1), cm.sum(0)
    total = cm.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        union = rows + cols - tp
        iou = np.where(union > 0, tp / np.where(union > 0, union, 1), np.nan)
        acc = np.where(rows > 0, tp / np.where(rows > 0, rows, 1), np.nan)
        present = ~np.isnan(iou)
        miou = float(iou[present].mean()) if present.any() else float("nan")
        macc = float(np.nanmean(acc)) if (rows > 0).any() else float("nan")
        freq = rows / total if total else np.full_like(rows, np.nan)
        fwiou = float(np.nansum(freq * np.nan_to_num(iou))) if total else float("nan")
    return {"pixel_accuracy": float(tp.sum() / total) if total else float("nan"),
            "mean_accuracy": macc, "iou": iou, "miou": miou, "fwiou": fwiou}


class ConfusionMatrix:
    """Host-side accumulator: ``update(cm)`` adds a batch's (or device's) matrix,
    ``result()`` returns :func:`metrics_from_confusion` of the sum."""

    def __init__(self, num_classes: int):
        self.num_classes = check_int(num_classes, "num_classes", ge=1)
        self.matrix = np.zeros((self.num_classes, self.num_classes), np.int64)

    def update(self, cm) -> "ConfusionMatrix":
        cm = np.asarray(jax.device_get(cm))
        if cm.shape != self.matrix.shape:
            raise ValueError(f"cm must have shape {self.matrix.shape}; got {cm.shape}")
        _check_cm(cm)
        self.matrix += cm.astype(np.int64)
        return self

    def result(self) -> dict:
        return metrics_from_confusion(self.matrix)


def object_iou(cm) -> float:
    """IoU of "some object" (classes ``1..K-1`` merged) against background (class 0) from a
    confusion matrix ``[K, K]``: how well the masks separate objects from background, whatever
    class they give them (a confusion between object classes costs mIoU but not this). NaN
    when no pixel is object in either the labels or the predictions."""
    cm = _check_cm(cm)
    if cm.shape[0] < 2:
        raise ValueError(f"cm must be a square [K, K] matrix with K >= 2; got shape {cm.shape}")
    tp, fp, fn = cm[1:, 1:].sum(), cm[0, 1:].sum(), cm[1:, 0].sum()
    return float(tp / (tp + fp + fn)) if tp + fp + fn else float("nan")


def _check_width(width, name: str) -> int:
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 0:
        raise ValueError(f"{name} must be an int >= 0 (pixels); got {width!r}")
    return int(width)


def label_boundaries(labels):
    """Boundary pixels of a label map: those with a 4-neighbour (up, down, left, right, inside
    the image) of a different label, on both sides of every label change.

    Args:
      labels: int ``[..., H, W]`` (the ignore label is a label like any other here: a pixel
        next to a void band is a boundary pixel).

    Returns:
      bool ``[..., H, W]``. jit-able.

    Raises:
      ValueError: rank below 2. TypeError: non-integer labels.
    """
    labels = check_array(labels, "labels", min_ndim=2, kind="integer", shape_hint="[..., H, W]")
    labels = jnp.asarray(labels)
    dy = labels[..., 1:, :] != labels[..., :-1, :]   # between rows i and i + 1
    dx = labels[..., :, 1:] != labels[..., :, :-1]   # between columns j and j + 1
    pad = [(0, 0)] * (labels.ndim - 2)
    out = jnp.pad(dy, pad + [(0, 1), (0, 0)]) | jnp.pad(dy, pad + [(1, 0), (0, 0)])
    return out | jnp.pad(dx, pad + [(0, 0), (0, 1)]) | jnp.pad(dx, pad + [(0, 0), (1, 0)])


def dilate(mask, width: int):
    """Pixels within Chebyshev distance ``width`` of a ``True`` pixel of ``mask [..., H, W]``
    (a ``(2·width + 1)²`` square max filter; the outside of the image is False). bool."""
    mask = check_array(mask, "mask", min_ndim=2, kind="bool", shape_hint="[..., H, W]")
    width = _check_width(width, "width")
    if width == 0:
        return jnp.asarray(mask)
    w = 2 * width + 1
    window = (1,) * (mask.ndim - 2) + (w, w)
    return jax.lax.reduce_window(jnp.asarray(mask, jnp.int32), 0, jax.lax.max, window,
                                 (1,) * mask.ndim, "SAME") > 0


def trimap_band(labels, width: int):
    """The trimap band: pixels within Chebyshev distance ``width`` of a boundary pixel of
    ``labels`` (:func:`label_boundaries`), i.e. whose ``(2·width + 1)²`` window holds one.
    ``width = 0`` is the boundary pixels themselves.

    Args:
      labels: int ``[..., H, W]`` true labels. width: band half-width in pixels, ``>= 0``.

    Returns:
      bool ``[..., H, W]``. jit-able (``width`` static).
    """
    return dilate(label_boundaries(labels), _check_width(width, "width"))


def trimap_confusion_matrix(labels, predictions, num_classes: int, width: int, *,
                            ignore_label: int | None = IGNORE_LABEL, mask=None):
    """:func:`confusion_matrix` over the pixels of the trimap band of width ``width`` around the
    true boundaries only (:func:`trimap_band` of ``labels [..., H, W]``): its pixel accuracy
    and mIoU (:func:`metrics_from_confusion`) are the trimap accuracy / IoU of Krähenbühl &
    Koltun (2011) and DeepLab. Ignored pixels inside the band are not counted. int32
    ``[K, K]``."""
    band = trimap_band(labels, width)
    if mask is not None:
        band = band & jnp.broadcast_to(jnp.asarray(mask).astype(bool), band.shape)
    return confusion_matrix(labels, predictions, num_classes, ignore_label=ignore_label,
                            mask=band)


def boundary_counts(labels, predictions, tolerance: int, *,
                    ignore_label: int | None = IGNORE_LABEL, mask=None):
    """Counts of the boundary F-score (Csurka et al. 2013) of one batch, additive over batches.

    The boundaries of the true and the predicted maps are :func:`label_boundaries`;
    pixels labelled ``ignore_label`` take no part (neither boundary set holds them). A
    predicted boundary pixel is matched when a true boundary pixel lies within Chebyshev
    distance ``tolerance``, and vice versa.

    Args:
      labels, predictions: int ``[..., H, W]`` of the same shape.
      tolerance: pixels, ``>= 0``.
      ignore_label: label excluded (None: none). mask: optional, broadcastable to ``labels``.

    Returns:
      ``{"matched_pred", "pred", "matched_true", "true"}``: int32 scalars; precision is
      ``matched_pred / pred``, recall ``matched_true / true`` (:func:`boundary_f_score`).
    """
    labels = check_array(labels, "labels", min_ndim=2, kind="integer", shape_hint="[..., H, W]")
    predictions = check_array(predictions, "predictions", min_ndim=2, kind="integer",
                              shape_hint="[..., H, W]")
    if tuple(labels.shape) != tuple(predictions.shape):
        raise ValueError(f"labels and predictions must have the same shape; got "
                         f"{tuple(labels.shape)} and {tuple(predictions.shape)}")
    tolerance = _check_width(tolerance, "tolerance")
    keep = jnp.ones(labels.shape, bool) if ignore_label is None else labels != ignore_label
    if mask is not None:
        keep = keep & jnp.broadcast_to(jnp.asarray(mask).astype(bool), labels.shape)
    true_b = label_boundaries(labels) & keep
    pred_b = label_boundaries(predictions) & keep
    count = lambda m: jnp.sum(m, dtype=jnp.int32)
    return {"matched_pred": count(pred_b & dilate(true_b, tolerance)), "pred": count(pred_b),
            "matched_true": count(true_b & dilate(pred_b, tolerance)), "true": count(true_b)}


def boundary_f_score(counts) -> dict:
    """``{"precision", "recall", "f_score"}`` (floats; NaN where undefined) from the summed
    :func:`boundary_counts`."""
    c = {k: float(np.asarray(jax.device_get(counts[k]))) for k in
         ("matched_pred", "pred", "matched_true", "true")}
    p = c["matched_pred"] / c["pred"] if c["pred"] else float("nan")
    r = c["matched_true"] / c["true"] if c["true"] else float("nan")
    f = 2 * p * r / (p + r) if p + r > 0 else (0.0 if p == p and r == r else float("nan"))
    return {"precision": p, "recall": r, "f_score": f}
