"""Training targets built from ground-truth keypoints, on the heads' heatmap grid.

Keypoints are ``[..., K, 3]`` ``[x, y, v]`` in image pixels (COCO visibility ``v``: 0
unlabelled, 1 labelled but occluded, 2 visible). A heatmap grid of stride ``stride`` covers the
image ``[0, W·stride) × [0, H·stride)`` (:mod:`vai_jax.ops.coords`). Pure ``jnp``; shapes are
static, so the functions run inside ``jit`` (e.g. in a train-step loss).
"""
from __future__ import annotations

import jax.numpy as jnp

from vai_jax._validation import check_array
from vai_jax.ops.keypoints import gaussian_heatmaps, heatmap_weights
from vai_jax.pose.paf import part_affinity_fields


def heatmap_targets(keypoints, shape, *, stride, sigma):
    """Single-instance Gaussian heatmaps and their per-keypoint weights.

    Args:
      keypoints: ``[B, K, 3]`` image pixels.
      shape: heatmap ``(H, W)``.
      stride: image pixels per heatmap cell (> 0).
      sigma: Gaussian standard deviation in heatmap cells (> 0).

    Returns:
      ``(heatmaps float32 [B, H, W, K], weights float32 [B, K])``:
      :func:`vai_jax.ops.gaussian_heatmaps` and :func:`vai_jax.ops.heatmap_weights` (0 for a
      keypoint that is unlabelled or outside the map).
    """
    heatmaps = gaussian_heatmaps(keypoints, shape, sigma=sigma, stride=stride)
    return heatmaps, heatmap_weights(keypoints, shape, stride=stride)


def multi_instance_targets(keypoints, skeleton, shape, *, stride, sigma, paf_sigma):
    """Targets of a multi-instance heatmap + PAF head (Cao et al. 2017) from the *visible*
    keypoints (``v == 2``) of every instance: occluded and unlabelled keypoints draw nothing.

    Args:
      keypoints: ``[B, M, K, 3]`` image pixels for ``M`` (padded) instances; padding has
        ``v = 0``.
      skeleton: integer ``[L, 2]`` keypoint index pairs (static NumPy).
      shape: heatmap ``(H, W)``.
      stride: image pixels per heatmap cell (> 0).
      sigma: keypoint Gaussian standard deviation in heatmap cells (> 0).
      paf_sigma: limb half-width in heatmap cells (> 0).

    Returns:
      ``(heatmaps float32 [B, H, W, K], pafs float32 [B, H, W, L, 2])``: per keypoint the
      maximum over instances of their Gaussians, and
      :func:`vai_jax.pose.paf.part_affinity_fields`.
    """
    kp = check_array(keypoints, "keypoints", ndim=4, last_dim=3, kind="numeric",
                     shape_hint="[B, M, K, 3]")
    kp = jnp.concatenate([kp[..., :2], jnp.where(kp[..., 2:] >= 2, 2.0, 0.0)], -1)
    heatmaps = jnp.max(gaussian_heatmaps(kp, shape, sigma=sigma, stride=stride), axis=1)
    pafs = part_affinity_fields(kp, skeleton, shape, stride=stride, sigma=paf_sigma)
    return heatmaps, pafs


__all__ = ["heatmap_targets", "multi_instance_targets"]
