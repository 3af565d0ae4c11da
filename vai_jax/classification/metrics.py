"""Classification metrics: top-k correctness and accuracy.

Functions return per-example values (``topk_correct``) or masked sums (``topk_counts``) so that
accuracy over a data set is an exact ratio of sums over batches, whatever the batch sizes.

Labels outside ``[0, C)`` raise ValueError on eager calls. Under ``jit`` they cannot: such a label
is never counted correct by :func:`topk_correct`, and it makes every sum of :func:`topk_counts`
(and so :func:`topk_accuracy`) NaN, so a data set's accuracy is NaN rather than silently low.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from vai_jax._validation import (check_array, check_int, check_labels, invalid_labels,
                                 is_concrete)


def topk_correct(logits, labels, k: int = 1):
    """Whether the true class is among the ``k`` highest logits.

    Args:
      logits: floating ``[B, C]``.
      labels: integer ``[B]`` class ids in ``[0, C)``.
      k: ``1 <= k <= C``.

    Returns:
      bool ``[B]``. Ties are counted as correct when the true logit equals the k-th largest.
      Under ``jit`` a label outside ``[0, C)`` gives False (eager calls raise).
    """
    logits = check_array(logits, "logits", ndim=2, kind="floating", shape_hint="[B, C]")
    labels = check_array(labels, "labels", ndim=1, kind="integer", shape_hint="[B]")
    if labels.shape[0] != logits.shape[0]:
        raise ValueError(
            f"labels must have shape [B]={logits.shape[:1]} to match logits; got {labels.shape}")
    k = check_int(k, "k", ge=1)
    if k > logits.shape[1]:
        raise ValueError(f"k must be in [1, C={logits.shape[1]}]; got {k}")
    check_labels(labels, logits.shape[1])
    bad = invalid_labels(labels, logits.shape[1])
    kth = jax.lax.top_k(logits, k)[0][:, -1]
    safe = jnp.where(bad, 0, labels).astype(jnp.int32)
    true_logit = jnp.take_along_axis(logits, safe[:, None], axis=1)[:, 0]
    return (true_logit >= kth) & ~bad


def topk_counts(logits, labels, ks: Sequence[int] = (1,), mask=None) -> dict:
    """Masked counts for top-k accuracy of one batch.

    Args:
      logits: floating ``[B, C]``; labels: integer ``[B]``.
      ks: the ``k`` values; each ``k > C`` is clipped to ``C``.
      mask: optional bool/float ``[B]``; 0 marks padding examples.

    Returns:
      ``{"top{k}_correct": float32 [], ..., "count": float32 []}`` — sums over the batch; all
      NaN under ``jit`` when a label of an example with ``mask > 0`` is outside ``[0, C)``.
    """
    logits = check_array(logits, "logits", ndim=2, kind="floating", shape_hint="[B, C]")
    labels = check_array(labels, "labels", ndim=1, kind="integer", shape_hint="[B]")
    if isinstance(ks, (int, np.integer)) or not hasattr(ks, "__iter__"):
        raise TypeError(f"ks must be a sequence of ints; got {ks!r}")
    ks = [check_int(k, "ks", ge=1) for k in ks]
    weight = jnp.ones(logits.shape[:1], jnp.float32) if mask is None else check_array(
        mask, "mask", ndim=1, kind="numeric", shape_hint="[B]").astype(jnp.float32)
    if weight.shape != logits.shape[:1]:
        raise ValueError(f"mask must have shape [B]={logits.shape[:1]}; got {weight.shape}")
    invalid = invalid_labels(labels, logits.shape[1])
    if mask is None:
        check_labels(labels, logits.shape[1])
    elif all(map(is_concrete, (labels, weight))):
        check_labels(np.asarray(labels)[np.asarray(weight) > 0], logits.shape[1],
                     name="labels (of examples with mask > 0)")
    safe = jnp.where(invalid, 0, labels)  # masked-out examples may hold anything
    out = {"count": jnp.sum(weight)}
    for k in ks:
        hit = topk_correct(logits, safe, min(k, logits.shape[1]))
        out[f"top{k}_correct"] = jnp.sum(hit.astype(jnp.float32) * weight)
    bad = jnp.any(invalid & (weight > 0))
    return {name: jnp.where(bad, jnp.nan, v) for name, v in out.items()}


def topk_accuracy(logits, labels, ks: Sequence[int] = (1, 5), mask=None) -> dict:
    """Top-k accuracy of one batch: ``{"top1": float32 [], "top5": ...}`` in ``[0, 1]``."""
    counts = topk_counts(logits, labels, ks, mask)
    return {f"top{k}": counts[f"top{k}_correct"] / jnp.maximum(counts["count"], 1.0) for k in ks}
