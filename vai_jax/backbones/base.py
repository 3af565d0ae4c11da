"""What every backbone shares: the per-stage feature description, the input check (minimum size,
channels of the parameters), the pooled classifier, the input transform of torchvision's
Inception nets (and, re-exported, the BatchNorm factory of :mod:`vai_jax.nn.norm`)."""
from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax.numpy as jnp

from vai_jax._validation import check_array
from vai_jax.nn.norm import batch_norm  # noqa: F401  (re-exported for the families)


class FeatureInfo(NamedTuple):
    """One named feature map a backbone returns: ``features[name]`` has ``channels`` channels
    and is ``stride`` times smaller than the input (up to rounding of odd sizes)."""

    name: str
    channels: int
    stride: int


def check_image_input(module, x, *, family: str, stem: str, min_size: int = 1):
    """Validate a backbone's input before any layer sees it (call first in ``__call__``).

    Args:
      module: the backbone (inside its compact ``__call__``).
      x: the input, floating ``[B, H, W, C]``.
      family: the name used in messages (``"VGG"``, ``"BagNet-33"``).
      stem: ``/``-separated path of the first convolution's kernel in ``params``
        (``"stem/conv/kernel"``); when the module has parameters (``apply``, not ``init``), ``C``
        must equal that kernel's input channels.
      min_size: the smallest ``H`` and ``W`` for which every feature map is non-empty.

    Returns:
      ``x`` (a NumPy input converted to an array).

    Raises:
      ValueError: rank not 4, ``H`` or ``W`` below ``min_size`` (the message names the family
      and its minimum), ``C`` other than the parameters'. TypeError: non-floating ``x``.
    """
    x = check_array(x, "x", ndim=4, kind="floating", shape_hint="[B, H, W, C]")
    h, w = x.shape[1:3]
    if min(h, w) < min_size:
        raise ValueError(f"x must be at least {min_size}×{min_size} pixels for {family} (smaller "
                         f"inputs leave empty feature maps); got shape {tuple(x.shape)}")
    node = module.variables.get("params", {}) if module.has_variable("params", stem.split("/")[0]) \
        else None
    for key in stem.split("/") if node is not None else ():
        node = node.get(key) if hasattr(node, "get") else None
        if node is None:
            break
    if node is not None and hasattr(node, "shape") and node.shape[-2] != x.shape[-1]:
        raise ValueError(f"x has {x.shape[-1]} channels but the parameters of this {family} were "
                         f"made for {node.shape[-2]} ({stem} has shape {tuple(node.shape)}); "
                         f"got x of shape {tuple(x.shape)}")
    return x


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
