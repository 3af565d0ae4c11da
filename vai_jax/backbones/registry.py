"""The one explicit table of model constructors. Each family module defines ``MODELS``: a dict
from public name to a constructor (usually a ``functools.partial`` of the family's module)."""
from __future__ import annotations

import jax.numpy as jnp

from vai_jax._validation import check_int

from vai_jax.backbones import alexnet, bagnet, densenet, highway, resnet, vgg
from vai_jax.backbones import googlenet, inception_v3, inception_v4, mobilenet, shufflenet, squeezenet
from vai_jax.backbones import mobilenet_v2, mobilenet_v3, shufflenet_v2

# Family modules, each contributing its ``MODELS`` dict. Add a family by adding its module here.
_FAMILIES = (
    resnet, vgg, alexnet, densenet, bagnet, highway,
    googlenet, inception_v3, inception_v4, mobilenet, squeezenet, shufflenet,
    mobilenet_v2, mobilenet_v3, shufflenet_v2,
)


def _table():
    table = {}
    for family in _FAMILIES:
        for name, ctor in family.MODELS.items():
            if name in table:
                raise RuntimeError(f"model name {name!r} is defined twice")
            table[name] = ctor
    return table


def list_models() -> list[str]:
    """All names accepted by :func:`create_model`, sorted."""
    return sorted(_table())


def create_model(name: str, *, num_classes: int = 1000, dtype=jnp.float32, **overrides):
    """Build the backbone ``name`` as a Flax Linen module.

    Args:
      name: one of :func:`list_models`.
      num_classes: classifier width; 0 builds no classifier (``logits`` is ``None``).
      dtype: computation dtype (parameters stay float32 unless ``param_dtype`` is overridden).
      **overrides: any other field of the family's module (e.g. ``width_multiplier``).

    Returns:
      A module with ``apply(variables, x, train=...) -> (logits, features)`` and ``feature_info``.
      Applied to ``x`` smaller than the family's minimum size, or with another channel count
      than its parameters were made for, it raises a ValueError saying so.

    Raises:
      ValueError: unknown ``name``, ``num_classes`` < 0, a non-floating ``dtype``.
      TypeError: ``num_classes`` not an int (``True`` and ``10.0`` included), an unknown field
        in ``overrides`` (named).
    """
    table = _table()
    if not isinstance(name, str) or name not in table:
        raise ValueError(f"unknown model name {name!r}; choose one of: {', '.join(sorted(table))}")
    num_classes = check_int(num_classes, "num_classes", ge=0)
    try:
        floating = jnp.issubdtype(jnp.dtype(dtype), jnp.floating)
    except TypeError:
        floating = False
    if not floating:
        raise ValueError(f"dtype must be a floating dtype (float32, bfloat16, float16); got "
                         f"{dtype!r}")
    try:
        return table[name](num_classes=num_classes, dtype=dtype, **overrides)
    except TypeError as err:
        if "unexpected keyword argument" not in str(err):
            raise
        raise TypeError(f"create_model({name!r}): {err}; the fields of this model are its "
                        f"module's dataclass fields") from err
