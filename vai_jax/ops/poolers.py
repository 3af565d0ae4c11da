"""Feature-pyramid RoI pooling: the FPN level of each box (Lin et al. 2017) and RoIAlign over a
pyramid (torchvision's ``MultiScaleRoIAlign`` / ``LevelMapper``)."""
from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp

from vai_jax._validation import check_array, check_int, check_number
from vai_jax.ops._roi_common import _check_roi_inputs, _output_size
from vai_jax.ops.roi_align import _check_sampling, _roi_align_impl


def fpn_levels(
    boxes: jax.Array,
    *,
    min_level: int,
    max_level: int,
    canonical_scale: float = 224.0,
    canonical_level: int = 4,
    eps: float = 1e-6,
) -> jax.Array:
    """FPN level of each box (Lin et al., 2017, eq. 1), torchvision's ``LevelMapper``.

    ``floor(canonical_level + log2(sqrt(area) / canonical_scale) + eps)`` clamped to
    ``[min_level, max_level]``, returned relative to ``min_level``.

    Args:
      boxes: ``[K, 4]`` xyxy input pixels. min_level, max_level: e.g. 2 and 5 for P2-P5.

    Returns:
      ``[K]`` int32 in ``[0, max_level - min_level]``.
    """
    boxes = check_array(boxes, "boxes", ndim=2, last_dim=4, kind="floating", shape_hint="[K, 4]")
    min_level = check_int(min_level, "min_level", ge=0)
    max_level = check_int(max_level, "max_level", ge=min_level)
    check_number(canonical_scale, "canonical_scale", gt=0.0)
    check_int(canonical_level, "canonical_level", ge=0)
    check_number(eps, "eps", ge=0.0)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    s = jnp.sqrt(area)
    lvl = jnp.floor(canonical_level + jnp.log2(s / canonical_scale) + eps)
    lvl = jnp.clip(lvl, min_level, max_level)
    return (lvl - min_level).astype(jnp.int32)


def multilevel_roi_align(
    features: Sequence[jax.Array],
    boxes: jax.Array,
    box_indices: jax.Array,
    output_size,
    *,
    spatial_scales: Sequence[float],
    sampling_ratio: int = -1,
    aligned: bool = True,
    max_sampling: int | None = None,
    canonical_scale: float = 224.0,
    canonical_level: int = 4,
    eps: float = 1e-6,
) -> jax.Array:
    """RoIAlign on an FPN pyramid, each box on its :func:`fpn_levels` level
    (torchvision ``MultiScaleRoIAlign``, which uses ``aligned=False``).

    Args:
      features: ``L`` maps ``[B, H_l, W_l, C]``, finest first.
      boxes: ``[K, 4]`` xyxy input pixels. box_indices: ``[K]`` image indices.
      output_size: ``oh`` or ``(oh, ow)``.
      spatial_scales: per level, powers of two (e.g. ``(1/4, 1/8, 1/16, 1/32)``); the level
        range is ``-log2(scale)``.
      sampling_ratio, aligned, max_sampling: as :func:`roi_align`.
      canonical_scale, canonical_level, eps: the level mapping's constants.

    Returns:
      ``[K, oh, ow, C]``. With static shapes every level is evaluated for all boxes with the
      interpolation matrices of boxes from other levels zeroed; the cost is that of
      :func:`roi_align` summed over levels (about 4/3 of the finest level).
    """
    if len(features) == 0 or len(features) != len(spatial_scales):
        raise ValueError(
            f"features and spatial_scales must be non-empty with one entry per level; "
            f"got {len(features)} and {len(spatial_scales)}"
        )
    levels_f = [-math.log2(float(s)) for s in spatial_scales]
    for s, lf in zip(spatial_scales, levels_f):
        if abs(lf - round(lf)) > 1e-6:
            raise ValueError(f"spatial_scales must be powers of two; got {s!r}")
    k_min, k_max = int(round(levels_f[0])), int(round(levels_f[-1]))
    if k_max - k_min + 1 != len(features):
        raise ValueError(f"spatial_scales must be consecutive powers of two; got {tuple(spatial_scales)}")
    oh, ow = _output_size(output_size)
    sampling_ratio, max_sampling = _check_sampling(sampling_ratio, max_sampling)
    feats = []
    for i, f in enumerate(features):
        f, boxes, box_indices = _check_roi_inputs(f, boxes, box_indices)
        if f.shape[0] != features[0].shape[0] or f.shape[3] != features[0].shape[3]:
            raise ValueError(
                f"features[{i}] must share B and C with features[0] {tuple(features[0].shape)}; "
                f"got {tuple(f.shape)}"
            )
        feats.append(f)
    with jax.named_scope("multilevel_roi_align"):
        boxes = boxes.astype(feats[0].dtype)
        lvl = fpn_levels(
            boxes,
            min_level=k_min,
            max_level=k_max,
            canonical_scale=canonical_scale,
            canonical_level=canonical_level,
            eps=eps,
        )
        out = None
        for i, (f, s) in enumerate(zip(feats, spatial_scales)):
            o = _roi_align_impl(
                f, boxes, box_indices, oh, ow, s, sampling_ratio, aligned, max_sampling,
                keep=lvl == i,
            )
            out = o if out is None else out + o
        return out
