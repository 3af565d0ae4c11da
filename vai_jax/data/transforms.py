"""Joint NumPy transforms of one record: random flips, affine maps, resizing, crops, colour
jitter and normalisation, with image, boxes, keypoints and masks moving together.

Every geometric transform is one affine matrix applied by :func:`vai_jax.data.affine.apply_affine`
(the coordinate frame and the rules for each record key are documented there). Transforms are
picklable callables ``(record, rng) -> record`` with ``rng`` a ``np.random.Generator`` (what
:func:`vai_jax.data.pipeline.make_loader` passes); they run per record inside grain workers
(NumPy only, no JAX). Sizes are ``(height, width)``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from vai_jax._validation import check_number
from vai_jax.data.affine import (_check_size, apply_affine, crop_resize_matrix, hflip_matrix,
                                 rotation_matrix, scale_matrix, translation_matrix)

Record = dict
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _image_size(record: Mapping[str, Any]) -> tuple[int, int]:
    image = record.get("image")
    if image is None or np.ndim(image) not in (2, 3):
        raise ValueError(f"record['image'] must be [H, W, C]; got {None if image is None else np.shape(image)}")
    return int(np.shape(image)[0]), int(np.shape(image)[1])


def _range(value, name: str, *, centre: float) -> tuple[float, float]:
    """``x`` -> ``(centre - x, centre + x)``; a pair passes through (validated)."""
    if np.ndim(value) == 0:
        lo, hi = centre - float(value), centre + float(value)
    else:
        lo, hi = (float(v) for v in value)
    if not lo <= hi:
        raise ValueError(f"{name} must be a number or a (low, high) pair with low <= high; got {value!r}")
    return lo, hi


def _check_probability(value, name: str) -> None:
    check_number(value, name, ge=0.0, le=1.0)


# ----------------------------------------------------------------------------------------------
# Transforms: picklable callables (record, rng) -> record.


@dataclasses.dataclass(frozen=True)
class Compose:
    """Apply ``transforms`` in order with the same generator."""

    transforms: Sequence[Any]


    def __post_init__(self):
        for i, t in enumerate(self.transforms):
            if not callable(t):
                raise TypeError(f"transforms[{i}] must be callable (record, rng) -> record; got "
                                f"{type(t).__name__}")

    def __call__(self, record, rng: np.random.Generator):
        for t in self.transforms:
            record = t(record, rng)
        return record


@dataclasses.dataclass(frozen=True)
class RandomHorizontalFlip:
    """Mirror left-right with probability ``prob``; keypoint names swap per ``flip_pairs`` or
    ``flip_permutation`` ([K] or per-class [C, K]; see :func:`transform_keypoints`)."""

    prob: float = 0.5
    flip_pairs: Sequence[tuple[int, int]] = ()
    flip_permutation: Any = None


    def __post_init__(self):
        _check_probability(self.prob, "prob")

    def __call__(self, record, rng: np.random.Generator):
        if rng.random() >= self.prob:
            return dict(record)
        h, w = _image_size(record)
        return apply_affine(
            record, hflip_matrix(w), (h, w), flip_pairs=self.flip_pairs, flip_permutation=self.flip_permutation
        )


@dataclasses.dataclass(frozen=True)
class RandomAffine:
    """Random flip, scale, rotation and translation about the image centre, one warp.

    ``A = T(out_centre + t) · R(angle) · S(s) · F · T(-in_centre)`` with ``angle ~ U(rotation)``
    degrees (a number ``r`` means ``(-r, r)``), ``s ~ U(scale)``, ``t = (U(-tx, tx)·Wo,
    U(-ty, ty)·Ho)`` for ``translate = (tx, ty)`` fractions, ``F`` a horizontal mirror with
    probability ``flip_prob`` (keypoint names swap per ``flip_pairs``/``flip_permutation``).
    ``out_size`` (H, W) defaults to the input size.
    """

    rotation: float | tuple[float, float] = 0.0
    scale: tuple[float, float] = (1.0, 1.0)
    translate: tuple[float, float] = (0.0, 0.0)
    flip_prob: float = 0.0
    flip_pairs: Sequence[tuple[int, int]] = ()
    flip_permutation: Any = None
    out_size: tuple[int, int] | None = None
    fill: float = 0
    semantic_fill: int = 0


    def __post_init__(self):
        _range(self.rotation, "rotation", centre=0.0)
        if _range(self.scale, "scale", centre=1.0)[0] <= 0:
            raise ValueError(f"scale must be > 0; got {self.scale!r}")
        if np.shape(self.translate) != (2,) or not all(0 <= float(t) <= 1
                                                       for t in self.translate):
            raise ValueError(f"translate must be a pair (tx, ty) of fractions in [0, 1]; got "
                             f"{self.translate!r}")
        _check_probability(self.flip_prob, "flip_prob")
        if self.out_size is not None:
            _check_size(self.out_size, "out_size")

    def matrix(self, in_size: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int]]:
        """Draw the matrix for an input of ``in_size``; returns ``(A [3, 3], out_size)``."""
        h, w = in_size
        ho, wo = self.out_size if self.out_size is not None else (h, w)
        a_lo, a_hi = _range(self.rotation, "rotation", centre=0.0)
        s_lo, s_hi = _range(self.scale, "scale", centre=1.0)
        if s_lo <= 0:
            raise ValueError(f"scale must be > 0; got {self.scale!r}")
        angle = rng.uniform(a_lo, a_hi)
        s = rng.uniform(s_lo, s_hi)
        tx = rng.uniform(-self.translate[0], self.translate[0]) * wo
        ty = rng.uniform(-self.translate[1], self.translate[1]) * ho
        flip = rng.random() < self.flip_prob
        f = np.diag([-1.0 if flip else 1.0, 1.0, 1.0])
        a = (
            translation_matrix(wo / 2 + tx, ho / 2 + ty)
            @ rotation_matrix(angle)
            @ scale_matrix(s, s)
            @ f
            @ translation_matrix(-w / 2, -h / 2)
        )
        return a, (int(ho), int(wo))

    def __call__(self, record, rng: np.random.Generator):
        a, out_size = self.matrix(_image_size(record), rng)
        return apply_affine(
            record, a, out_size, flip_pairs=self.flip_pairs, flip_permutation=self.flip_permutation,
            fill=self.fill, semantic_fill=self.semantic_fill,
        )


@dataclasses.dataclass(frozen=True)
class Resize:
    """Resize to ``size = (H, W)`` (aspect ratio not kept): ``x -> x · W/w``, ``y -> y · H/h``."""

    size: tuple[int, int]


    def __post_init__(self):
        _check_size(self.size, "size")

    def __call__(self, record, rng: np.random.Generator = None):
        del rng
        h, w = _image_size(record)
        ho, wo = _check_size(self.size, "size")
        return apply_affine(record, scale_matrix(wo / w, ho / h), (ho, wo))


@dataclasses.dataclass(frozen=True)
class ResizeAndPad:
    """Scale by ``min(H/h, W/w)`` (aspect kept), anchored top-left, pad to ``size = (H, W)`` with
    ``fill`` (letterbox; boxes/keypoints only scale, no offset)."""

    size: tuple[int, int]
    fill: float = 0


    def __post_init__(self):
        _check_size(self.size, "size")

    def __call__(self, record, rng: np.random.Generator = None):
        del rng
        h, w = _image_size(record)
        ho, wo = _check_size(self.size, "size")
        s = min(ho / h, wo / w)
        return apply_affine(record, scale_matrix(s, s), (ho, wo), fill=self.fill)


@dataclasses.dataclass(frozen=True)
class CenterCrop:
    """Crop ``size = (H, W)`` at the centre (integer offset ``floor((h - H) / 2)``; pads with
    ``fill`` where the image is smaller)."""

    size: tuple[int, int]
    fill: float = 0


    def __post_init__(self):
        _check_size(self.size, "size")

    def __call__(self, record, rng: np.random.Generator = None):
        del rng
        h, w = _image_size(record)
        ho, wo = _check_size(self.size, "size")
        x0, y0 = (w - wo) // 2, (h - ho) // 2
        return apply_affine(record, translation_matrix(-x0, -y0), (ho, wo), fill=self.fill)


@dataclasses.dataclass(frozen=True)
class RandomCrop:
    """Crop ``size = (H, W)`` at a uniformly drawn integer offset (pads with ``fill`` where the
    image is smaller than the crop)."""

    size: tuple[int, int]
    fill: float = 0


    def __post_init__(self):
        _check_size(self.size, "size")

    def __call__(self, record, rng: np.random.Generator):
        h, w = _image_size(record)
        ho, wo = _check_size(self.size, "size")
        x0 = int(rng.integers(min(0, w - wo), max(0, w - wo) + 1))
        y0 = int(rng.integers(min(0, h - ho), max(0, h - ho) + 1))
        return apply_affine(record, translation_matrix(-x0, -y0), (ho, wo), fill=self.fill)


@dataclasses.dataclass(frozen=True)
class RandomResizedCrop:
    """Inception-style crop: area fraction ``~ U(scale)``, aspect ``w/h`` log-uniform in
    ``ratio`` (10 tries, then the largest centred crop with an in-range aspect), resized to
    ``size = (H, W)``."""

    size: tuple[int, int]
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)


    def __post_init__(self):
        _check_size(self.size, "size")
        lo, hi = _range(self.scale, "scale", centre=0.0)
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"scale must be a pair (low, high) with 0 < low <= high <= 1 (area "
                             f"fractions); got {self.scale!r}")
        lo, hi = _range(self.ratio, "ratio", centre=1.0)
        if not 0 < lo <= hi:
            raise ValueError(f"ratio must be a pair (low, high) with 0 < low <= high; got "
                             f"{self.ratio!r}")

    def crop_box(self, in_size: tuple[int, int], rng: np.random.Generator) -> tuple[float, float, float, float]:
        """Draw ``(x0, y0, crop_w, crop_h)`` in input pixels."""
        h, w = in_size
        area = h * w
        log_r = np.log(self.ratio)
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = np.exp(rng.uniform(*log_r))
            cw, ch = np.sqrt(target * aspect), np.sqrt(target / aspect)
            if 0 < cw <= w and 0 < ch <= h:
                return rng.uniform(0, w - cw), rng.uniform(0, h - ch), cw, ch
        aspect = np.clip(w / h, *self.ratio)
        cw, ch = (w, w / aspect) if w / h <= aspect else (h * aspect, h)
        return (w - cw) / 2, (h - ch) / 2, cw, ch

    def __call__(self, record, rng: np.random.Generator):
        size = _check_size(self.size, "size")
        x0, y0, cw, ch = self.crop_box(_image_size(record), rng)
        return apply_affine(record, crop_resize_matrix(x0, y0, cw, ch, size), size)


@dataclasses.dataclass(frozen=True)
class ColorJitter:
    """Random brightness, contrast and saturation (applied in that order), geometry untouched.

    Factors ``b ~ U(1 ± brightness)``, ``c ~ U(1 ± contrast)``, ``s ~ U(1 ± saturation)``:
    ``img·b``; blend with the mean grey level by ``c``; blend with the per-pixel grey
    (ITU-R 601 luma) by ``s``. Pixel values are clipped to ``[0, 255]``; dtype kept.
    """

    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0


    def __post_init__(self):
        for name in ("brightness", "contrast", "saturation"):
            check_number(getattr(self, name), name, ge=0.0, le=1.0)

    def __call__(self, record, rng: np.random.Generator):
        out = dict(record)
        image = np.asarray(record["image"])
        x = image.astype(np.float32)
        luma = np.array([0.299, 0.587, 0.114], np.float32)
        if self.brightness:
            x = x * rng.uniform(1 - self.brightness, 1 + self.brightness)
        if self.contrast:
            c = rng.uniform(1 - self.contrast, 1 + self.contrast)
            mean = float((np.clip(x, 0, 255) @ luma).mean())
            x = mean + c * (x - mean)
        if self.saturation:
            s = rng.uniform(1 - self.saturation, 1 + self.saturation)
            grey = (np.clip(x, 0, 255) @ luma)[..., None]
            x = grey + s * (x - grey)
        x = np.clip(x, 0, 255)
        out["image"] = np.rint(x).astype(image.dtype) if np.issubdtype(image.dtype, np.integer) else x.astype(image.dtype)
        return out


@dataclasses.dataclass(frozen=True)
class Normalize:
    """Standardise: ``image float32 = (image / 255 - mean) / std`` per channel (``mean``/``std``
    in ``[0, 1]`` units, ImageNet's by default)."""

    mean: Sequence[float] = IMAGENET_MEAN
    std: Sequence[float] = IMAGENET_STD


    def __post_init__(self):
        if np.shape(self.mean) != np.shape(self.std) or np.ndim(self.std) != 1:
            raise ValueError(f"mean and std must be sequences of one number per channel; got "
                             f"{self.mean!r} and {self.std!r}")
        if np.any(~(np.asarray(self.std, np.float64) > 0)):
            raise ValueError(f"std must be > 0; got {self.std!r}")

    def __call__(self, record, rng: np.random.Generator = None):
        del rng
        std = np.asarray(self.std, np.float32)
        if np.any(std <= 0):
            raise ValueError(f"std must be > 0; got {self.std!r}")
        out = dict(record)
        out["image"] = ((np.asarray(record["image"], np.float32) / 255.0 - np.asarray(self.mean, np.float32)) / std).astype(np.float32)
        return out
