"""Argument validation shared by every public function.

Errors name the argument, what was expected and what was received. Value checks (finiteness,
ranges) run only on concrete arrays: inside ``jax.jit`` the values are not known, and the
calling function documents what happens there instead.
"""
from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

_KINDS = {
    "floating": (jnp.floating, "a floating dtype (float16/bfloat16/float32/float64)"),
    "integer": (jnp.integer, "an integer dtype"),
    "bool": (jnp.bool_, "bool"),
    "numeric": (jnp.number, "a numeric dtype"),
}


def is_concrete(x: Any) -> bool:
    """True when ``x`` holds values (NumPy or a committed jax.Array), False for tracers."""
    return not isinstance(x, jax.core.Tracer)


def check_array(
    x: Any,
    name: str,
    *,
    ndim: int | Sequence[int] | None = None,
    min_ndim: int | None = None,
    kind: str | None = None,
    last_dim: int | None = None,
    shape_hint: str | None = None,
):
    """Validate rank, dtype kind and last dimension of an array-like argument.

    Args:
      x: the argument (anything with ``.shape``/``.dtype``, or a Python/NumPy value).
      name: the argument's name as the caller's signature spells it.
      ndim: required rank, or a sequence of allowed ranks.
      min_ndim: minimum rank.
      kind: one of ``"floating"``, ``"integer"``, ``"bool"``, ``"numeric"``.
      last_dim: required size of the last axis.
      shape_hint: a human-readable shape such as ``"[B, H, W, C]"`` used in messages.

    Returns:
      ``x`` converted to an array when it was a Python or NumPy value, else ``x`` itself.

    Raises:
      TypeError: wrong dtype kind. ValueError: wrong rank or last dimension.
    """
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        x = np.asarray(x)
    hint = f" {shape_hint}" if shape_hint else ""
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(
                f"{name} must have rank {want}{hint}; got shape {tuple(x.shape)} (rank {x.ndim})"
            )
    if min_ndim is not None and x.ndim < min_ndim:
        raise ValueError(
            f"{name} must have rank >= {min_ndim}{hint}; got shape {tuple(x.shape)}"
        )
    if last_dim is not None and (x.ndim == 0 or x.shape[-1] != last_dim):
        raise ValueError(
            f"{name} must have last dimension {last_dim}{hint}; got shape {tuple(x.shape)}"
        )
    if kind is not None:
        base, text = _KINDS[kind]
        if not jnp.issubdtype(x.dtype, base):
            raise TypeError(f"{name} must have {text}; got dtype {x.dtype}")
    return x


def check_finite(x: Any, name: str) -> None:
    """Raise ValueError if a concrete ``x`` holds NaN or inf (no-op under tracing)."""
    if is_concrete(x) and not bool(np.all(np.isfinite(np.asarray(x)))):
        bad = int(np.sum(~np.isfinite(np.asarray(x))))
        raise ValueError(f"{name} must be finite; found {bad} NaN/inf value(s)")


def check_positive(value: float, name: str, *, allow_zero: bool = False) -> None:
    """Raise ValueError unless the Python scalar ``value`` is > 0 (or >= 0)."""
    if is_concrete(value):
        v = float(value)
        ok = v >= 0 if allow_zero else v > 0
        if not ok or not np.isfinite(v):
            rel = ">= 0" if allow_zero else "> 0"
            raise ValueError(f"{name} must be finite and {rel}; got {value}")


def check_same_shape(a: Any, b: Any, name_a: str, name_b: str) -> None:
    """Raise ValueError unless ``a`` and ``b`` have equal shapes."""
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape; got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def check_axis(axis: int, ndim: int, name: str = "axis") -> int:
    """Normalise a possibly negative axis; ValueError when out of range."""
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}={axis} is out of range for an input of rank {ndim}")
    return axis % ndim
