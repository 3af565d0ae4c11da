"""Detection losses: smooth L1 box regression, sampled classification, one-vs-rest hinge,
per-class binary mask loss, and the per-image loss of the two-stage detectors.

Conventions: the primitives take ``(predictions, targets, weights)`` in that order (options
keyword-only); :func:`detection_loss` is the train step's ``(outputs, batch, **options) ->
[B]`` loss (:data:`vai_jax.train.step.LossFn`). Every term takes explicit 0/1 ``weights`` so
padding (padded objects, unsampled anchors or RoIs, padded proposal slots) contributes exactly
nothing: changing a padded entry leaves the loss unchanged. Per-image losses ``[B]`` are what
:func:`vai_jax.train.step.make_train_step` averages.

Class ids of weighted entries outside the logits' ``[0, C]`` (e.g. from a ground-truth class
``>= C`` that reached the model unsanitised) raise ValueError on eager calls; under ``jit`` they
make that image's loss NaN, so the train step skips the batch instead of training on a clipped
class.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vai_jax._validation import check_array, check_labels, invalid_labels, is_concrete
from vai_jax.ops.numerics import log_softmax


def _class_ids(labels, weights, num: int, name: str = "labels"):
    """``(labels with bad ids replaced by 0, bool [B]: image has a weighted bad id)``; eager
    calls raise for a weighted id outside ``[0, num)``."""
    labels = check_array(labels, name, kind="integer")
    weights = jnp.asarray(weights)
    if is_concrete(labels) and is_concrete(weights):
        w = np.broadcast_to(np.asarray(weights), labels.shape)
        check_labels(np.asarray(labels)[w > 0], num, f"{name} (of entries with weight > 0)")
    invalid = invalid_labels(labels, num)
    bad = jnp.any((invalid & (weights > 0)).reshape(labels.shape[0], -1), axis=-1)
    return jnp.where(invalid, 0, labels), bad


def smooth_l1(pred: jax.Array, target: jax.Array, *, beta: float) -> jax.Array:
    """Elementwise smooth L1 (Huber / beta): ``0.5 d^2 / beta`` if ``|d| < beta`` else ``|d| - beta/2``.

    ``beta = 0`` is plain L1. Shapes broadcast; returns float32 of the broadcast shape.
    """
    d = jnp.abs(jnp.asarray(pred, jnp.float32) - jnp.asarray(target, jnp.float32))
    if beta <= 0:
        return d
    return jnp.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)


def box_regression_loss(deltas, targets, weights, *, beta: float, normalizer) -> jax.Array:
    """``sum(weights * smooth_l1(deltas - targets)) / normalizer`` over all but the leading axis.

    Args: deltas, targets ``[B, N, 4]``; weights ``[B, N]`` (1 for entries that regress);
    normalizer ``[B]`` or scalar (torchvision divides by the number of sampled entries).
    Returns ``[B]``. Non-finite targets at zero weight (padding) are ignored.
    """
    per = jnp.sum(smooth_l1(deltas, jnp.where(weights[..., None] > 0, targets, 0.0), beta=beta), -1)
    return jnp.sum(per * weights, axis=-1) / jnp.maximum(normalizer, 1.0)


def sampled_sigmoid_loss(logits, labels, weights) -> jax.Array:
    """Binary cross-entropy (objectness) averaged over sampled entries.

    Args: logits ``[B, N]``; labels ``[B, N]`` (> 0 = object); weights ``[B, N]`` 0/1.
    Returns ``[B]``: ``sum(w * bce) / max(sum(w), 1)``.
    """
    x = logits.astype(jnp.float32)
    y = (labels > 0).astype(jnp.float32)
    bce = jnp.maximum(x, 0) - x * y + jnp.log1p(jnp.exp(-jnp.abs(x)))
    return jnp.sum(bce * weights, -1) / jnp.maximum(jnp.sum(weights, -1), 1.0)


def sampled_softmax_loss(logits, labels, weights) -> jax.Array:
    """Softmax cross-entropy over ``C + 1`` classes (0 = background) averaged over sampled RoIs.

    Args: logits ``[B, R, C+1]``; labels int ``[B, R]`` in ``[0, C]``; weights ``[B, R]``.
    Returns ``[B]`` (NaN for an image with a weighted label outside ``[0, C]`` under jit).
    """
    lab, bad = _class_ids(labels, weights, logits.shape[-1])
    logp = log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(logp, lab[..., None], axis=-1)[..., 0]
    loss = jnp.sum(nll * weights, -1) / jnp.maximum(jnp.sum(weights, -1), 1.0)
    return jnp.where(bad, jnp.nan, loss)


def one_vs_rest_hinge_loss(scores, labels, weights) -> jax.Array:
    """One-vs-rest linear-SVM hinge loss (R-CNN's per-class SVMs, trained jointly).

    For each class ``c`` the target is ``+1`` when ``labels == c`` else ``-1``; the loss is
    ``sum_c max(0, 1 - y_c * s_c)``, averaged over weighted entries.

    Args: scores ``[B, R, C+1]`` (class 0 = background, also an SVM here); labels ``[B, R]``
    in ``[0, C]``; weights ``[B, R]``. Returns ``[B]`` (NaN for an image with a weighted label
    outside ``[0, C]`` under jit).
    """
    lab, bad = _class_ids(labels, weights, scores.shape[-1])
    s = scores.astype(jnp.float32)
    y = jnp.where(jax.nn.one_hot(lab, s.shape[-1]) > 0, 1.0, -1.0)
    per = jnp.sum(jnp.maximum(0.0, 1.0 - y * s), -1)
    loss = jnp.sum(per * weights, -1) / jnp.maximum(jnp.sum(weights, -1), 1.0)
    return jnp.where(bad, jnp.nan, loss)


def class_specific(deltas: jax.Array, labels: jax.Array) -> jax.Array:
    """Select each RoI's regression for its class: ``[B, R, C+1, 4]``, ``[B, R]`` -> ``[B, R, 4]``.

    Labels outside ``[0, C]`` are clipped (padding RoIs may hold any id; the classification
    loss of a weighted RoI with such a label is NaN, see the module docstring)."""
    labels = check_array(labels, "labels", kind="integer")
    lab = jnp.clip(labels, 0, deltas.shape[-2] - 1)
    return jnp.take_along_axis(deltas, lab[..., None, None], axis=-2)[..., 0, :]


def mask_loss(mask_logits, targets, weights, *, labels) -> jax.Array:
    """Per-class binary mask loss (Mask R-CNN): BCE of the channel of each RoI's class.

    Args:
      mask_logits: ``[B, R, S, S, C+1]``; targets ``[B, R, S, S]`` in ``[0, 1]``; weights
      ``[B, R]`` (1 for sampled foreground RoIs); labels int ``[B, R]`` (the channel each RoI
      is scored on, in ``[0, C]``).
    Returns ``[B]``: mean over pixels, averaged over weighted RoIs (NaN for an image with a
    weighted label outside ``[0, C]`` under jit).
    """
    lab, bad = _class_ids(labels, weights, mask_logits.shape[-1])
    x = jnp.take_along_axis(mask_logits, lab[..., None, None, None], axis=-1)[..., 0].astype(jnp.float32)
    y = targets.astype(jnp.float32)
    bce = jnp.maximum(x, 0) - x * y + jnp.log1p(jnp.exp(-jnp.abs(x)))
    per = jnp.mean(bce, axis=(-2, -1))
    loss = jnp.sum(per * weights, -1) / jnp.maximum(jnp.sum(weights, -1), 1.0)
    return jnp.where(bad, jnp.nan, loss)


def detection_loss(outputs: dict, batch: dict, *, rpn_beta: float = 1.0 / 9.0,
                   roi_beta: float = 1.0, mask_weight: float = 1.0) -> jax.Array:
    """Per-image loss of a two-stage detector from its training outputs (``train=True``).

    Sums the terms whose keys are present in ``outputs`` (see
    :mod:`vai_jax.detection.roi_heads` and :mod:`vai_jax.detection.faster_rcnn`):
    RPN objectness BCE over sampled anchors + RPN smooth L1 (beta 1/9) over positive anchors
    divided by the sampled count; RoI softmax cross-entropy (``cls_logits``) or R-CNN's
    one-vs-rest hinge (``svm_scores``) over sampled RoIs; class-specific smooth L1 (beta 1) over
    foreground RoIs divided by the sampled count (``box_deltas``); mask BCE over foreground RoIs
    (``mask_logits`` may cover only the first ``F`` RoI slots, where the sampler puts them).
    ``batch`` is unused: the models compute their targets (anchor and RoI sampling) inside.

    Returns ``[B]`` float32.
    """
    del batch
    total = 0.0
    if "rpn_logits" in outputs:
        w = outputs["rpn_weights"]
        total = total + sampled_sigmoid_loss(outputs["rpn_logits"], outputs["rpn_labels"], w)
        pos = w * (outputs["rpn_labels"] > 0)
        total = total + box_regression_loss(outputs["rpn_deltas"], outputs["rpn_box_targets"], pos,
                                            beta=rpn_beta, normalizer=jnp.sum(w, -1))
    if "cls_logits" in outputs:
        total = total + sampled_softmax_loss(outputs["cls_logits"], outputs["roi_labels"],
                                             outputs["roi_weights"])
    if "svm_scores" in outputs:
        total = total + one_vs_rest_hinge_loss(outputs["svm_scores"], outputs["roi_labels"],
                                               outputs["roi_weights"])
    if "box_deltas" in outputs:
        w = outputs["roi_weights"]
        labels = outputs["roi_labels"]
        fg = w * (labels > 0)
        total = total + box_regression_loss(class_specific(outputs["box_deltas"], labels),
                                            outputs["roi_box_targets"], fg, beta=roi_beta,
                                            normalizer=jnp.sum(w, -1))
    if "mask_logits" in outputs:  # on the first F sampled RoIs (the foreground slots)
        f = outputs["mask_logits"].shape[1]
        labels = outputs["roi_labels"][:, :f]
        fg = outputs["roi_weights"][:, :f] * (labels > 0)
        total = total + mask_weight * mask_loss(outputs["mask_logits"], outputs["mask_targets"], fg,
                                                labels=labels)
    return total
