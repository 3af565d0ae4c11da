"""What every backbone shares: the per-stage feature description, the pooled classifier, the
input transform of torchvision's Inception nets (and, re-exported, the BatchNorm factory of
:mod:`vai_jax.nn.norm`)."""
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


# torchvision's ImageNet normalisation (mean, std per RGB channel).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_to_inception_input(x):
    """torchvision's ``transform_input`` of GoogLeNet and Inception v3: re-normalise an input
    normalised with the ImageNet mean and std (``(v − mean) / std``) to ``(v − 0.5) / 0.5``, the
    normalisation their ported weights were trained with. ``[..., 3]`` → same shape and dtype."""
    scale = jnp.asarray([s / 0.5 for s in IMAGENET_STD], x.dtype)
    shift = jnp.asarray([(m - 0.5) / 0.5 for m in IMAGENET_MEAN], x.dtype)
    return x * scale + shift
