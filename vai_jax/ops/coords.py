"""The one coordinate frame every op, model and data set in vai_jax uses.

Image and heatmap pixels are unit squares: pixel (row i, col j) spans ``[j, j+1) × [i, i+1)``
and its centre is ``(j + 0.5, i + 0.5)`` in ``(x, y)`` order. A map of stride ``s`` (one cell
per ``s × s`` image pixels, cell (i, j) covering image pixels ``[s·j, s·(j+1)) × [s·i, s·(i+1))``)
maps to image coordinates by multiplying by ``s``: the centre of heatmap cell (i, j) is image
point ``(s·(j + 0.5), s·(i + 0.5))``.

Boxes are ``[x1, y1, x2, y2]`` and keypoints ``[x, y, visibility]`` in this frame; a box that
covers exactly pixels ``j0..j1`` and ``i0..i1`` is ``[j0, i0, j1 + 1, i1 + 1]``.
"""
from __future__ import annotations

import jax.numpy as jnp

from vai_jax._validation import check_array, check_positive


def pixel_centers(height: int, width: int, dtype=jnp.float32):
    """Centres of a ``height × width`` grid.

    Returns:
      ``(xs [width], ys [height])`` with ``xs[j] = j + 0.5`` and ``ys[i] = i + 0.5``.
    """
    if int(height) <= 0 or int(width) <= 0:
        raise ValueError(f"height and width must be >= 1; got height={height}, width={width}")
    return (jnp.arange(width, dtype=dtype) + 0.5, jnp.arange(height, dtype=dtype) + 0.5)


def pixel_center_grid(height: int, width: int, dtype=jnp.float32):
    """``[height, width, 2]`` array whose entry ``[i, j]`` is ``(j + 0.5, i + 0.5)`` as (x, y)."""
    xs, ys = pixel_centers(height, width, dtype)
    return jnp.stack(jnp.meshgrid(xs, ys, indexing="xy"), axis=-1)


def heatmap_to_image(points, stride: float):
    """Map ``(x, y)`` points ``[..., 2]`` (or ``[..., 3]`` keypoints; extra columns kept) from a
    stride-``stride`` map's frame to image pixels: ``image = stride · heatmap``."""
    check_positive(stride, "stride")
    points = check_array(points, "points", min_ndim=1)
    if points.shape[-1] < 2:
        raise ValueError(f"points must have last dimension >= 2 (x, y); got shape {points.shape}")
    xy = points[..., :2] * stride
    return jnp.concatenate([xy, points[..., 2:]], axis=-1)


def image_to_heatmap(points, stride: float):
    """Inverse of :func:`heatmap_to_image`: ``heatmap = image / stride`` on the (x, y) columns."""
    check_positive(stride, "stride")
    points = check_array(points, "points", min_ndim=1)
    if points.shape[-1] < 2:
        raise ValueError(f"points must have last dimension >= 2 (x, y); got shape {points.shape}")
    xy = points[..., :2] / stride
    return jnp.concatenate([xy, points[..., 2:]], axis=-1)


def pixel_index(points):
    """Integer ``(col, row)`` of the pixel containing each ``(x, y)`` point: ``floor``.

    A point exactly on the boundary ``x = j`` belongs to pixel ``j`` (half-open squares).
    """
    points = check_array(points, "points", min_ndim=1)
    return jnp.floor(points[..., :2]).astype(jnp.int32)


def inside_image(points, height: int, width: int):
    """Boolean ``[...]``: the point lies in ``[0, width) × [0, height)``."""
    x, y = points[..., 0], points[..., 1]
    return (x >= 0) & (x < width) & (y >= 0) & (y < height)
