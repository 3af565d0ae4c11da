"""Anchor boxes per feature level: sizes x aspect ratios, tiled with a stride.

Anchors are ``[x1, y1, x2, y2]`` in input-image pixels (continuous frame of
:mod:`vai_jax.ops.coords`). Feature cell ``(i, j)`` of a level with stride ``s`` places its
anchors' centre at ``((j + offset) * s, (i + offset) * s)``: ``offset=0`` reproduces
torchvision's ``AnchorGenerator`` (centres on the corners of the stride cells), ``offset=0.5``
puts them on the cell centres as detectron2 recommends for the pixel frame used here.

Everything is computed with NumPy at trace time (anchors depend only on static shapes), so the
results are constants inside ``jax.jit``.
"""
from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np


def _as_pair(value, name: str) -> tuple[float, float]:
    """``s`` or ``(sy, sx)`` -> ``(sy, sx)`` of positive numbers."""
    if np.ndim(value) == 0:
        pair = (float(value), float(value))
    else:
        pair = tuple(float(v) for v in value)
        if len(pair) != 2:
            raise ValueError(f"{name} must be a number or a (y, x) pair; got {value!r}")
    if not all(np.isfinite(v) and v > 0 for v in pair):
        raise ValueError(f"{name} must be finite and > 0; got {value!r}")
    return pair


def cell_anchors(
    sizes: Sequence[float], aspect_ratios: Sequence[float], *, round_to_int: bool = True
) -> np.ndarray:
    """Zero-centred anchors of one level, torchvision ``AnchorGenerator.generate_anchors``.

    For aspect ratio ``r = h / w`` and size ``s``: ``w = s / sqrt(r)``, ``h = s * sqrt(r)``, so the
    area is ``s**2``. Order: aspect ratios outer, sizes inner (``A = len(aspect_ratios) *
    len(sizes)``, row ``i * len(sizes) + j`` is ratio ``i``, size ``j``), as torchvision.

    Args:
      sizes: anchor sizes in pixels (sqrt of the area), each > 0.
      aspect_ratios: height / width ratios, each > 0.
      round_to_int: round the corners to integers (half to even) as torchvision does; False
        keeps exact corners (detectron2).

    Returns:
      ``[A, 4]`` float32 NumPy array ``[-w/2, -h/2, w/2, h/2]``.
    """
    sizes_a = np.asarray(sizes, np.float32).reshape(-1)
    ratios = np.asarray(aspect_ratios, np.float32).reshape(-1)
    if sizes_a.size == 0 or not np.all(np.isfinite(sizes_a) & (sizes_a > 0)):
        raise ValueError(f"sizes must be a non-empty sequence of finite numbers > 0; got {sizes!r}")
    if ratios.size == 0 or not np.all(np.isfinite(ratios) & (ratios > 0)):
        raise ValueError(
            f"aspect_ratios must be a non-empty sequence of finite numbers > 0; got {aspect_ratios!r}"
        )
    h_ratios = np.sqrt(ratios)
    w_ratios = np.float32(1) / h_ratios
    ws = (w_ratios[:, None] * sizes_a[None, :]).reshape(-1)
    hs = (h_ratios[:, None] * sizes_a[None, :]).reshape(-1)
    base = np.stack([-ws, -hs, ws, hs], axis=1) / np.float32(2)
    return np.round(base).astype(np.float32) if round_to_int else base.astype(np.float32)


def grid_anchors(
    cell: np.ndarray, feature_shape: Sequence[int], stride, *, offset: float = 0.0
) -> jnp.ndarray:
    """Tile ``cell`` anchors over a ``(h, w)`` feature grid.

    Args:
      cell: ``[A, 4]`` zero-centred anchors (see :func:`cell_anchors`).
      feature_shape: ``(h, w)`` of the feature map.
      stride: pixels per feature cell, a number or ``(sy, sx)``.
      offset: 0 (torchvision) or 0.5 (cell centres, detectron2).

    Returns:
      ``[h * w * A, 4]`` float32 xyxy anchors in input-image pixels, ordered ``(i, j, a)``
      (row-major over the grid, anchors innermost), as torchvision.
    """
    cell = np.asarray(cell, np.float32)
    if cell.ndim != 2 or cell.shape[-1] != 4:
        raise ValueError(f"cell must have shape [A, 4]; got {cell.shape}")
    if len(feature_shape) != 2 or not all(int(s) > 0 for s in feature_shape):
        raise ValueError(f"feature_shape must be (h, w) with positive sizes; got {feature_shape!r}")
    sy, sx = _as_pair(stride, "stride")
    h, w = (int(s) for s in feature_shape)
    ys = (np.arange(h, dtype=np.float32) + np.float32(offset)) * np.float32(sy)
    xs = (np.arange(w, dtype=np.float32) + np.float32(offset)) * np.float32(sx)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    shifts = np.stack([xx, yy, xx, yy], axis=-1).reshape(-1, 1, 4)
    return jnp.asarray((shifts + cell[None]).reshape(-1, 4))


def level_anchors(
    feature_shape: Sequence[int],
    stride,
    sizes: Sequence[float],
    aspect_ratios: Sequence[float],
    *,
    offset: float = 0.0,
    round_to_int: bool = True,
) -> jnp.ndarray:
    """Anchors of one feature level: :func:`cell_anchors` tiled by :func:`grid_anchors`.

    Returns ``[h * w * A, 4]`` float32 xyxy anchors in input-image pixels.
    """
    cell = cell_anchors(sizes, aspect_ratios, round_to_int=round_to_int)
    return grid_anchors(cell, feature_shape, stride, offset=offset)


def multilevel_anchors(
    feature_shapes: Sequence[Sequence[int]],
    strides: Sequence,
    sizes: Sequence[Sequence[float]],
    aspect_ratios: Sequence[Sequence[float]],
    *,
    offset: float = 0.0,
    round_to_int: bool = True,
) -> tuple[jnp.ndarray, tuple[int, ...]]:
    """Anchors for several levels (FPN), concatenated level by level.

    Args:
      feature_shapes: ``(h_l, w_l)`` per level. strides: stride per level.
      sizes, aspect_ratios: per level (torchvision's ``((32,), (64,), ...)`` and
        ``((0.5, 1.0, 2.0),) * L``).

    Returns:
      ``(anchors [sum_l h_l * w_l * A_l, 4] float32, counts)`` where ``counts[l]`` is the number
      of anchors of level ``l`` (Python ints, for splitting predictions).
    """
    n = len(feature_shapes)
    for name, seq in (("strides", strides), ("sizes", sizes), ("aspect_ratios", aspect_ratios)):
        if len(seq) != n:
            raise ValueError(f"{name} must have one entry per level ({n}); got {len(seq)}")
    levels = [
        level_anchors(fs, st, sz, ar, offset=offset, round_to_int=round_to_int)
        for fs, st, sz, ar in zip(feature_shapes, strides, sizes, aspect_ratios)
    ]
    return jnp.concatenate(levels, axis=0), tuple(int(a.shape[0]) for a in levels)
