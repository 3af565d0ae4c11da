"""Spatial pyramid pooling and the PyTorch-convention pooling it is built from.

* :func:`adaptive_pool_2d` — PyTorch's ``AdaptiveMax/AvgPool2d``: output bin ``i`` of ``n`` over an
  axis of length ``L`` covers input rows ``[floor(i·L/n), ceil((i+1)·L/n))``. Bins overlap when
  ``n`` does not divide ``L`` and are never empty, so any ``L >= 1`` works for any ``n``.
* :func:`spatial_pyramid_pool` — He et al. (2014): adaptive max pooling to ``n × n`` bins for each
  pyramid level ``n``, flattened and concatenated: a fixed-length vector for any input size.
* :func:`max_pool_2d` — max pooling with PyTorch's symmetric padding and ``ceil_mode`` (Caffe's
  rounding, used by GoogLeNet and SqueezeNet).
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp
from jax import lax

from vai_jax._validation import check_array, check_int


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else tuple(int(u) for u in v)


def adaptive_bin_edges(length: int, bins: int) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` of the ``bins`` adaptive-pooling bins over an axis of ``length``:
    ``start = floor(i·length/bins)``, ``end = ceil((i+1)·length/bins)`` (PyTorch's rule)."""
    if length < 1 or bins < 1:
        raise ValueError(f"length and bins must be >= 1; got length={length}, bins={bins}")
    return [((i * length) // bins, -((-(i + 1) * length) // bins)) for i in range(bins)]


def adaptive_pool_2d(x, output_size, *, reduce: str = "max"):
    """Adaptive max or average pooling of NHWC ``x`` to a fixed ``output_size`` grid.

    Args:
      x: ``[..., H, W, C]`` floating array.
      output_size: int or ``(out_h, out_w)``.
      reduce: ``"max"`` or ``"avg"``.

    Returns:
      ``[..., out_h, out_w, C]``, same dtype; bin edges follow :func:`adaptive_bin_edges`.
    """
    x = check_array(x, "x", min_ndim=3, kind="floating", shape_hint="[..., H, W, C]")
    if reduce not in ("max", "avg"):
        raise ValueError(f"reduce must be 'max' or 'avg'; got {reduce!r}")
    oh, ow = _pair(output_size)
    h, w = x.shape[-3], x.shape[-2]
    fn = jnp.max if reduce == "max" else jnp.mean
    rows = [fn(x[..., a:b, :, :], axis=-3) for a, b in adaptive_bin_edges(h, oh)]  # [..., W, C]
    cols = []
    for r in rows:
        cols.append(jnp.stack([fn(r[..., a:b, :], axis=-2) for a, b in adaptive_bin_edges(w, ow)],
                              axis=-2))
    return jnp.stack(cols, axis=-3)


def spatial_pyramid_pool(x, levels: Sequence[int] = (1, 2, 4), *, reduce: str = "max"):
    """Spatial pyramid pooling (He et al., 2014) of NHWC ``x`` to a fixed-length vector.

    Args:
      x: ``[B, H, W, C]`` floating array, any ``H, W >= 1``.
      levels: bins per side of each pyramid level, e.g. ``(1, 2, 4)``.
      reduce: ``"max"`` (the paper) or ``"avg"``.

    Returns:
      ``[B, C · Σ n²]``: for each level in order, the ``[B, n, n, C]`` adaptive pool flattened in
      row-major (row, column, channel) order, concatenated.
    """
    x = check_array(x, "x", ndim=4, kind="floating", shape_hint="[B, H, W, C]")
    if not levels or any(int(n) < 1 for n in levels):
        raise ValueError(f"levels must be a non-empty sequence of ints >= 1; got {levels!r}")
    parts = [adaptive_pool_2d(x, int(n), reduce=reduce).reshape(x.shape[0], -1) for n in levels]
    return jnp.concatenate(parts, axis=-1)


class SpatialPyramidPooling(nn.Module):
    """Module form of :func:`spatial_pyramid_pool`: ``[B, H, W, C] → [B, C · Σ n²]``."""

    levels: Sequence[int] = (1, 2, 4)
    reduce: str = "max"

    @nn.compact
    def __call__(self, x, *, train: bool):
        del train
        return spatial_pyramid_pool(x, self.levels, reduce=self.reduce)


def pool_output_size(length: int, window: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """Output length of PyTorch's ``MaxPool`` along one axis: ``⌊(L + 2p − k) / s⌋ + 1`` or, with
    ``ceil_mode``, ``⌈(L + 2p − k) / s⌉ + 1`` minus one if the last window would start in the right
    padding (in ceil mode a window may overhang an input smaller than it, as in PyTorch)."""
    span = length + 2 * padding - window
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and out > 1 and (out - 1) * stride >= length + padding:
        out -= 1
    if out < 1:
        raise ValueError(f"pooling window {window} does not fit the input of length {length} "
                         f"(padding {padding}, ceil_mode={ceil_mode})")
    return out


def max_pool_2d(x, window, strides, *, padding=0, ceil_mode: bool = False):
    """PyTorch's ``MaxPool2d`` on NHWC ``x``: symmetric ``padding`` (with -inf), optional
    ``ceil_mode``. ``[..., H, W, C] → [..., H', W', C]`` with ``H'`` from :func:`pool_output_size`."""
    x = check_array(x, "x", min_ndim=3, kind="floating", shape_hint="[..., H, W, C]")
    kh, kw = (check_int(k, "window", ge=1) for k in _pair(window))
    sh, sw = (check_int(v, "strides", ge=1) for v in _pair(strides))
    ph, pw = (check_int(v, "padding", ge=0) for v in _pair(padding))
    pads = []
    for axis, k, s, p in ((-3, kh, sh, ph), (-2, kw, sw, pw)):
        length = x.shape[axis]
        out = pool_output_size(length, k, s, p, ceil_mode)
        right = (out - 1) * s + k - length - p
        if right < 0:  # floor mode drops trailing rows no window reaches
            x = lax.slice_in_dim(x, 0, length + right, axis=x.ndim + axis)
            right = 0
        pads.append((p, right))
    return nn.max_pool(x, (kh, kw), strides=(sh, sw), padding=pads)
