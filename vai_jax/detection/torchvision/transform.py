"""torchvision's ``GeneralizedRCNNTransform`` at inference with static shapes: normalise with the
ImageNet mean and std, resize so that the short side is ``min_size`` and the long side at most
``max_size`` (PyTorch's bilinear ``interpolate``, ``recompute_scale_factor=True``), pad with
zeros (after normalisation) to a multiple of 32; and the maps from the resized frame back to the
input image (:func:`resize_boxes`, :func:`resize_keypoints`)."""
from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from vai_jax.ops._ieee import div_rn
from vai_jax.ops.interpolate import interpolate

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resized_size(height: int, width: int, min_size: int, max_size: int) -> tuple[int, int]:
    """The size torchvision resizes an ``(height, width)`` image to: the scale factor
    ``min(min_size / short side, max_size / long side)`` in Python floats, then
    ``floor(side * factor)`` per side (``interpolate`` with ``recompute_scale_factor=True``)."""
    factor = min(min_size / min(height, width), max_size / max(height, width))
    return math.floor(float(height) * factor), math.floor(float(width) * factor)


def padded_size(height: int, width: int, size_divisible: int = 32) -> tuple[int, int]:
    """``batch_images``: each side rounded up to a multiple of ``size_divisible``."""
    d = float(size_divisible)
    return int(math.ceil(height / d) * d), int(math.ceil(width / d) * d)


def transform_images(images: jax.Array, *, min_size: int, max_size: int,
                     mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                     size_divisible: int = 32) -> tuple[jax.Array, tuple[int, int]]:
    """``images [B, H, W, 3]`` float in [0, 1] -> ``(batch [B, H_p, W_p, 3], (H_r, W_r))``:
    normalised, resized to ``(H_r, W_r)`` = :func:`resized_size`, zero-padded at the bottom and
    right to ``(H_p, W_p)`` = :func:`padded_size` (torchvision's ``transform`` output
    ``image_list.tensors`` in NHWC, and its ``image_sizes``)."""
    h, w = images.shape[1:3]
    mean = jnp.asarray(mean, images.dtype)
    std = jnp.asarray(std, images.dtype)
    x = div_rn(images - mean, std)  # correctly rounded, as PyTorch's division
    rh, rw = resized_size(h, w, min_size, max_size)
    x = interpolate(x, (rh, rw), mode="bilinear")
    ph, pw = padded_size(rh, rw, size_divisible)
    x = jnp.pad(x, ((0, 0), (0, ph - rh), (0, pw - rw), (0, 0)))
    return x, (rh, rw)


def _ratios(original: Sequence[int], new: Sequence[int]):
    # float32 division of the sizes, as torchvision's ``torch.tensor(s) / torch.tensor(s_orig)``
    return [np.float32(n) / np.float32(o) for n, o in zip(new, original)]


def resize_boxes(boxes: jax.Array, original: Sequence[int], new: Sequence[int]) -> jax.Array:
    """xyxy ``boxes [..., 4]`` from an ``original (H, W)`` frame to ``new (H', W')``
    (torchvision's ``resize_boxes``: coordinates times the float32 size ratios)."""
    rh, rw = _ratios(original, new)
    return boxes * jnp.asarray([rw, rh, rw, rh], boxes.dtype)


def resize_keypoints(keypoints: jax.Array, original: Sequence[int],
                     new: Sequence[int]) -> jax.Array:
    """``keypoints [..., K, 3]`` (x, y, ·) from ``original (H, W)`` to ``new (H', W')``
    (torchvision's ``resize_keypoints``; the third column is kept)."""
    rh, rw = _ratios(original, new)
    return keypoints * jnp.asarray([rw, rh, 1.0], keypoints.dtype)
