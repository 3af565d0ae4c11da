"""Colourisation losses; the train step's loss is ``colourisation_loss(outputs, batch) -> [B]``."""
from __future__ import annotations

import jax.numpy as jnp

from vai_jax._validation import check_array, check_number
from vai_jax.colourisation.inputs import split_lab
from vai_jax.ops import cross_entropy


def ab_squared_error(predictions, targets, weights=None):
    """Per-example mean squared error over pixels and both chrominance channels.

    Args:
      predictions: floating ``[B, H, W, 2]``.
      targets: ``[B, H, W, 2]``.
      weights: optional ``[B, H, W]`` pixel weights (a weighted mean; all-zero weights give 0).

    Returns:
      float32 ``[B]``.
    """
    predictions = check_array(predictions, "predictions", ndim=4, kind="floating", last_dim=2,
                              shape_hint="[B, H, W, 2]")
    if tuple(targets.shape) != tuple(predictions.shape):
        raise ValueError(f"targets must have the shape of predictions {tuple(predictions.shape)}; "
                         f"got {tuple(targets.shape)}")
    sq = jnp.mean(jnp.square(predictions.astype(jnp.float32) - targets.astype(jnp.float32)), -1)
    if weights is None:
        return jnp.mean(sq, axis=(1, 2))
    w = jnp.asarray(weights, jnp.float32)
    return jnp.sum(sq * w, axis=(1, 2)) / jnp.maximum(jnp.sum(w, axis=(1, 2)), 1e-12)


def colourisation_loss(outputs, batch, *, ab_norm: float = 100.0,
                       classification_weight: float = 0.0):
    """Per-example loss of :class:`~vai_jax.colourisation.models.ColourisationNet`.

    ``mean((ab − ab*)² / ab_norm²)`` over pixels and channels, the targets ``ab*`` computed from
    ``batch["image"]``, plus ``classification_weight ×`` the softmax cross-entropy of
    ``outputs["logits"]`` against ``batch["label"]`` (the joint training of Iizuka et al. 2016,
    who weight it 1/300 against their chrominance MSE in ``[0, 1]`` units).

    Args:
      outputs: the model's dict: ``"ab"`` ``[B, H, W, 2]`` in Lab units, optional ``"logits"``.
      batch: ``"image"`` ``[B, H, W, 3]`` (uint8, or floating in ``[0, 1]``); ``"label"``
        ``[B]`` when ``classification_weight > 0``.
      ab_norm: divides both chrominances (Lab units → about ``[-1, 1]``).
      classification_weight: 0 trains no classification head, even when the model has one.

    Returns:
      float32 ``[B]``.

    Raises:
      ValueError: ``classification_weight > 0`` and the model has no ``"logits"``.
    """
    _, target = split_lab(batch["image"])
    check_number(ab_norm, "ab_norm", gt=0.0)
    check_number(classification_weight, "classification_weight", ge=0.0)
    loss = ab_squared_error(outputs["ab"] / ab_norm, target / ab_norm)
    if classification_weight:
        if "logits" not in outputs:
            raise ValueError("classification_weight > 0 needs a classification head: build the "
                             "model with num_classes > 0")
        loss = loss + classification_weight * cross_entropy(
            outputs["logits"].astype(jnp.float32), batch["label"])
    return loss
