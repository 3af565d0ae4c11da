"""2D human / object pose: heads on a backbone's features (regression, heatmaps, integral
soft-argmax, density, part affinity fields; :mod:`heads`), their training targets
(:mod:`targets`) and losses (:mod:`losses`), PAF fields and multi-person grouping (:mod:`paf`),
top-down crops (:mod:`crops`), and metrics (PCK, mean pixel error, COCO OKS AP, σ calibration,
grouping quality; :mod:`metrics`).

Generic keypoint ops (Gaussian heat maps, soft-argmax, peaks) are in
:mod:`vai_jax.ops.keypoints`.
"""
from vai_jax.pose.heads import (DensityHead, HeatmapHead, IntegralHead, PAFHead, PoseNet,
                                RegressionHead)

__all__ = ["DensityHead", "HeatmapHead", "IntegralHead", "PAFHead", "PoseNet", "RegressionHead"]
