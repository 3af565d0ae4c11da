"""Classification metrics: top-k correctness and accuracy.

Functions return per-example values (``topk_correct``) or masked sums (``topk_counts``) so that
accuracy over a data set is an exact ratio of sums over batches, whatever the batch sizes.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from vai_jax._validation import check_array


def topk_correct(logits, labels, k: int = 1):
    """Whether the true class is among the ``k`` highest logits.

    Args:
      logits: floating ``[B, C]``.
      labels: integer ``[B]`` class ids in ``[0, C)``.
      k: ``1 <= k <= C``.

    Returns:
      bool ``[B]``. Ties are counted as correct when the true logit equals the k-th largest.
    """
    logits = check_array(logits, "logits", ndim=2, kind="floating", shape_hint="[B, C]")
    labels = check_array(labels, "labels", ndim=1, kind="integer", shape_hint="[B]")
    if labels.shape[0] != logits.shape[0]:
        raise ValueError(
            f"labels must have shape [B]={logits.shape[:1]} to match logits; got {labels.shape}")
    if not 1 <= int(k) <= logits.shape[1]:
        raise ValueError(f"k must be in [1, C={logits.shape[1]}]; got {k}")
    kth = jax.lax.top_k(logits, int(k))[0][:, -1]
    true_logit = jnp.take_along_axis(logits, labels[:, None].astype(jnp.int32), axis=1)[:, 0]
    return true_logit >= kth


def topk_counts(logits, labels, ks: Sequence[int] = (1,), mask=None) -> dict:
    """Masked counts for top-k accuracy of one batch.

    Args:
      logits: floating ``[B, C]``; labels: integer ``[B]``.
      ks: the ``k`` values; each ``k > C`` is clipped to ``C``.
      mask: optional bool/float ``[B]``; 0 marks padding examples.

    Returns:
      ``{"top{k}_correct": float32 [], ..., "count": float32 []}`` — sums over the batch.
    """
    logits = check_array(logits, "logits", ndim=2, kind="floating", shape_hint="[B, C]")
    weight = jnp.ones(logits.shape[:1], jnp.float32) if mask is None else jnp.asarray(
        mask, jnp.float32)
    out = {"count": jnp.sum(weight)}
    for k in ks:
        hit = topk_correct(logits, labels, min(int(k), logits.shape[1]))
        out[f"top{k}_correct"] = jnp.sum(hit.astype(jnp.float32) * weight)
    return out


def topk_accuracy(logits, labels, ks: Sequence[int] = (1, 5), mask=None) -> dict:
    """Top-k accuracy of one batch: ``{"top1": float32 [], "top5": ...}`` in ``[0, 1]``."""
    counts = topk_counts(logits, labels, ks, mask)
    return {f"top{k}": counts[f"top{k}_correct"] / jnp.maximum(counts["count"], 1.0) for k in ks}
