"""Affine maps of a record: image, boxes, keypoints and masks stay consistent under one matrix,
against per-pixel float64 loops and intensity centroids."""

import numpy as np
import pytest

from tests.data.affine_references import bilinear_reference, nearest_reference, record, FLIP_PAIRS
from vai_jax.data.affine import (apply_affine, hflip_matrix, rotation_matrix, scale_matrix, transform_keypoints,
                                 translation_matrix, warp_image, warp_masks)


def test_warp_image_matches_loop_reference():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(7, 9, 3), dtype=np.uint8)
    m = translation_matrix(1.3, -0.7) @ rotation_matrix(23.0, (4.5, 3.5)) @ scale_matrix(1.4, 0.8)
    out = warp_image(image.astype(np.float32), m, (8, 10), fill=17.0)
    ref = bilinear_reference(image, m, (8, 10), 17.0)
    np.testing.assert_allclose(out, ref, atol=1e-3)
    out_u8 = warp_image(image, m, (8, 10), fill=17)
    assert out_u8.dtype == np.uint8
    np.testing.assert_array_equal(out_u8, np.clip(np.rint(ref), 0, 255).astype(np.uint8))


@pytest.mark.parametrize("name", ["scale+shift", "flip+shrink", "integer shift"])
def test_axis_aligned_fast_path_matches_loop_reference(name):
    """Axis-aligned maps take a separable path; it must agree with the generic 2-D definition."""
    m = {
        "scale+shift": translation_matrix(0.3, -1.2) @ scale_matrix(1.7, 0.6),
        "flip+shrink": hflip_matrix(6.0) @ scale_matrix(0.55, 0.8),
        "integer shift": translation_matrix(-2.0, 3.0),
    }[name]
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, size=(7, 9, 3), dtype=np.uint8)
    ref = bilinear_reference(image, m, (8, 10), 5.0)
    np.testing.assert_allclose(warp_image(image.astype(np.float32), m, (8, 10), fill=5.0), ref, atol=1e-3)
    got = warp_image(image, m, (8, 10), fill=5).astype(int)
    assert np.abs(got - np.rint(ref)).max() <= (0 if name == "integer shift" else 1)
    masks = rng.random((2, 7, 9)) > 0.5
    np.testing.assert_array_equal(warp_masks(masks, m, (8, 10)), nearest_reference(masks, m, (8, 10)))


def test_warp_masks_matches_loop_reference():
    rng = np.random.default_rng(1)
    masks = rng.random((2, 6, 8)) > 0.5
    m = rotation_matrix(-31.0, (4.0, 3.0)) @ scale_matrix(1.3, 1.1)
    np.testing.assert_array_equal(warp_masks(masks, m, (7, 9)), nearest_reference(masks, m, (7, 9)))


def test_identity_and_integer_translation_are_exact():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, size=(6, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(warp_image(image, np.eye(3), (6, 7)), image)
    out = warp_image(image, translation_matrix(-2, -1), (4, 3))  # a crop at x0=2, y0=1
    np.testing.assert_array_equal(out, image[1:5, 2:5])


def test_keypoints_swap_only_when_mirrored():
    kp = np.array([[[1.5, 1.5, 2], [3.5, 1.5, 2]]], np.float32)
    rot = transform_keypoints(kp, rotation_matrix(180, (5, 5)), (10, 10), flip_pairs=FLIP_PAIRS)
    np.testing.assert_allclose(rot[0, 0, :2], [8.5, 8.5], atol=1e-5)  # det > 0: no swap
    mir = transform_keypoints(kp, hflip_matrix(10), (10, 10), flip_pairs=FLIP_PAIRS)
    np.testing.assert_allclose(mir[0, 0, :2], [6.5, 1.5], atol=1e-5)  # was keypoint 1 at x=3.5


def test_axis_aligned_boxes_follow_corners_and_enclose_mask_centres():
    rec = record(np.random.default_rng(5))
    m = translation_matrix(2.0, -1.0) @ scale_matrix(1.5, 0.75)
    out = apply_affine(rec, m, (20, 30))
    b = rec["boxes"]
    ref = np.stack([b[:, 0] * 1.5 + 2, b[:, 1] * 0.75 - 1, b[:, 2] * 1.5 + 2, b[:, 3] * 0.75 - 1], -1)
    ref[:, [0, 2]] = ref[:, [0, 2]].clip(0, 30)
    ref[:, [1, 3]] = ref[:, [1, 3]].clip(0, 20)
    np.testing.assert_allclose(out["boxes"], ref, atol=1e-5)
    for o in range(2):
        ii, jj = np.nonzero(out["masks"][o])
        x1, y1, x2, y2 = out["boxes"][o]
        assert np.all((jj + 0.5 >= x1) & (jj + 0.5 <= x2) & (ii + 0.5 >= y1) & (ii + 0.5 <= y2))


def test_objects_leaving_the_frame_are_invalid_and_keypoints_invisible():
    rec = record(np.random.default_rng(6))
    # Shift left by 12 px: object 0 (x in ~[3, 11]) leaves, object 1 (x in ~[13, 19]) stays.
    out = apply_affine(rec, translation_matrix(-12, 0), (20, 24))
    np.testing.assert_array_equal(out["valid"], [False, True])
    np.testing.assert_array_equal(out["boxes"][0], 0)
    assert np.all(out["keypoints"][0] == 0)  # absent: v = 0 and x = y = 0
    np.testing.assert_array_equal(out["keypoints"][1, :, 2], rec["keypoints"][1, :, 2])
    assert not out["masks"][0].any()
    # An object that was already invalid stays invalid.
    rec2 = dict(rec, valid=np.array([True, False]))
    np.testing.assert_array_equal(apply_affine(rec2, np.eye(3), (20, 24))["valid"], [True, False])


def test_semantic_map_moves_with_masks_and_unknown_maps_are_refused():
    rec = record(np.random.default_rng(13))
    rec["semantic"] = (rec["masks"][0] * 1 + rec["masks"][1] * 2).astype(np.int32)
    rec["num_objects"] = np.int32(2)
    m = rotation_matrix(30, (12, 10)) @ scale_matrix(1.2, 1.2, (12, 10))
    out = apply_affine(rec, m, (20, 24))
    np.testing.assert_array_equal(out["semantic"], out["masks"][0] * 1 + out["masks"][1] * 2)
    gone = apply_affine(rec, translation_matrix(-12, 0), (20, 24))
    assert gone["num_objects"] == 1
    filled = apply_affine(rec, translation_matrix(30, 0), (20, 24), semantic_fill=255)
    assert np.all(filled["semantic"] == 255)
    with pytest.raises(ValueError, match="heatmap"):
        apply_affine(dict(rec, heatmap=np.zeros((20, 24, 4))), np.eye(3), (20, 24))


def test_per_class_flip_permutation():
    kp = np.array([[[1.5, 1.5, 2], [3.5, 1.5, 2], [5.5, 1.5, 2]]] * 2, np.float32)  # 2 objects, K=3
    perm = np.array([[1, 0, 2], [0, 2, 1]])  # class 0 swaps 0<->1, class 1 swaps 1<->2
    out = transform_keypoints(kp, hflip_matrix(10), (10, 10), flip_permutation=perm, classes=np.array([0, 1]))
    np.testing.assert_allclose(out[0, :, 0], [10 - 3.5, 10 - 1.5, 10 - 5.5])
    np.testing.assert_allclose(out[1, :, 0], [10 - 1.5, 10 - 5.5, 10 - 3.5])
    same = transform_keypoints(kp, np.eye(3), (10, 10), flip_permutation=perm, classes=np.array([0, 1]))
    np.testing.assert_allclose(same, kp)
    with pytest.raises(ValueError, match="classes"):
        transform_keypoints(kp, hflip_matrix(10), (10, 10), flip_permutation=perm)
