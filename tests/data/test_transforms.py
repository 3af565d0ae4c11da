"""Random joint transforms (flips, affine, resize, crops, colour, normalisation): image, boxes,
keypoints and masks stay consistent; determinism and pickling."""
import pickle

import numpy as np
import pytest

from tests.data.affine_references import record, FLIP_PAIRS, blob_image, centroid
from vai_jax.data.affine import (hflip_matrix, masks_to_boxes, transform_keypoints, warp_image)
from vai_jax.data.transforms import (CenterCrop, ColorJitter, Compose, Normalize, RandomAffine, RandomCrop,
                                     RandomHorizontalFlip, RandomResizedCrop, Resize, ResizeAndPad)


def test_flip_twice_is_identity():
    rec = record(np.random.default_rng(3))
    flip = RandomHorizontalFlip(prob=1.0, flip_pairs=FLIP_PAIRS)
    rng = np.random.default_rng(0)
    twice = flip(flip(rec, rng), rng)
    np.testing.assert_array_equal(twice["image"], rec["image"])
    np.testing.assert_array_equal(twice["masks"], rec["masks"])
    np.testing.assert_allclose(twice["boxes"], rec["boxes"], atol=1e-5)
    np.testing.assert_allclose(twice["keypoints"], rec["keypoints"], atol=1e-5)
    assert twice["valid"].all()


def test_flip_matches_numpy_and_swaps_left_right():
    rec = record(np.random.default_rng(4))
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


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_keypoint_stays_on_its_bright_dot(seed):
    """A keypoint at the centre of a bright dot still marks the dot after rotate/scale/translate.

    A half-pixel frame error would move the centroid by ~0.5 px; the tolerance is 0.15 px.
    """
    h, w = 48, 56
    centres = [(16.5, 14.5), (38.5, 20.5), (27.5, 33.5)]  # pixel centres
    img = blob_image(h, w, centres)
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
        cx, cy = centroid(warped, x, y)
        assert abs(cx - x) < 0.15 and abs(cy - y) < 0.15, (k, (x, y), (cx, cy))
        # And the brightest pixel near the keypoint is the pixel containing it (or a neighbour).
        i, j = int(np.floor(y)), int(np.floor(x))
        patch = warped[max(i - 3, 0) : i + 4, max(j - 3, 0) : j + 4]
        pi, pj = np.unravel_index(np.argmax(patch), patch.shape)
        assert abs(max(i - 3, 0) + pi - i) <= 1 and abs(max(j - 3, 0) + pj - j) <= 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_boxes_enclose_transformed_masks(seed):
    rec = record(np.random.default_rng(10 + seed))
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


def test_crops_match_slicing():
    rec = record(np.random.default_rng(7))
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
    rec = record(np.random.default_rng(8))  # 20 x 24
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
    out = rrc(record(rng), rng)
    assert out["image"].shape == (16, 16, 3) and out["masks"].shape == (2, 16, 16)


def test_color_jitter_and_normalize():
    rec = record(np.random.default_rng(11))
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
    rec = record(np.random.default_rng(12))
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
