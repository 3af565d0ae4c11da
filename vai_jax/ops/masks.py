"""Pasting per-box mask predictions back into the image (Mask R-CNN inference).

A mask ``[S, S]`` predicted for box ``[x1, y1, x2, y2]`` covers the box: mask cell ``(p, q)``
covers ``[x1 + q * w / S, x1 + (q + 1) * w / S) x [y1 + p * h / S, ...)`` (the continuous frame
of :mod:`vai_jax.ops.coords`, scaled into the box). Image pixel ``(i, j)`` takes the bilinear
interpolation of the mask at its centre ``(j + 0.5, i + 0.5)`` (edge cells extended to the box
border) when the centre lies inside the box, and 0 outside. Done as two small interpolation
matrices per box (``out = Wy @ mask @ Wx^T``), jit-compatible with static shapes.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from vai_jax._validation import check_array


def _axis_weights(lo, hi, size: int, s: int):
    """``[N, size, s]`` interpolation weights from mask cells to image pixels along one axis."""
    centres = jnp.arange(size, dtype=jnp.float32) + 0.5  # [size]
    ext = jnp.maximum(hi - lo, 1e-6)[:, None]
    u = (centres[None, :] - lo[:, None]) / ext * s - 0.5  # mask-cell coordinate of the centre
    inside = (centres[None, :] >= lo[:, None]) & (centres[None, :] < hi[:, None])
    u = jnp.clip(u, 0.0, s - 1.0)
    i0 = jnp.floor(u)
    f = u - i0
    i0 = i0.astype(jnp.int32)
    i1 = jnp.minimum(i0 + 1, s - 1)
    w = (jax.nn.one_hot(i0, s) * (1 - f)[..., None] + jax.nn.one_hot(i1, s) * f[..., None])
    return w * inside[..., None]


def paste_masks(masks: jax.Array, boxes: jax.Array, image_size: Sequence[int]) -> jax.Array:
    """Paste box-frame masks into full images.

    Args:
      masks: ``[N, S, S]`` (or ``[N, Sh, Sw]``) float mask probabilities in each box's frame.
      boxes: ``[N, 4]`` float xyxy input pixels.
      image_size: ``(H, W)``.

    Returns:
      ``[N, H, W]`` float32 in the range of ``masks``; 0 at pixels whose centre is outside the
      box (threshold at 0.5 for a binary mask).
    """
    masks = check_array(masks, "masks", ndim=3, kind="floating", shape_hint="[N, S, S]")
    boxes = check_array(boxes, "boxes", ndim=2, last_dim=4, kind="floating", shape_hint="[N, 4]")
    if boxes.shape[0] != masks.shape[0]:
        raise ValueError(f"boxes must have shape [N, 4] with N={masks.shape[0]}; got {tuple(boxes.shape)}")
    h, w = (int(s) for s in image_size)
    b = boxes.astype(jnp.float32)
    wy = _axis_weights(b[:, 1], b[:, 3], h, masks.shape[1])  # [N, H, Sh]
    wx = _axis_weights(b[:, 0], b[:, 2], w, masks.shape[2])  # [N, W, Sw]
    return jnp.einsum("nhp,npq,nwq->nhw", wy, masks.astype(jnp.float32), wx)
