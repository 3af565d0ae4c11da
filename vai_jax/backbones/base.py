"""What every backbone shares: the per-stage feature description (and, re-exported, the
BatchNorm factory of :mod:`vai_jax.nn.norm`)."""
from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax.numpy as jnp

from vai_jax.nn.norm import batch_norm  # noqa: F401  (re-exported for the families)


class FeatureInfo(NamedTuple):
    """One named feature map a backbone returns: ``features[name]`` has ``channels`` channels
    and is ``stride`` times smaller than the input (up to rounding of odd sizes)."""

    name: str
    channels: int
    stride: int


def pooled_classifier(module, x, *, train: bool):
    """Global average pool → dropout → ``Dense`` named ``fc``: the classifier of the families
    whose ``module`` has ``num_classes``, ``dropout_rate``, ``dtype`` and ``param_dtype`` fields.

    Call it from the family's compact ``__call__``; ``x`` is the last ``[B, H, W, C]`` map.
    Returns ``[B, num_classes]`` logits, or ``None`` when ``module.num_classes == 0``.
    """
    if not module.num_classes:
        return None
    x = jnp.mean(x, axis=(1, 2))
    x = nn.Dropout(module.dropout_rate, deterministic=not train)(x)
    return nn.Dense(module.num_classes, dtype=module.dtype, param_dtype=module.param_dtype,
                    name="fc")(x)
