"""Argument validation shared by every public function.

Errors name the argument, what was expected and what was received. Structure (rank, shape,
dtype kind, "is this a number at all") is checked always, also on traced values. Value checks
(finiteness, ranges, box geometry) run only on concrete arrays: inside ``jax.jit`` the values
are not known, and the calling function documents what happens there instead. This module is
the one place that draws that line:

* :func:`check_array` — rank, last dimension and dtype kind of an array argument;
* :func:`check_number` — a real scalar (or array of them) within ``gt``/``ge``/``lt``/``le``
  bounds, e.g. thresholds, image sizes, coder weights;
* :func:`check_finite` — no NaN (and no inf unless allowed);
* :func:`check_boxes` — ``[..., 4]`` ``[x1, y1, x2, y2]`` boxes: finite, not inverted and,
  optionally, not empty;
* :func:`check_int` — a Python/NumPy integer (never ``bool`` or a float) within bounds, e.g.
  step counts, strides, batch sizes;
* :func:`check_image_size` — an ``(H, W)`` pair of positive integers (static sizes);
* :func:`check_labels` — class ids in ``[0, num_classes)`` or an ignore value, eagerly; its traced
  counterpart :func:`invalid_labels` returns the mask of bad ids for the caller to act on
  (non-finite loss, NaN metric sums);
* :func:`check_positive`, :func:`check_same_shape`, :func:`check_axis`, :func:`check_axes`.
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


def check_finite(x: Any, name: str, *, allow_inf: bool = False) -> None:
    """Raise ValueError if a concrete ``x`` holds NaN (or inf, unless ``allow_inf``).

    A no-op under tracing: the caller documents what NaN/inf values do inside ``jit``.
    """
    if not is_concrete(x):
        return
    values = np.asarray(x)
    bad = np.isnan(values) if allow_inf else ~np.isfinite(values)
    if np.any(bad):
        what = "NaN" if allow_inf else "NaN/inf"
        where = f", the first at index {_first(bad)}" if values.ndim else ""
        raise ValueError(f"{name} must be {'free of NaN' if allow_inf else 'finite'}; found "
                         f"{int(bad.sum())} {what} value(s){where}")


def _first(bad: np.ndarray) -> str:
    """The index of the first True entry of ``bad``, as text (``3`` or ``(0, 3)``)."""
    idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), bad.shape))
    return str(idx[0]) if len(idx) == 1 else str(idx)


def _bounds_text(gt, ge, lt, le) -> str:
    parts = [f"{op} {v}" for op, v in ((">", gt), (">=", ge), ("<", lt), ("<=", le))
             if v is not None]
    return " and ".join(parts)


def check_number(
    x: Any,
    name: str,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    finite: bool = True,
    scalar: bool = True,
):
    """Validate a real number (or, with ``scalar=False``, an array of them) and its range.

    Types are checked always: ``x`` must be a Python ``int``/``float`` (not ``bool``), a NumPy
    real scalar or a real-valued array (0-d unless ``scalar=False``), concrete or traced.
    Values are checked only when concrete: never NaN, finite unless ``finite=False``, and within
    the given bounds (``gt``/``ge``/``lt``/``le``). Inside ``jax.jit`` the caller documents what
    other values do.

    Returns:
      ``x`` unchanged.

    Raises:
      TypeError: not a real number / real array (e.g. a string, ``None``, ``True``, complex).
      ValueError: a non-scalar where a scalar is required, NaN, inf or out of range.
    """
    if isinstance(x, (bool, np.bool_)) or not (
            isinstance(x, (int, float, np.integer, np.floating))
            or (hasattr(x, "dtype") and hasattr(x, "shape"))):
        raise TypeError(f"{name} must be a real number; got {type(x).__name__} {x!r}")
    dtype = np.result_type(x) if not hasattr(x, "dtype") else x.dtype
    if not (jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating)):
        raise TypeError(f"{name} must be a real number; got dtype {dtype}")
    if scalar and np.ndim(x) != 0:
        raise ValueError(f"{name} must be a scalar; got shape {tuple(np.shape(x))}")
    if not is_concrete(x):
        return x
    values = np.asarray(x, np.float64)
    bounds = _bounds_text(gt, ge, lt, le)
    want = "a finite number" if finite else "a number (not NaN)"
    want += f" {bounds}" if bounds else ""
    bad = np.isnan(values)
    if finite:
        bad |= np.isinf(values)
    if gt is not None:
        bad |= ~(values > gt)
    if ge is not None:
        bad |= ~(values >= ge)
    if lt is not None:
        bad |= ~(values < lt)
    if le is not None:
        bad |= ~(values <= le)
    if np.any(bad):
        if values.ndim == 0:
            raise ValueError(f"{name} must be {want}; got {np.asarray(x).item()!r}")
        raise ValueError(f"{name} must hold values that are each {want}; got "
                         f"{values[np.unravel_index(int(np.argmax(bad)), bad.shape)].item()!r} at "
                         f"index {_first(bad)} ({int(bad.sum())} such value(s))")
    return x


def check_boxes(
    x: Any,
    name: str,
    *,
    ndim: int | Sequence[int] | None = None,
    min_ndim: int | None = 1,
    shape_hint: str = "[..., 4]",
    allow_degenerate: bool = True,
):
    """Validate ``[..., 4]`` floating xyxy boxes ``[x1, y1, x2, y2]``.

    Rank, last dimension and dtype are checked always. Values are checked only when concrete:
    all coordinates finite and ``x2 >= x1``, ``y2 >= y1`` (strictly ``>`` when
    ``allow_degenerate`` is False, i.e. zero-width or zero-height boxes are rejected too).

    Returns:
      ``x`` converted to an array when it was a Python or NumPy value, else ``x`` itself.

    Raises:
      TypeError: non-floating dtype. ValueError: wrong shape, NaN/inf, inverted (or, with
      ``allow_degenerate=False``, empty) boxes; the message names the first offending box.
    """
    x = check_array(x, name, ndim=ndim, min_ndim=None if ndim is not None else min_ndim,
                    last_dim=4, kind="floating", shape_hint=shape_hint)
    if not is_concrete(x) or x.size == 0:
        return x
    b = np.asarray(x)
    finite = np.isfinite(b)
    if not np.all(finite):
        bad = ~np.all(finite, axis=-1)
        first = np.unravel_index(int(np.argmax(bad)), bad.shape)
        raise ValueError(
            f"{name} must hold finite [x1, y1, x2, y2] boxes; found {int(np.sum(~finite))} "
            f"NaN/inf coordinate(s), the first in box {_first(bad)}: {b[first].tolist()}")
    w = b[..., 2] - b[..., 0]
    h = b[..., 3] - b[..., 1]
    bad = (w <= 0) | (h <= 0) if not allow_degenerate else (w < 0) | (h < 0)
    if np.any(bad):
        rel = ">" if not allow_degenerate else ">="
        first = np.unravel_index(int(np.argmax(bad)), bad.shape)
        raise ValueError(
            f"{name} must be [x1, y1, x2, y2] boxes with x2 {rel} x1 and y2 {rel} y1"
            f"{'' if allow_degenerate else ' (positive width and height)'}; {int(bad.sum())} "
            f"box(es) violate this, the first is box {_first(bad)}: {b[first].tolist()}")
    return x


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
    """Normalise a possibly negative axis; TypeError when not an integer, ValueError when out of
    range."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{name} must be an int; got {type(axis).__name__} {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}={axis} is out of range for an input of rank {ndim}")
    return int(axis) % ndim


def check_axes(axis, ndim: int, name: str = "axis") -> tuple[int, ...]:
    """An int or a sequence of ints, each normalised by :func:`check_axis`; sorted, without
    duplicates (ValueError when two entries name the same axis, e.g. ``(0, -2)`` at rank 2)."""
    axes = (axis,) if not isinstance(axis, (tuple, list)) else tuple(axis)
    out = [check_axis(a, ndim, name) for a in axes]
    if len(set(out)) != len(out):
        raise ValueError(f"{name} must name each axis once; got {axis!r} (axes {out} at rank "
                         f"{ndim})")
    return tuple(sorted(out))


def check_int(x: Any, name: str, *, ge: int | None = None, gt: int | None = None,
              le: int | None = None) -> int:
    """A Python or NumPy integer (not ``bool``, not a float such as ``2.0``) within bounds.

    Returns:
      ``int(x)``.

    Raises:
      TypeError: not an integer. ValueError: outside ``ge``/``gt``/``le``.
    """
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"{name} must be an int; got {type(x).__name__} {x!r}")
    v = int(x)
    if (ge is not None and v < ge) or (gt is not None and v <= gt) or (le is not None and v > le):
        raise ValueError(f"{name} must be an int {_bounds_text(gt, ge, None, le)}; got {v}")
    return v


def check_image_size(size: Any, name: str = "image_size", *, ge: int = 1) -> tuple[int, int]:
    """An ``(H, W)`` pair of integers ``>= ge`` (a static size: shapes depend on it).

    Returns:
      ``(H, W)`` as Python ints.

    Raises:
      TypeError: not a pair of integers. ValueError: a side below ``ge``.
    """
    if isinstance(size, (str, bytes)) or not hasattr(size, "__len__") or len(size) != 2:
        raise TypeError(f"{name} must be a pair (H, W) of ints; got {size!r}")
    h, w = size
    for side, v in (("H", h), ("W", w)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be a pair (H, W) of ints; got {size!r} ({side} is "
                            f"{type(v).__name__})")
    if min(int(h), int(w)) < ge:
        raise ValueError(f"{name} must be a pair (H, W) of ints >= {ge}; got {tuple(size)!r}")
    return int(h), int(w)


def invalid_labels(labels, num_classes: int, *, ignore_label: int | None = None):
    """bool mask of ``labels`` entries outside ``[0, num_classes)`` that are not ``ignore_label``
    (jnp; works on traced values: the caller decides what a bad id does under ``jit``)."""
    labels = jnp.asarray(labels)
    bad = (labels < 0) | (labels >= num_classes)
    if ignore_label is not None:
        bad &= labels != ignore_label
    return bad


def check_labels(labels, num_classes: int, name: str = "labels", *,
                 ignore_label: int | None = None) -> None:
    """ValueError when a concrete ``labels`` holds a class id outside ``[0, num_classes)`` that
    is not ``ignore_label``; the message gives the count, the first index and the bad values.
    A no-op under tracing (see :func:`invalid_labels`)."""
    if not is_concrete(labels) or not np.size(labels):
        return
    v = np.asarray(labels)
    bad = (v < 0) | (v >= num_classes)
    if ignore_label is not None:
        bad &= v != ignore_label
    if np.any(bad):
        ign = f" or the ignore label {ignore_label}" if ignore_label is not None else ""
        where = f", the first at index {_first(bad)}" if v.ndim else ""
        raise ValueError(f"{name} must hold class ids in [0, {num_classes}){ign}; found "
                         f"{int(bad.sum())} outside{where}, values "
                         f"{np.unique(v[bad])[:8].tolist()}")
