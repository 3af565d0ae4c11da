"""Tests for vai_jax.pose.crops: top-down crops of annotated instances."""
import numpy as np
import pytest

from vai_jax.pose.crops import top_down_crops


def _record(boxes, keypoints, crowd=None):
    image = np.zeros((40, 60, 3), np.uint8)
    image[10:20, 20:30] = 200
    rec = {"image": image, "boxes": np.asarray(boxes, np.float32),
           "keypoints": np.asarray(keypoints, np.float32),
           "classes": np.ones(len(boxes), np.int32)}
    if crowd is not None:
        rec["crowd"] = np.asarray(crowd, bool)
    return rec


def test_top_down_crops_centre_the_box_and_map_keypoints():
    # A 10x10 box at (20, 10): box_scale 2 -> a 20x20 crop from (15, 5), resized to 40x40.
    rec = _record([[20, 10, 30, 20]], [[[25.0, 15.0, 2], [21.0, 11.0, 1], [0.0, 0.0, 0]]])
    out = top_down_crops([rec], image_size=40, box_scale=2.0)
    assert out["image"].shape == (1, 40, 40, 3) and out["image"].dtype == np.uint8
    np.testing.assert_allclose(out["keypoints"][0], [[20, 20, 2], [12, 12, 1], [0, 0, 0]],
                               atol=1e-4)
    np.testing.assert_allclose(out["boxes"][0], [10, 10, 30, 30], atol=1e-4)
    np.testing.assert_array_equal(out["weights"], [[1, 1, 0]])
    assert out["image"][0, 20, 20, 0] == 200 and out["image"][0, 2, 2, 0] == 0


def test_top_down_crops_skip_crowd_and_sparse_instances_and_stop_at_limit():
    kp_full = [[25.0, 15.0, 2], [21.0, 11.0, 2], [29.0, 19.0, 2]]
    kp_one = [[25.0, 15.0, 2], [0, 0, 0], [0, 0, 0]]
    recs = [_record([[20, 10, 30, 20]] * 3, [kp_full, kp_one, kp_full], crowd=[True, False, False]),
            _record([[20, 10, 30, 20]] * 2, [kp_full, kp_full])]
    assert len(top_down_crops(recs, image_size=8)["image"]) == 4
    assert len(top_down_crops(recs, image_size=8, min_keypoints=2)["image"]) == 3
    assert len(top_down_crops(recs, image_size=8, min_keypoints=2, limit=2)["image"]) == 2
    with pytest.raises(ValueError, match="no instance"):
        top_down_crops(recs, image_size=8, min_keypoints=4)
