"""Annotations cheaper than full masks, simulated from full ones (host-side NumPy): image-level
labels (which classes are present), point labels (one clicked pixel per object instance plus
background points, as in Bearman et al. 2016, "What's the point: semantic segmentation with
point supervision") and a class-agnostic objectness prior map.

Conventions are those of :mod:`vai_jax.segmentation.losses`: ``semantic [H, W]`` holds class
ids in ``[0, K)`` with 0 the background, or ``ignore_label``; a point-label map is
``ignore_label`` everywhere except at the annotated pixels. The losses that train from these
are :func:`~vai_jax.segmentation.losses.image_level_loss`,
:func:`~vai_jax.segmentation.losses.point_loss` and
:func:`~vai_jax.segmentation.losses.objectness_loss`.
"""
from __future__ import annotations

import math

import numpy as np

from vai_jax._validation import check_array, check_positive
from vai_jax.segmentation.losses import IGNORE_LABEL, check_segmentation_labels


def image_labels(semantic, num_classes: int, *, ignore_label: int | None = IGNORE_LABEL):
    """Which classes appear in each mask: bool ``[..., K]`` from int ``semantic [..., H, W]``
    (the ignore label is not a class).

    Raises:
      ValueError: rank below 2, labels outside ``[0, K)`` other than ``ignore_label``.
    """
    semantic = np.asarray(check_array(semantic, "semantic", min_ndim=2, kind="integer",
                                      shape_hint="[..., H, W]"))
    k = _check_classes(num_classes)
    check_segmentation_labels(semantic, k, ignore_label=ignore_label, name="semantic")
    flat = semantic.reshape(*semantic.shape[:-2], -1)
    return np.stack([(flat == c).any(-1) for c in range(k)], axis=-1)


def _check_classes(num_classes):
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2 (background + objects); got "
                         f"{num_classes!r}")
    return int(num_classes)


def simulate_points(semantic, masks, valid, *, seed: int, index: int = 0,
                    background_points: int = 1, ignore_label: int = IGNORE_LABEL):
    """Point annotation of one image: one pixel drawn uniformly from each object instance's
    visible mask, labelled with the class the semantic mask gives it there, and
    ``background_points`` pixels drawn uniformly (without replacement) from the background
    (label 0). Deterministic: the draws come from ``np.random.default_rng([seed, index])``, so
    an image's points depend on its index and the seed only, not on batching or order.

    Args:
      semantic: int ``[H, W]``: 0 background, ``c >= 1`` objects, or ``ignore_label``.
      masks: bool ``[M, H, W]`` visible instance masks (as the shapes ``"detection"`` records:
        the semantic label is constant over each instance's visible mask).
      valid: bool ``[M]``: which instances are real (padding slots are skipped).
      seed, index: the random stream. background_points: ``>= 0`` (fewer when the background is
        smaller). ignore_label: the value of unannotated pixels.

    Returns:
      int32 ``[H, W]``: ``ignore_label`` except at the points. Instances whose visible mask is
      empty, or lies on ignored pixels only, get no point; two instances never share a pixel
      (visible masks are disjoint).

    Raises:
      ValueError: wrong ranks or mismatched shapes (naming the argument), negative
      ``background_points``.
    """
    semantic = np.asarray(check_array(semantic, "semantic", ndim=2, kind="integer",
                                      shape_hint="[H, W]"))
    masks = np.asarray(check_array(masks, "masks", ndim=3, kind="bool", shape_hint="[M, H, W]"))
    valid = np.asarray(check_array(valid, "valid", ndim=1, kind="bool", shape_hint="[M]"))
    if masks.shape[1:] != semantic.shape:
        raise ValueError(f"masks must be [M, H, W] with (H, W) = semantic's {semantic.shape}; "
                         f"got {masks.shape}")
    if valid.shape[0] != masks.shape[0]:
        raise ValueError(f"valid must have shape ({masks.shape[0]},) (one flag per mask); got "
                         f"{valid.shape}")
    if isinstance(background_points, bool) or not isinstance(background_points,
                                                             (int, np.integer)) \
            or background_points < 0:
        raise ValueError(f"background_points must be an int >= 0; got {background_points!r}")
    rng = np.random.default_rng([int(seed), int(index)])
    out = np.full(semantic.shape, ignore_label, np.int32)
    annotatable = semantic != ignore_label
    for m in np.flatnonzero(valid):
        where = np.flatnonzero(masks[m] & annotatable)
        if where.size:
            p = where[rng.integers(where.size)]
            out.flat[p] = semantic.flat[p]
    background = np.flatnonzero(semantic == 0)
    n = min(int(background_points), background.size)
    if n:
        picks = background[rng.choice(background.size, size=n, replace=False)]
        out.flat[picks] = 0
    return out


def gaussian_blur(x, sigma: float):
    """Separable Gaussian blur of ``x [..., H, W]`` over the last two axes (float64 taps
    ``exp(−d² / 2σ²)`` for ``|d| <= ceil(3σ)``, normalised to sum 1; the image is extended
    by repeating its edge pixels). float32."""
    x = np.asarray(check_array(x, "x", min_ndim=2, kind="numeric", shape_hint="[..., H, W]"),
                   np.float64)
    check_positive(sigma, "sigma")
    r = int(math.ceil(3.0 * float(sigma)))
    taps = np.exp(-0.5 * (np.arange(-r, r + 1) / float(sigma)) ** 2)
    taps /= taps.sum()
    for axis in (-2, -1):
        n = x.shape[axis]
        idx = np.clip(np.arange(n)[:, None] + np.arange(-r, r + 1)[None, :], 0, n - 1)
        x = np.moveaxis(np.moveaxis(x, axis, -1)[..., idx] @ taps, -1, axis)
    return x.astype(np.float32)


def objectness_prior(semantic, sigma: float, *, floor: float = 0.0,
                     ignore_label: int | None = IGNORE_LABEL):
    """A simulated class-agnostic objectness map: the object mask (``semantic >= 1``, ignored
    pixels counted as background) blurred by a Gaussian of ``sigma`` pixels
    (:func:`gaussian_blur`), mapped to ``[floor, 1 − floor]``. It knows roughly where objects
    are, but not their class, and not their boundary to better than ``~sigma`` pixels (the
    stand-in for the objectness measure of Alexe et al. that Bearman et al. use).

    Args:
      semantic: int ``[..., H, W]``. sigma: > 0 pixels. floor: in ``[0, 0.5)``.

    Returns:
      float32 ``[..., H, W]`` probabilities.
    """
    semantic = np.asarray(check_array(semantic, "semantic", min_ndim=2, kind="integer",
                                      shape_hint="[..., H, W]"))
    if not 0.0 <= float(floor) < 0.5:
        raise ValueError(f"floor must lie in [0, 0.5); got {floor}")
    obj = semantic >= 1
    if ignore_label is not None:
        obj &= semantic != ignore_label
    p = gaussian_blur(obj.astype(np.float32), sigma)
    return (floor + (1.0 - 2.0 * floor) * np.clip(p, 0.0, 1.0)).astype(np.float32)
