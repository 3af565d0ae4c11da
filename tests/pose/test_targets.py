"""Tests for vai_jax.pose.targets: heatmap and multi-instance (heatmap + PAF) targets."""
import numpy as np

from vai_jax.ops.keypoints import gaussian_heatmaps, heatmap_weights
from vai_jax.pose import targets
from vai_jax.pose.paf import part_affinity_fields


def test_heatmap_targets_are_gaussians_and_weights():
    kp = np.array([[[6.0, 2.0, 2], [30.0, 2.0, 2], [3.0, 3.0, 0]]], np.float32)
    hm, w = targets.heatmap_targets(kp, (4, 5), stride=4, sigma=1.5)
    np.testing.assert_array_equal(np.asarray(hm),
                                  np.asarray(gaussian_heatmaps(kp, (4, 5), sigma=1.5, stride=4)))
    np.testing.assert_array_equal(np.asarray(w), [[1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(np.asarray(w),
                                  np.asarray(heatmap_weights(kp, (4, 5), stride=4)))


def test_multi_instance_targets_draw_visible_keypoints_only():
    skeleton = np.array([[0, 1]], np.int32)
    # Instance 0: both visible; instance 1: keypoint 1 occluded (v = 1), so it draws no
    # Gaussian and no limb; instance 2: padding.
    kp = np.array([[[[2.0, 2.0, 2], [12.0, 6.0, 2]],
                    [[13.0, 2.0, 2], [3.0, 6.0, 1]],
                    [[0.0, 0.0, 0], [0.0, 0.0, 0]]]], np.float32)
    hm, pafs = targets.multi_instance_targets(kp, skeleton, (4, 8), stride=2, sigma=1.0,
                                              paf_sigma=1.0)
    assert hm.shape == (1, 4, 8, 2) and pafs.shape == (1, 4, 8, 1, 2)
    visible = kp.copy()
    visible[0, 1, 1] = 0.0
    want = np.max(np.asarray(gaussian_heatmaps(visible, (4, 8), sigma=1.0, stride=2)), axis=1)
    np.testing.assert_allclose(np.asarray(hm), want, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(hm[0, :, :, 1]),
                               np.asarray(gaussian_heatmaps(kp[:, 0], (4, 8), sigma=1.0,
                                                            stride=2))[0, :, :, 1], rtol=1e-6)
    np.testing.assert_array_equal(
        np.asarray(pafs),
        np.asarray(part_affinity_fields(kp[:, :1], skeleton, (4, 8), stride=2, sigma=1.0)))
