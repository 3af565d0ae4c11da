"""Per-pixel losses for semantic segmentation.

Labels are int ``[B, H, W]`` class ids in ``[0, K)``, or ``ignore_label`` (VOC's 255 on object
borders and "void") for pixels that take no part in the loss. :func:`segmentation_loss` is the
train-step loss ``(outputs, batch, **options) -> [B]``; :func:`pixel_cross_entropy` the
primitive ``(logits, labels, …)``.

Weak supervision (Bearman et al. 2016, "What's the point: semantic segmentation with point
supervision"), with ``S = softmax(logits)`` per pixel: :func:`image_level_loss` (which classes
are present), :func:`point_loss` (cross-entropy at annotated pixels) and
:func:`objectness_loss` (a per-pixel objectness prior); :func:`weak_segmentation_loss` sums the
chosen terms in the train-step convention. The annotations are simulated by
:mod:`vai_jax.segmentation.weak_labels`.
"""
from __future__ import annotations

from typing import Mapping

import jax
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


_LOG_EPS = 1e-7  # log(1 − S) is taken of max(1 − S, _LOG_EPS)


def _log_one_minus(log_p):
    """``log(max(1 − p, eps))`` from ``log p``, without cancellation for small ``p``."""
    return jnp.log(jnp.maximum(-jnp.expm1(log_p), _LOG_EPS))


def image_level_loss(logits, present):
    """Image-level (multiple-instance) loss of Bearman et al. (2016), per example.

    With ``S_ic`` the softmax probability of class ``c`` at pixel ``i`` and ``t_c = argmax_i
    S_ic`` the pixel most confident in ``c``::

      L = −(1/|L|) Σ_{c ∈ L} log S_{t_c c} − (1/|L'|) Σ_{c ∈ L'} log(1 − S_{t_c c})

    over the classes present ``L`` and absent ``L'`` (a sum over an empty set is 0). Every pixel
    of a class that is absent is pushed away from it; a present class must win one pixel.
    ``log(1 − S)`` is clamped at ``log(1e-7)``.

    Args:
      logits: floating ``[B, H, W, K]``.
      present: bool (or 0/1) ``[B, K]``: the image-level labels (background included, as a
        class that is present in nearly every image;
        :func:`vai_jax.segmentation.weak_labels.image_labels`).

    Returns:
      float32 ``[B]``.
    """
    logits = check_array(logits, "logits", ndim=4, kind="floating", shape_hint="[B, H, W, K]")
    present = check_array(present, "present", ndim=2, shape_hint="[B, K]")
    if tuple(present.shape) != (logits.shape[0], logits.shape[-1]):
        raise ValueError(f"present must have shape (B, K) = {(logits.shape[0], logits.shape[-1])}"
                         f" (logits' batch and classes); got {tuple(present.shape)}")
    log_s = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    log_top = jnp.max(log_s, axis=(1, 2))                        # [B, K]: log S_{t_c c}
    pos = jnp.asarray(present).astype(bool)
    neg = ~pos
    mean_over = lambda v, m: jnp.sum(jnp.where(m, v, 0.0), -1) / jnp.maximum(jnp.sum(m, -1), 1)
    return -mean_over(log_top, pos) - mean_over(_log_one_minus(log_top), neg)


def point_loss(logits, point_labels, *, ignore_label: int | None = IGNORE_LABEL,
               class_weights=None):
    """Point-supervision loss of Bearman et al. (2016), per example: the weighted sum of
    cross-entropies at the annotated pixels, ``L = −Σ_{i ∈ I_s} α_i log S_{i G_i}``, where
    ``I_s`` are the pixels whose label is not ``ignore_label``, ``G_i`` their labels and
    ``α_i = class_weights[G_i]`` (1 without weights). A sum, not a mean: every click counts
    the same whatever the number of clicks in the image; an image without points has loss 0.

    Args:
      logits: floating ``[B, H, W, K]``.
      point_labels: int ``[B, H, W]``: ``ignore_label`` except at the points
        (:func:`vai_jax.segmentation.weak_labels.simulate_points`).
      ignore_label: the value of unannotated pixels. class_weights: optional ``[K]`` >= 0.

    Returns:
      float32 ``[B]``.
    """
    logits = check_array(logits, "logits", ndim=4, kind="floating", shape_hint="[B, H, W, K]")
    point_labels = check_array(point_labels, "point_labels", ndim=3, kind="integer",
                               shape_hint="[B, H, W]")
    if tuple(point_labels.shape) != tuple(logits.shape[:3]):
        raise ValueError(f"point_labels must have shape {tuple(logits.shape[:3])} (logits' "
                         f"[B, H, W]); got {tuple(point_labels.shape)}")
    k = logits.shape[-1]
    check_segmentation_labels(point_labels, k, ignore_label=ignore_label, name="point_labels")
    valid = (jnp.ones(point_labels.shape, bool) if ignore_label is None
             else point_labels != ignore_label)
    safe = jnp.where(valid, point_labels, 0)
    ce = cross_entropy(logits.astype(jnp.float32), safe)
    w = valid.astype(jnp.float32)
    if class_weights is not None:
        class_weights = check_array(class_weights, "class_weights", ndim=1, kind="numeric",
                                    shape_hint="[K]")
        if class_weights.shape[0] != k:
            raise ValueError(f"class_weights must have shape ({k},); got "
                             f"{tuple(class_weights.shape)}")
        if is_concrete(class_weights) and np.any(np.asarray(class_weights) < 0):
            raise ValueError("class_weights must be >= 0")
        w = w * jnp.asarray(class_weights, jnp.float32)[safe]
    return jnp.sum(w * ce, axis=(1, 2))


def objectness_loss(logits, objectness, *, background_class: int = 0, mask=None):
    """Objectness-prior loss of Bearman et al. (2016), per example: with ``P_i`` the prior
    probability that pixel ``i`` is on an object and ``O_i = Σ_{c ≠ background} S_ic = 1 −
    S_{i,bg}`` the network's,

      ``L = −(1/|I|) Σ_i [P_i log O_i + (1 − P_i) log(1 − O_i)]``

    (a binary cross-entropy between the prior and the network's class-agnostic objectness,
    computed from log-sum-exps; ``|I|`` counts the pixels of ``mask``, all by default).

    Args:
      logits: floating ``[B, H, W, K]``, ``K >= 2``.
      objectness: floating ``[B, H, W]`` in ``[0, 1]``
        (:func:`vai_jax.segmentation.weak_labels.objectness_prior`).
      background_class: the index of the background class.
      mask: optional bool/0-1 ``[B, H, W]`` of the pixels that count.

    Returns:
      float32 ``[B]``.
    """
    logits = check_array(logits, "logits", ndim=4, kind="floating", shape_hint="[B, H, W, K]")
    objectness = check_array(objectness, "objectness", ndim=3, kind="floating",
                             shape_hint="[B, H, W]")
    if tuple(objectness.shape) != tuple(logits.shape[:3]):
        raise ValueError(f"objectness must have shape {tuple(logits.shape[:3])} (logits' "
                         f"[B, H, W]); got {tuple(objectness.shape)}")
    k = logits.shape[-1]
    if k < 2:
        raise ValueError(f"logits need K >= 2 classes (background + objects); got K = {k}")
    if isinstance(background_class, bool) or not isinstance(background_class,
                                                            (int, np.integer)) \
            or not 0 <= background_class < k:
        raise ValueError(f"background_class must be an int in [0, {k}); got {background_class!r}")
    if is_concrete(objectness) and np.size(objectness):
        v = np.asarray(objectness)
        if not (np.all(v >= 0) and np.all(v <= 1)):
            raise ValueError(f"objectness must lie in [0, 1]; got values in [{v.min()}, "
                             f"{v.max()}]")
    z = logits.astype(jnp.float32)
    log_all = jax.nn.logsumexp(z, axis=-1)
    log_bg = z[..., background_class] - log_all                       # log(1 − O)
    objects = jnp.where(jnp.arange(k) == background_class, -jnp.inf, z)
    log_obj = jax.nn.logsumexp(objects, axis=-1) - log_all            # log O
    p = jnp.asarray(objectness, jnp.float32)
    bce = -(p * log_obj + (1.0 - p) * log_bg)
    w = (jnp.ones(bce.shape, jnp.float32) if mask is None
         else jnp.broadcast_to(jnp.asarray(mask).astype(jnp.float32), bce.shape))
    return jnp.sum(w * bce, axis=(1, 2)) / jnp.maximum(jnp.sum(w, axis=(1, 2)), 1.0)


WEAK_TERMS = ("image", "point", "objectness", "full")


def weak_segmentation_loss(outputs, batch, *, terms=("image", "point"), weights=None,
                           ignore_label: int | None = IGNORE_LABEL, class_weights=None):
    """Per-example sum of the chosen supervision terms on ``outputs["out"]``, in the
    train-step convention ``(outputs, batch) -> [B]``:

    - ``"image"``: :func:`image_level_loss` with ``batch["present"] [B, K]``;
    - ``"point"``: :func:`point_loss` with ``batch["points"] [B, H, W]`` (and ``class_weights``);
    - ``"objectness"``: :func:`objectness_loss` with ``batch["objectness"] [B, H, W]``;
    - ``"full"``: :func:`pixel_cross_entropy` with ``batch["semantic"]`` (and
      ``class_weights``): the fully supervised reference.

    Bearman et al.'s point-supervised model is ``("image", "point")``, with the objectness
    prior ``("image", "point", "objectness")``. ``weights`` maps a term to its factor (1 by
    default).
    """
    if not isinstance(outputs, Mapping) or "out" not in outputs:
        raise TypeError(f"outputs must be a dict with 'out'; got {type(outputs).__name__}")
    terms = tuple(terms)
    unknown = sorted(set(terms) - set(WEAK_TERMS))
    if not terms or unknown:
        raise ValueError(f"terms must be a non-empty subset of {WEAK_TERMS}; got {terms!r}")
    weights = dict(weights or {})
    extra = sorted(set(weights) - set(terms))
    if extra:
        raise ValueError(f"weights names terms {extra} that are not in terms {terms!r}")
    needs = {"image": "present", "point": "points", "objectness": "objectness",
             "full": "semantic"}
    missing = [needs[t] for t in terms if needs[t] not in batch]
    if missing:
        raise KeyError(f"batch lacks {missing}, needed by the terms {terms!r}")
    logits = outputs["out"]
    loss = {"image": lambda: image_level_loss(logits, batch["present"]),
            "point": lambda: point_loss(logits, batch["points"], ignore_label=ignore_label,
                                        class_weights=class_weights),
            "objectness": lambda: objectness_loss(logits, batch["objectness"]),
            "full": lambda: pixel_cross_entropy(logits, batch["semantic"],
                                                ignore_label=ignore_label,
                                                class_weights=class_weights)}
    return sum(float(weights.get(t, 1.0)) * loss[t]() for t in terms)
