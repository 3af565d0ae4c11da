"""Classification loss in the train-step convention ``loss_fn(outputs, batch) -> [B]``."""
from __future__ import annotations

import jax.numpy as jnp

from vai_jax.ops import cross_entropy


def softmax_cross_entropy(outputs, batch, *, label_smoothing: float = 0.0):
    """Per-example softmax cross-entropy of a classifier's output.

    Args:
      outputs: the model's output: logits floating ``[B, C]``, or a tuple ``(logits, features)``
        as returned by the library's backbones.
      batch: dict with ``"label"`` integer ``[B]`` in ``[0, C)``.
      label_smoothing: ``ε`` in ``[0, 1)`` (passed explicitly; bind with ``functools.partial``).

    Returns:
      float32 ``[B]`` (computed in float32 whatever the logits' compute dtype).
    """
    logits = outputs[0] if isinstance(outputs, tuple) else outputs
    return cross_entropy(logits.astype(jnp.float32), batch["label"],
                         label_smoothing=label_smoothing)
