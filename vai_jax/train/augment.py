"""On-device batch preprocessing for image classifiers: normalisation, random flip and crop.

:func:`make_preprocess` returns a ``preprocess_fn(batch, rng, *, train)`` for
:func:`vai_jax.train.step.make_train_step`; ``rng`` is the step's ``fold_in(rng, step)`` key, so
the augmentation is a pure function of the seed and the step (and resumes exactly).
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from vai_jax._validation import check_int

# Per-channel statistics of CIFAR-10's training images (0..255 scale).
CIFAR10_MEAN = (125.3, 123.0, 113.9)
CIFAR10_STD = (63.0, 62.1, 66.7)


def make_preprocess(*, mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD,
                    flip: bool = True, crop_padding: int = 4, dtype=jnp.float32):
    """Build ``preprocess_fn(batch, rng, *, train) -> float [B, H, W, 3]``.

    ``batch["image"]`` is uint8 (or float on the 0..255 scale) ``[B, H, W, 3]``. The output is
    ``(image - mean) / std``; with ``train=True`` each image is also flipped left-right with
    probability 1/2 (``flip``) and randomly translated by up to ``crop_padding`` pixels (zero
    padding of the normalised image, then an ``H x W`` crop — the CIFAR recipe).
    """
    mean_a = jnp.asarray(mean, jnp.float32)
    std_a = jnp.asarray(std, jnp.float32)
    if mean_a.shape != std_a.shape or mean_a.ndim != 1:
        raise ValueError(f"mean and std must be one number per channel each; got {mean!r} and "
                         f"{std!r}")
    if not bool(jnp.all(std_a > 0)):
        raise ValueError(f"std must be > 0 for every channel; got {std!r}")
    crop_padding = check_int(crop_padding, "crop_padding", ge=0)

    def one(image, key):
        flip_key, crop_key = jax.random.split(key)
        if flip:
            image = jnp.where(jax.random.bernoulli(flip_key), image[:, ::-1], image)
        if crop_padding:
            h, w, c = image.shape
            padded = jnp.pad(image, ((crop_padding,) * 2, (crop_padding,) * 2, (0, 0)))
            offset = jax.random.randint(crop_key, (2,), 0, 2 * crop_padding + 1)
            image = jax.lax.dynamic_slice(padded, (offset[0], offset[1], 0), (h, w, c))
        return image

    def preprocess_fn(batch, rng, *, train: bool):
        x = (batch["image"].astype(jnp.float32) - mean_a) / std_a
        if train and (flip or crop_padding):
            x = jax.vmap(one)(x, jax.random.split(rng, x.shape[0]))
        return x.astype(dtype)

    return preprocess_fn
