"""Per-pixel losses for semantic segmentation.

Labels are int ``[B, H, W]`` class ids in ``[0, K)``, or ``ignore_label`` (VOC's 255 on object
borders and "void") for pixels that take no part in the loss. :func:`segmentation_loss` is the
train-step loss ``(outputs, batch, **options) -> [B]``; :func:`pixel_cross_entropy` the
primitive ``(logits, labels, …)``.
"""
from __future__ import annotations

from typing import Mapping

import jax.numpy as jnp
import numpy as np

from vai_jax._validation import check_array, is_concrete
from vai_jax.ops.numerics import cross_entropy

IGNORE_LABEL = 255


def check_segmentation_labels(labels, num_classes: int, *, ignore_label: int | None = IGNORE_LABEL,
                              name: str = "labels") -> None:
    """ValueError if a concrete ``labels`` holds a value outside ``[0, num_classes)`` that is
    not ``ignore_label`` (no-op under tracing)."""
    if not is_concrete(labels) or not np.size(labels):
        return
    v = np.asarray(labels)
    bad = (v < 0) | (v >= num_classes)
    if ignore_label is not None:
        bad &= v != ignore_label
    if bad.any():
        vals = np.unique(v[bad])[:8].tolist()
        ign = f" or the ignore label {ignore_label}" if ignore_label is not None else ""
        raise ValueError(f"{name} must lie in [0, {num_classes}){ign}; found {int(bad.sum())} "
                         f"pixel(s) with values {vals}")


def pixel_cross_entropy(logits, labels, *, ignore_label: int | None = IGNORE_LABEL,
                        class_weights=None, label_smoothing: float = 0.0):
    """Per-example mean per-pixel cross-entropy, ignoring ``ignore_label`` pixels.

    ``loss_b = Σ_p w[y_p]·CE_p / Σ_p w[y_p]`` over the pixels ``p`` of example ``b`` whose label
    is not ignored (PyTorch ``CrossEntropyLoss(weight=w, ignore_index=…)`` per image); ``w = 1``
    without ``class_weights``. An example without any counted pixel has loss 0.

    Args:
      logits: floating ``[B, H, W, K]``.
      labels: integer ``[B, H, W]`` in ``[0, K)`` or ``ignore_label``.
      ignore_label: label value excluded from the loss (None: none).
      class_weights: optional float ``[K]`` non-negative per-class weights.
      label_smoothing: as :func:`vai_jax.ops.cross_entropy`.

    Returns:
      float32 ``[B]``.

    Raises:
      ValueError: ``labels`` not ``logits.shape[:-1]`` (e.g. a mask whose size differs from
      the image's), labels outside the range other than the ignore label (concrete inputs),
      ``class_weights`` not ``[K]`` or negative.
    """
    logits = check_array(logits, "logits", ndim=4, kind="floating", shape_hint="[B, H, W, K]")
    labels = check_array(labels, "labels", ndim=3, kind="integer", shape_hint="[B, H, W]")
    if tuple(labels.shape) != tuple(logits.shape[:3]):
        raise ValueError(f"labels must have shape {tuple(logits.shape[:3])} (logits' [B, H, W]); "
                         f"got {tuple(labels.shape)}: the mask and the image/prediction sizes "
                         f"differ")
    k = logits.shape[-1]
    check_segmentation_labels(labels, k, ignore_label=ignore_label)
    valid = jnp.ones(labels.shape, bool) if ignore_label is None else labels != ignore_label
    safe = jnp.where(valid, labels, 0)
    ce = cross_entropy(logits.astype(jnp.float32), safe, label_smoothing=label_smoothing)
    if class_weights is None:
        w = valid.astype(jnp.float32)
    else:
        class_weights = check_array(class_weights, "class_weights", ndim=1, kind="numeric",
                                    shape_hint="[K]")
        if class_weights.shape[0] != k:
            raise ValueError(f"class_weights must have shape ({k},); got "
                             f"{tuple(class_weights.shape)}")
        if is_concrete(class_weights) and np.any(np.asarray(class_weights) < 0):
            raise ValueError("class_weights must be >= 0")
        w = jnp.asarray(class_weights, jnp.float32)[safe] * valid
    num = jnp.sum(w * ce, axis=(1, 2))
    den = jnp.sum(w, axis=(1, 2))
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)


def segmentation_loss(outputs, batch, *, ignore_label: int | None = IGNORE_LABEL,
                      class_weights=None, label_smoothing: float = 0.0,
                      aux_weight: float = 0.5):
    """Per-example loss of a segmentation network's output, in the train-step convention.

    ``loss = CE(outputs["out"]) + aux_weight · CE(outputs["aux"])`` (the second term only
    when the network has an auxiliary head; 0.5 as torchvision's reference training), each
    :func:`pixel_cross_entropy` against ``batch["semantic"]``.

    Args:
      outputs: ``{"out": logits [B, H, W, K]}`` (+ ``"aux"``), as the networks of
        :mod:`vai_jax.segmentation.models` return.
      batch: dict with ``"semantic"`` int ``[B, H, W]`` in ``[0, K)`` or ``ignore_label``.
      ignore_label, class_weights, label_smoothing: as :func:`pixel_cross_entropy`.
      aux_weight: weight of the auxiliary term.

    Returns:
      float32 ``[B]``.
    """
    if not isinstance(outputs, Mapping) or "out" not in outputs:
        raise TypeError(f"outputs must be a dict with 'out' (and optionally 'aux'); got "
                        f"{type(outputs).__name__}")
    ce = lambda logits: pixel_cross_entropy(logits, batch["semantic"], ignore_label=ignore_label,
                                            class_weights=class_weights,
                                            label_smoothing=label_smoothing)
    loss = ce(outputs["out"])
    if "aux" in outputs:
        loss = loss + aux_weight * ce(outputs["aux"])
    return loss


def inverse_frequency_weights(counts, *, power: float = 1.0, eps: float = 1.0):
    """Class weights ``∝ (count + eps)^-power`` normalised to mean 1 over classes.

    Args: counts: ``[K]`` pixel counts per class (e.g. the row sums of a confusion matrix).
    Returns: float32 ``[K]``.
    """
    c = np.asarray(counts, np.float64)
    w = (c + eps) ** (-power)
    return (w / w.mean()).astype(np.float32)
