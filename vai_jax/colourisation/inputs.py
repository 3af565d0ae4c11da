"""Colourisation inputs and targets: an RGB image split into its CIE lightness and chrominance.

The network sees only the lightness ``L`` (the grey image) and predicts the chrominance ``ab``;
``join_lab`` puts a predicted ``ab`` back with the true ``L`` into a displayable RGB image.
"""
from __future__ import annotations

import jax.numpy as jnp

from vai_jax._validation import check_array
from vai_jax.ops.color import lab_to_rgb, rgb_to_lab


def split_lab(image):
    """``(L [..., 1], ab [..., 2])`` float32 of an RGB image.

    Args:
      image: ``[..., 3]`` uint8 in ``[0, 255]`` or floating sRGB in ``[0, 1]``.
    """
    image = check_array(image, "image", kind="numeric", last_dim=3, shape_hint="[..., 3]")
    rgb = jnp.asarray(image, jnp.float32)
    if not jnp.issubdtype(image.dtype, jnp.floating):
        rgb = rgb / 255.0
    lab = rgb_to_lab(rgb)
    return lab[..., :1], lab[..., 1:]


def join_lab(luminance, ab):
    """sRGB ``[..., 3]`` in ``[0, 1]`` (clipped) of ``L [..., 1]`` and ``ab [..., 2]``."""
    luminance = check_array(luminance, "luminance", min_ndim=1, last_dim=1, kind="numeric",
                            shape_hint="[..., 1]")
    ab = check_array(ab, "ab", min_ndim=1, last_dim=2, kind="numeric", shape_hint="[..., 2]")
    if tuple(luminance.shape[:-1]) != tuple(ab.shape[:-1]):
        raise ValueError(f"luminance [..., 1] and ab [..., 2] must share the leading shape; got "
                         f"{tuple(luminance.shape)} and {tuple(ab.shape)}")
    lab = jnp.concatenate([jnp.asarray(luminance, jnp.float32), jnp.asarray(ab, jnp.float32)], -1)
    return jnp.clip(lab_to_rgb(lab), 0.0, 1.0)


def grey_input(batch, rng, *, train: bool):
    """The train-step preprocessing: ``batch["image"]``'s lightness scaled to ``[-1, 1]``
    (``L / 50 − 1``), float32 ``[B, H, W, 1]``. No augmentation (the loss reads its targets
    from the same unmodified ``batch["image"]``)."""
    del rng, train
    return split_lab(batch["image"])[0] / 50.0 - 1.0
