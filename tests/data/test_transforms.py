"""Joint transforms: image, boxes, keypoints and masks stay consistent.

References are independent: explicit per-pixel loops in float64 for the warps, NumPy slicing
for flips/crops, intensity centroids on the pixel-centre grid for "the keypoint stays on its dot".
"""
import math
import pickle

import numpy as np
import pytest

from vai_jax.data.transforms import (
    CenterCrop,
    ColorJitter,
    Compose,
    Normalize,
    RandomAffine,
    RandomCrop,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    ResizeAndPad,
    apply_affine,
    hflip_matrix,
    masks_to_boxes,
    rotation_matrix,
    scale_matrix,
    transform_keypoints,
    translation_matrix,
    warp_image,
    warp_masks,
)


def _bilinear_reference(image, matrix, out_size, fill):
    """Slow float64 reference: loop over output pixels, 4 taps, fill outside."""
    h, w, c = image.shape
    inv = np.linalg.inv(np.asarray(matrix, np.float64))
    out = np.zeros(out_size + (c,), np.float64)

    def tap(i, j):
        return image[i, j].astype(np.float64) if (0 <= i < h and 0 <= j < w) else np.full(c, float(fill))

    for i in range(out_size[0]):
        for j in range(out_size[1]):
            sx, sy, _ = inv @ np.array([j + 0.5, i + 0.5, 1.0])
            u, v = sx - 0.5, sy - 0.5
            j0, i0 = math.floor(u), math.floor(v)
            a, b = u - j0, v - i0
            out[i, j] = ((1 - a) * (1 - b) * tap(i0, j0) + a * (1 - b) * tap(i0, j0 + 1)
                         + (1 - a) * b * tap(i0 + 1, j0) + a * b * tap(i0 + 1, j0 + 1))
    return out


def _nearest_reference(masks, matrix, out_size):
    m_, h, w = masks.shape
    inv = np.linalg.inv(np.asarray(matrix, np.float64))
    out = np.zeros((m_,) + out_size, masks.dtype)
    for i in range(out_size[0]):
        for j in range(out_size[1]):
            sx, sy, _ = inv @ np.array([j + 0.5, i + 0.5, 1.0])
            jj, ii = math.floor(sx), math.floor(sy)
            if 0 <= ii < h and 0 <= jj < w:
                out[:, i, j] = masks[:, ii, jj]
    return out


def _record(rng, h=20, w=24):
    """Image + two objects with elliptical masks, their enclosing boxes and 4 keypoints each."""
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    masks = np.stack([
        ((xx - 7) / 4) ** 2 + ((yy - 8) / 3) ** 2 <= 1,
        ((xx - 16) / 3) ** 2 + ((yy - 13) / 5) ** 2 <= 1,
    ])
    boxes, _ = masks_to_boxes(masks)
    kp = np.array([
        [[5.5, 8.5, 2], [9.5, 8.5, 2], [7.5, 6.5, 1], [0.0, 0.0, 0]],
        [[14.5, 12.5, 2], [17.5, 12.5, 2], [16.5, 9.5, 2], [16.5, 16.5, 1]],
    ], np.float32)
    return {
        "image": rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8),
        "boxes": boxes,
        "classes": np.array([1, 2], np.int32),
        "masks": masks,
        "keypoints": kp,
        "label": np.int32(3),
    }


FLIP_PAIRS = ((0, 1),)  # keypoint 0 = "left", 1 = "right"


def test_warp_image_matches_loop_reference():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(7, 9, 3), dtype=np.uint8)
    m = translation_matrix(1.3, -0.7) @ rotation_matrix(23.0, (4.5, 3.5)) @ scale_matrix(1.4, 0.8)
    out = warp_image(image.astype(np.float32), m, (8, 10), fill=17.0)
    ref = _bilinear_reference(image, m, (8, 10), 17.0)
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
    ref = _bilinear_reference(image, m, (8, 10), 5.0)
    np.testing.assert_allclose(warp_image(image.astype(np.float32), m, (8, 10), fill=5.0), ref, atol=1e-3)
    got = warp_image(image, m, (8, 10), fill=5).astype(int)
    assert np.abs(got - np.rint(ref)).max() <= (0 if name == "integer shift" else 1)
    masks = rng.random((2, 7, 9)) > 0.5
    np.testing.assert_array_equal(warp_masks(masks, m, (8, 10)), _nearest_reference(masks, m, (8, 10)))


def test_warp_masks_matches_loop_reference():
    rng = np.random.default_rng(1)
    masks = rng.random((2, 6, 8)) > 0.5
    m = rotation_matrix(-31.0, (4.0, 3.0)) @ scale_matrix(1.3, 1.1)
    np.testing.assert_array_equal(warp_masks(masks, m, (7, 9)), _nearest_reference(masks, m, (7, 9)))


def test_identity_and_integer_translation_are_exact():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, size=(6, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(warp_image(image, np.eye(3), (6, 7)), image)
    out = warp_image(image, translation_matrix(-2, -1), (4, 3))  # a crop at x0=2, y0=1
    np.testing.assert_array_equal(out, image[1:5, 2:5])


def test_flip_twice_is_identity():
    rec = _record(np.random.default_rng(3))
    flip = RandomHorizontalFlip(prob=1.0, flip_pairs=FLIP_PAIRS)
    rng = np.random.default_rng(0)
    twice = flip(flip(rec, rng), rng)
    np.testing.assert_array_equal(twice["image"], rec["image"])
    np.testing.assert_array_equal(twice["masks"], rec["masks"])
    np.testing.assert_allclose(twice["boxes"], rec["boxes"], atol=1e-5)
    np.testing.assert_allclose(twice["keypoints"], rec["keypoints"], atol=1e-5)
    assert twice["valid"].all()


def test_flip_matches_numpy_and_swaps_left_right():
    rec = _record(np.random.default_rng(4))
    w = rec["image"].shape[1]
    out = RandomHorizontalFlip(prob=1.0, flip_pairs=FLIP_PAIRS)(rec, np.random.default_rng(0))
    np.testing.assert_array_equal(out["image"], rec["image"][:, ::-1])
    np.testing.assert_array_equal(out["masks"], rec["masks"][:, :, ::-1])
    b = rec["boxes"]
    np.testing.assert_allclose(out["boxes"], np.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], -1), atol=1e-5)
    kp = rec["keypoints"]
    # Keypoint 0 of the output is the mirrored keypoint 1 of the input and vice versa.
    for out_k, in_k in [(0, 1), (1, 0), (2, 2), (3, 3)]:
        vis = kp[:, in_k, 2] > 0
        np.testing.assert_allclose(out["keypoints"][:, out_k, 2], kp[:, in_k, 2])
        np.testing.assert_allclose(out["keypoints"][vis, out_k, 0], w - kp[vis, in_k, 0], atol=1e-5)
        np.testing.assert_allclose(out["keypoints"][vis, out_k, 1], kp[vis, in_k, 1], atol=1e-5)
        assert np.all(out["keypoints"][~vis, out_k] == 0)
    # Pixel (i, j) -> (i, w-1-j): the pixel under a keypoint keeps its value.
    for o in range(2):
        for k in range(3):
            x, y = out["keypoints"][o, k, :2]
            xi, yi = rec["keypoints"][o, [1, 0, 2][k], :2]
            np.testing.assert_array_equal(out["image"][int(y), int(x)], rec["image"][int(yi), int(xi)])
    # No flip with prob=0.
    same = RandomHorizontalFlip(prob=0.0, flip_pairs=FLIP_PAIRS)(rec, np.random.default_rng(0))
    np.testing.assert_array_equal(same["image"], rec["image"])


def test_keypoints_swap_only_when_mirrored():
    kp = np.array([[[1.5, 1.5, 2], [3.5, 1.5, 2]]], np.float32)
    rot = transform_keypoints(kp, rotation_matrix(180, (5, 5)), (10, 10), flip_pairs=FLIP_PAIRS)
    np.testing.assert_allclose(rot[0, 0, :2], [8.5, 8.5], atol=1e-5)  # det > 0: no swap
    mir = transform_keypoints(kp, hflip_matrix(10), (10, 10), flip_pairs=FLIP_PAIRS)
    np.testing.assert_allclose(mir[0, 0, :2], [6.5, 1.5], atol=1e-5)  # was keypoint 1 at x=3.5


def _blob_image(h, w, centres, sigma=1.6):
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    img = np.zeros((h, w), np.float64)
    for cx, cy in centres:
        img += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
    return img


def _centroid(img, cx, cy, radius=5.0):
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]] + 0.5
    sel = (xx - cx) ** 2 + (yy - cy) ** 2 <= radius**2
    wgt = img * sel
    return (wgt * xx).sum() / wgt.sum(), (wgt * yy).sum() / wgt.sum()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_keypoint_stays_on_its_bright_dot(seed):
    """A keypoint at the centre of a bright dot still marks the dot after rotate/scale/translate.

    A half-pixel frame error would move the centroid by ~0.5 px; the tolerance is 0.15 px.
    """
    h, w = 48, 56
    centres = [(16.5, 14.5), (38.5, 20.5), (27.5, 33.5)]  # pixel centres
    img = _blob_image(h, w, centres)
    rec = {
        "image": np.repeat((img * 250).astype(np.float32)[..., None], 3, axis=-1),
        "keypoints": np.array([[[x, y, 2] for x, y in centres]], np.float32),
    }
    aff = RandomAffine(rotation=40.0, scale=(0.9, 1.4), translate=(0.08, 0.08), flip_prob=0.5)
    out = aff(rec, np.random.default_rng(seed))
    warped = out["image"][..., 0].astype(np.float64)
    for k in range(3):
        x, y, v = out["keypoints"][0, k]
        if v == 0:
            continue
        cx, cy = _centroid(warped, x, y)
        assert abs(cx - x) < 0.15 and abs(cy - y) < 0.15, (k, (x, y), (cx, cy))
        # And the brightest pixel near the keypoint is the pixel containing it (or a neighbour).
        i, j = int(np.floor(y)), int(np.floor(x))
        patch = warped[max(i - 3, 0) : i + 4, max(j - 3, 0) : j + 4]
        pi, pj = np.unravel_index(np.argmax(patch), patch.shape)
        assert abs(max(i - 3, 0) + pi - i) <= 1 and abs(max(j - 3, 0) + pj - j) <= 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_boxes_enclose_transformed_masks(seed):
    rec = _record(np.random.default_rng(10 + seed))
    aff = RandomAffine(rotation=35.0, scale=(0.8, 1.3), translate=(0.1, 0.1), flip_prob=0.5, flip_pairs=FLIP_PAIRS)
    out = aff(rec, np.random.default_rng(seed))
    tight, nonempty = masks_to_boxes(out["masks"])
    np.testing.assert_array_equal(out["valid"], nonempty)
    np.testing.assert_allclose(out["boxes"], tight, atol=1e-5)  # rotation: box from the mask
    # Independent enclosing check: every mask pixel lies inside its box.
    for o in range(2):
        ii, jj = np.nonzero(out["masks"][o])
        if len(ii):
            x1, y1, x2, y2 = out["boxes"][o]
            assert jj.min() >= x1 and jj.max() + 1 <= x2 and ii.min() >= y1 and ii.max() + 1 <= y2


def test_axis_aligned_boxes_follow_corners_and_enclose_mask_centres():
    rec = _record(np.random.default_rng(5))
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
    rec = _record(np.random.default_rng(6))
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


def test_crops_match_slicing():
    rec = _record(np.random.default_rng(7))
    out = CenterCrop((10, 12))(rec)
    np.testing.assert_array_equal(out["image"], rec["image"][5:15, 6:18])
    np.testing.assert_array_equal(out["masks"], rec["masks"][:, 5:15, 6:18])
    shifted = rec["keypoints"][..., :2] - [6, 5]
    inside = (rec["keypoints"][..., 2] > 0) & np.all((shifted >= 0) & (shifted < [12, 10]), axis=-1)
    np.testing.assert_allclose(out["keypoints"][inside][:, :2], shifted[inside], atol=1e-5)
    np.testing.assert_array_equal(out["keypoints"][inside][:, 2], rec["keypoints"][inside][:, 2])
    assert np.all(out["keypoints"][~inside] == 0)
    out = RandomCrop((8, 8))(rec, np.random.default_rng(0))
    assert out["image"].shape == (8, 8, 3)
    found = [(y, x) for y in range(13) for x in range(17) if np.array_equal(rec["image"][y : y + 8, x : x + 8], out["image"])]
    assert found, "random crop is not a sub-window of the input"


def test_resize_and_letterbox_scale_coordinates():
    rec = _record(np.random.default_rng(8))  # 20 x 24
    out = Resize((40, 48))(rec)
    assert out["image"].shape == (40, 48, 3)
    np.testing.assert_allclose(out["boxes"], rec["boxes"] * 2, atol=1e-5)
    np.testing.assert_allclose(out["keypoints"][..., :2], rec["keypoints"][..., :2] * 2, atol=1e-5)
    np.testing.assert_array_equal(out["masks"], rec["masks"].repeat(2, 1).repeat(2, 2))
    lb = ResizeAndPad((30, 30), fill=0)(rec)
    s = 30 / 24
    assert lb["image"].shape == (30, 30, 3)
    np.testing.assert_allclose(lb["boxes"], rec["boxes"] * s, atol=1e-4)
    assert np.all(lb["image"][26:] == 0)  # 20 * 1.25 = 25 rows of image, then padding


def test_random_resized_crop_shapes_and_box_inside():
    rng = np.random.default_rng(9)
    rrc = RandomResizedCrop((16, 16))
    for _ in range(20):
        x0, y0, cw, ch = rrc.crop_box((20, 24), rng)
        assert x0 >= 0 and y0 >= 0 and x0 + cw <= 24 + 1e-9 and y0 + ch <= 20 + 1e-9
    out = rrc(_record(rng), rng)
    assert out["image"].shape == (16, 16, 3) and out["masks"].shape == (2, 16, 16)


def test_color_jitter_and_normalize():
    rec = _record(np.random.default_rng(11))
    out = ColorJitter(brightness=0.4)(rec, np.random.default_rng(5))
    b = np.random.default_rng(5).uniform(0.6, 1.4)
    ref = np.clip(np.rint(np.clip(rec["image"].astype(np.float64) * b, 0, 255)), 0, 255).astype(np.uint8)
    assert np.abs(out["image"].astype(int) - ref.astype(int)).max() <= 1
    np.testing.assert_array_equal(out["boxes"], rec["boxes"])
    out = ColorJitter(brightness=0.2, contrast=0.3, saturation=0.5)(rec, np.random.default_rng(0))
    assert out["image"].dtype == np.uint8 and out["image"].shape == rec["image"].shape
    grey = np.repeat(np.arange(0, 250, 10, dtype=np.uint8).reshape(5, 5, 1), 3, axis=-1)
    sat = ColorJitter(saturation=0.9)({"image": grey}, np.random.default_rng(0))
    np.testing.assert_array_equal(sat["image"], grey)  # grey has no saturation to change
    norm = Normalize(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.5))(rec)
    ref = (rec["image"] / 255.0 - np.array([0.5, 0.4, 0.3])) / np.array([0.2, 0.25, 0.5])
    assert norm["image"].dtype == np.float32
    np.testing.assert_allclose(norm["image"], ref, rtol=1e-5, atol=1e-5)


def test_compose_is_picklable_and_applies_in_order():
    t = Compose([CenterCrop((10, 10)), Resize((20, 20)), RandomHorizontalFlip(1.0, FLIP_PAIRS)])
    t2 = pickle.loads(pickle.dumps(t))
    rec = _record(np.random.default_rng(12))
    a = t(rec, np.random.default_rng(0))
    b = t2(rec, np.random.default_rng(0))
    np.testing.assert_array_equal(a["image"], b["image"])
    manual = RandomHorizontalFlip(1.0, FLIP_PAIRS)(Resize((20, 20))(CenterCrop((10, 10))(rec)), np.random.default_rng(0))
    np.testing.assert_array_equal(a["image"], manual["image"])
    assert a["label"] == rec["label"] and a["classes"].tolist() == [1, 2]


def test_bad_arguments_raise():
    img = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="matrix"):
        warp_image(img, np.zeros((3, 3)), (4, 4))
    with pytest.raises(ValueError, match="out_size"):
        warp_image(img, np.eye(3), (0, 4))
    with pytest.raises(ValueError, match="keypoints"):
        transform_keypoints(np.zeros((2, 2)), np.eye(3), (4, 4))
    with pytest.raises(ValueError, match="flip_pairs"):
        transform_keypoints(np.zeros((1, 2, 3)), hflip_matrix(4), (4, 4), flip_pairs=((0, 5),))
    with pytest.raises(ValueError, match="scale"):
        RandomAffine(scale=(0.0, 1.0))({"image": img}, np.random.default_rng(0))


def test_semantic_map_moves_with_masks_and_unknown_maps_are_refused():
    rec = _record(np.random.default_rng(13))
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
