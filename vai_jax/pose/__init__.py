"""2D human / object pose: heads (regression, heat maps with arg-max and sub-pixel decoding,
integral soft-argmax, density, part affinity fields), their losses, PAF targets and multi-person
grouping (:mod:`paf`), and metrics (PCK, mean pixel error, COCO OKS AP).

Generic keypoint ops (Gaussian heat maps, soft-argmax, peaks) are in
:mod:`vai_jax.ops.keypoints`.
"""
from vai_jax.pose.heads import (DensityHead, HeatmapHead, IntegralHead, PAFHead, PoseNet,
                                RegressionHead)

__all__ = ["DensityHead", "HeatmapHead", "IntegralHead", "PAFHead", "PoseNet", "RegressionHead"]
