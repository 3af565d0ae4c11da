"""Tests of the built-in procedural shapes data set (vai_jax.data.shapes and its renderer)."""
import hashlib
import math

import numpy as np
import pytest
from matplotlib.path import Path

from vai_jax.data import shapes_geometry as geo
from vai_jax.data import shapes_render
from vai_jax.data.shapes import (
    CLASS_NAMES,
    CLASS_PALETTE,
    FLIP_PAIRS,
    FLIP_PERMUTATION,
    KEYPOINT_NAMES,
    NUM_CLASSES,
    NUM_KEYPOINTS,
    SKELETON,
    TASKS,
    ShapesDataset,
)

MULTI_TASKS = ("keypoints", "detection", "multi_keypoints")


# ----------------------------------------------------------------------------- independent references
def _seg_dist(px, py, poly):
    """Distance from points [P] to a closed polygon's outline [V, 2], float64, brute force."""
    a = poly
    b = np.roll(poly, -1, axis=0)
    d = b - a
    t = ((px[:, None] - a[:, 0]) * d[:, 0] + (py[:, None] - a[:, 1]) * d[:, 1]) / (d ** 2).sum(-1)
    t = np.clip(t, 0.0, 1.0)
    qx = a[:, 0] + t * d[:, 0]
    qy = a[:, 1] + t * d[:, 1]
    return np.sqrt((px[:, None] - qx) ** 2 + (py[:, None] - qy) ** 2).min(1)


def _outline_in_image(cls, cx, cy, radius, angle, aspect):
    loc = geo.local_outline(cls, aspect, num=2048)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return np.array([cx, cy]) + radius * loc @ rot.T


def _one_object_scene(cls, cx, cy, radius, angle, aspect=1.0, h=48, w=48):
    scene = shapes_render.empty_scene(1, 1, h, w)
    scene.classes[0, 0] = cls
    scene.present[0, 0] = True
    scene.centre[0, 0] = (cx, cy)
    scene.radius[0, 0] = radius
    scene.cos_sin[0, 0] = (math.cos(angle), math.sin(angle))
    scene.aspect[0, 0] = aspect
    scene.colour[0, 0] = (1.0, 0.0, 0.0)
    return scene


def _extent(mask):
    rows = np.nonzero(mask.any(1))[0]
    cols = np.nonzero(mask.any(0))[0]
    return np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], np.float64)


# ----------------------------------------------------------------------------- constants
def test_keypoint_tables_are_consistent():
    assert len(CLASS_NAMES) == NUM_CLASSES >= 6
    assert len(KEYPOINT_NAMES) == len(SKELETON) == len(FLIP_PAIRS) == NUM_CLASSES
    assert NUM_KEYPOINTS == max(len(n) for n in KEYPOINT_NAMES)
    assert FLIP_PERMUTATION.shape == (NUM_CLASSES, NUM_KEYPOINTS)
    for c in range(NUM_CLASSES):
        n = len(KEYPOINT_NAMES[c])
        assert len(set(KEYPOINT_NAMES[c])) == n
        assert all(0 <= i < n and 0 <= j < n and i != j for i, j in SKELETON[c])
        perm = FLIP_PERMUTATION[c]
        assert sorted(perm.tolist()) == list(range(NUM_KEYPOINTS))
        np.testing.assert_array_equal(perm[perm], np.arange(NUM_KEYPOINTS))  # an involution
        for a, b in FLIP_PAIRS[c]:  # names of a pair mirror each other
            na, nb = KEYPOINT_NAMES[c][a], KEYPOINT_NAMES[c][b]
            assert na.replace("left", "X").replace("right", "X") == nb.replace("left", "X").replace("right", "X")


# ----------------------------------------------------------------------------- geometry vs reference
@pytest.mark.parametrize("cls", range(NUM_CLASSES))
def test_mask_matches_polygon_reference(cls):
    """Masks (pixel centre inside the shape) agree with matplotlib's point-in-polygon test."""
    cx, cy, radius, angle = 23.37, 25.81, 15.3, 0.41
    aspect = 0.55 if cls == geo.ELLIPSE else 1.0
    if cls == geo.CIRCLE:
        angle = 0.0
    scene = _one_object_scene(cls, cx, cy, radius, angle, aspect)
    mask = shapes_render.full_masks(scene)[0, 0]
    poly = _outline_in_image(cls, cx, cy, radius, angle, aspect)
    jj, ii = np.meshgrid(np.arange(48) + 0.5, np.arange(48) + 0.5)
    pts = np.stack([jj.ravel(), ii.ravel()], -1)
    ref = Path(poly).contains_points(pts).reshape(48, 48)
    assert mask.sum() > 100
    bad = np.nonzero(mask != ref)
    if bad[0].size:  # only pixels whose centre sits on the outline may disagree
        d = _seg_dist(jj[bad], ii[bad], poly)
        assert d.max() < 0.02, (bad, d)


@pytest.mark.parametrize("cls", range(NUM_CLASSES))
def test_keypoints_are_exact_geometric_points(cls):
    cx, cy, radius, angle = 20.25, 22.6, 12.0, -0.3
    aspect = 0.5 if cls == geo.ELLIPSE else 1.0
    if cls == geo.CIRCLE:
        angle = 0.0
    scene = _one_object_scene(cls, cx, cy, radius, angle, aspect)
    out = shapes_render.render_scene(scene)
    kp = out["keypoints"][0, 0].astype(np.float64)
    n = len(KEYPOINT_NAMES[cls])
    np.testing.assert_array_equal(kp[:n, 2], 2)
    np.testing.assert_array_equal(kp[n:], 0)
    xy = kp[:n, :2]
    np.testing.assert_allclose(xy[0], (cx, cy), atol=1e-4)  # centre
    rel = xy[1:] - (cx, cy)
    dist = np.hypot(rel[:, 0], rel[:, 1])
    names = KEYPOINT_NAMES[cls]
    if cls == geo.SQUARE:  # corners of a square of side radius*sqrt(2), in order around it
        side = np.hypot(*(xy[[2, 3, 4, 1]] - xy[[1, 2, 3, 4]]).T)
        np.testing.assert_allclose(side, radius * math.sqrt(2), atol=1e-4)
        np.testing.assert_allclose(dist, radius, atol=1e-4)
        # top_left is the corner at angle -135 degrees turned by `angle`
        np.testing.assert_allclose(xy[names.index("top_left")],
                                   (cx + radius * math.cos(-0.75 * math.pi + angle),
                                    cy + radius * math.sin(-0.75 * math.pi + angle)), atol=1e-4)
    elif cls in (geo.TRIANGLE, geo.STAR):  # vertices on the circumcircle, evenly spaced
        np.testing.assert_allclose(dist, radius, atol=1e-4)
        ang = np.arctan2(rel[:, 1], rel[:, 0])
        step = 2 * math.pi / len(rel)
        np.testing.assert_allclose(np.mod(np.diff(ang), 2 * math.pi), step, atol=1e-5)
        np.testing.assert_allclose(ang[0], -math.pi / 2 + angle, atol=1e-5)  # first = top
    elif cls in (geo.CIRCLE, geo.CROSS):
        np.testing.assert_allclose(dist, radius, atol=1e-4)
    elif cls == geo.ELLIPSE:
        np.testing.assert_allclose(dist, [aspect * radius, radius, aspect * radius, radius], atol=1e-4)
    # Extreme keypoints (points of the outline) touch the tight box of the mask, to a pixel.
    if cls in (geo.CIRCLE, geo.SQUARE, geo.TRIANGLE, geo.STAR):
        box = out["boxes"][0, 0]
        np.testing.assert_allclose([xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max()],
                                   box, atol=1.0)


def test_keypoints_are_sub_pixel():
    ds = ShapesDataset("keypoints", num_examples=32, image_size=64)
    kp = ds.get_batch(range(32))["keypoints"]
    xy = kp[..., :2][kp[..., 2] > 0]
    frac = np.mod(xy, 0.5)
    assert np.mean((frac > 0.01) & (frac < 0.49)) > 0.9  # not snapped to pixel corners or centres


# ----------------------------------------------------------------------------- data set records
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("size", [64, (40, 56)])
def test_record_shapes_and_dtypes(task, size):
    ds = ShapesDataset(task, num_examples=5, image_size=size)
    h, w = (size, size) if isinstance(size, int) else size
    r = ds[4]
    assert r["image"].shape == (h, w, 3) and r["image"].dtype == np.uint8
    assert r["label"].shape == () and r["label"].dtype == np.int32
    assert 0 <= int(r["label"]) < NUM_CLASSES
    if task == "classification":
        assert set(r) == {"image", "label"}
        return
    m, k = ds.max_objects, NUM_KEYPOINTS
    expect = {
        "boxes": ((m, 4), np.float32), "classes": ((m,), np.int32), "valid": ((m,), np.bool_),
        "num_objects": ((), np.int32), "masks": ((m, h, w), np.bool_), "keypoints": ((m, k, 3), np.float32),
        "semantic": ((h, w), np.int32),
    }
    assert set(r) == set(expect) | {"image", "label"}
    for key, (shape, dtype) in expect.items():
        assert r[key].shape == shape, key
        assert r[key].dtype == dtype, key
    if task == "keypoints":
        assert m == 1 and bool(r["valid"][0])


def test_default_object_counts():
    assert ShapesDataset("keypoints").max_objects == 1
    det = ShapesDataset("detection", num_examples=40, image_size=64).get_batch(range(40))
    counts = det["num_objects"]
    assert counts.min() >= 1 and counts.max() <= 6 and len(np.unique(counts)) >= 3
    mk = ShapesDataset("multi_keypoints", num_examples=40, image_size=64).get_batch(range(40))
    assert mk["num_objects"].max() <= 4 and mk["num_objects"].mean() > 2


@pytest.mark.parametrize("task", TASKS)
def test_deterministic_and_index_dependent(task):
    a = ShapesDataset(task, num_examples=10, image_size=32, seed=3)
    b = ShapesDataset(task, num_examples=10, image_size=32, seed=3)
    for i in (0, 7):
        ra, rb = a[i], b[i]
        assert set(ra) == set(rb)
        for k in ra:
            assert ra[k].tobytes() == rb[k].tobytes(), k
    assert a[0]["image"].tobytes() != a[1]["image"].tobytes()
    other_seed = ShapesDataset(task, num_examples=10, image_size=32, seed=4)
    other_split = ShapesDataset(task, split="validation", num_examples=10, image_size=32, seed=3)
    assert other_seed[0]["image"].tobytes() != a[0]["image"].tobytes()
    assert other_split[0]["image"].tobytes() != a[0]["image"].tobytes()


@pytest.mark.parametrize("task", TASKS)
def test_get_batch_equals_stacked_getitem(task):
    ds = ShapesDataset(task, num_examples=20, image_size=32)
    idx = [13, 2, 19, 2, 0]
    batch = ds.get_batch(idx)
    items = ds.__getitems__(idx)
    for k, i in enumerate(idx):
        single = ds[i]
        one = ds.get_batch([i])
        for key in single:
            np.testing.assert_array_equal(batch[key][k], single[key], err_msg=key)
            np.testing.assert_array_equal(one[key][0], single[key], err_msg=key)
            np.testing.assert_array_equal(items[k][key], single[key], err_msg=key)
    assert ds[-1]["image"].tobytes() == ds[19]["image"].tobytes()


def _detection_batch(n=24, size=64, task="detection", **kw):
    ds = ShapesDataset(task, num_examples=n, image_size=size, **kw)
    return ds, ds.get_batch(range(n))


def test_boxes_are_tight_extent_of_visible_masks():
    ds, b = _detection_batch()
    checked = 0
    for r in range(len(b["image"])):
        n = int(b["num_objects"][r])
        np.testing.assert_array_equal(b["valid"][r], np.arange(ds.max_objects) < n)  # valid first
        for m in range(ds.max_objects):
            mask = b["masks"][r, m]
            if m < n:
                assert mask.sum() >= ds.min_visible_pixels
                np.testing.assert_array_equal(b["boxes"][r, m], _extent(mask))
                checked += 1
            else:
                assert not mask.any()
                np.testing.assert_array_equal(b["boxes"][r, m], 0)
                np.testing.assert_array_equal(b["keypoints"][r, m], 0)
                assert b["classes"][r, m] == 0
    assert checked > 40


def test_semantic_consistent_with_instance_masks():
    _, b = _detection_batch()
    masks = b["masks"]
    assert (masks.sum(1) <= 1).all()  # visible masks are disjoint
    expect = np.einsum("bmhw,bm->bhw", masks.astype(np.int32), b["classes"] + 1)
    np.testing.assert_array_equal(b["semantic"], expect)


def test_objects_stand_out_from_background():
    ds = ShapesDataset("keypoints", num_examples=16, image_size=64)
    b = ds.get_batch(range(16))
    for img, mask in zip(b["image"].astype(np.float64), b["masks"][:, 0]):
        ring = np.zeros_like(mask)
        x1, y1, x2, y2 = _extent(mask).astype(int)
        ring[max(y1 - 4, 0):y2 + 4, max(x1 - 4, 0):x2 + 4] = True
        ring &= ~mask
        d = np.linalg.norm(img[mask].mean(0) - img[ring].mean(0))
        assert d > 30.0


def test_visible_keypoints_lie_on_their_own_mask():
    ds, b = _detection_batch(task="multi_keypoints", n=24)
    h, w = ds.image_size
    n_vis = n_occ = 0
    for r in range(24):
        for m in range(int(b["num_objects"][r])):
            c = int(b["classes"][r, m])
            kp = b["keypoints"][r, m]
            mask = b["masks"][r, m]
            ii, jj = np.nonzero(mask)
            n_real = len(KEYPOINT_NAMES[c])
            assert (kp[n_real:, 2] == 0).all()
            for x, y, v in kp:
                if v == 0:
                    assert x == 0 and y == 0
                    continue
                assert 0 <= x < w and 0 <= y < h
                if v == 2:
                    # Near a visible pixel square of its own object. Tolerance: the sharpest corner is
                    # a star tip (half-angle 22.6 deg); the disc of radius sqrt(2)/2 (which always
                    # holds a pixel centre) fits in it 0.707 / sin(22.6 deg) = 1.84 px from the tip,
                    # so some pixel square lies within 1.84 + 0.707 - 0.5 < 2.1 px.
                    dx = np.maximum(np.maximum(jj - x, x - (jj + 1)), 0)
                    dy = np.maximum(np.maximum(ii - y, y - (ii + 1)), 0)
                    d = np.hypot(dx, dy).min()
                    assert d <= (2.1 if c in (geo.STAR, geo.TRIANGLE) else 1.0), (c, d)
                    n_vis += 1
                else:
                    n_occ += 1
    assert n_vis > 100 and n_occ > 0


def test_out_of_frame_keypoints_have_visibility_zero():
    ds, b = _detection_batch(n=40)
    # Some objects are cut by the border: some of their real keypoints must then be v = 0.
    real = geo.KEYPOINT_COUNTS[b["classes"]][..., None] > np.arange(NUM_KEYPOINTS)
    real &= b["valid"][..., None]
    assert ((b["keypoints"][..., 2] == 0) & real).any()


def test_occlusion_partial_and_full():
    h = w = 48
    scene = shapes_render.empty_scene(1, 3, h, w)
    params = [  # class, centre, radius, angle
        (geo.SQUARE, (14.3, 24.2), 9.0, 0.0),      # right half covered by the circle
        (geo.TRIANGLE, (27.0, 26.1), 3.0, 0.1),    # fully inside the circle
        (geo.CIRCLE, (25.0, 24.2), 10.0, 0.0),
    ]
    for m, (c, ctr, rad, ang) in enumerate(params):
        scene.classes[0, m] = c
        scene.present[0, m] = True
        scene.centre[0, m] = ctr
        scene.radius[0, m] = rad
        scene.cos_sin[0, m] = (math.cos(ang), math.sin(ang))
        scene.colour[0, m] = (0.1 * m, 0.9, 0.2)
    circle_c, circle_r = np.array(params[2][1]), params[2][2]

    kept = shapes_render.render_scene(scene, min_visible_pixels=0)
    kp = kept["keypoints"][0]
    assert kept["valid"][0].all()
    # Square corners: occluded exactly when inside the circle (independent distance test).
    for x, y, v in kp[0, :5]:
        inside = np.hypot(x - circle_c[0], y - circle_c[1]) <= circle_r
        assert v == (1 if inside else 2)
    assert set(kp[0, :5, 2].tolist()) == {1.0, 2.0}
    # The fully covered triangle: empty mask, zero box, every keypoint occluded.
    assert not kept["masks"][0, 1].any()
    np.testing.assert_array_equal(kept["boxes"][0, 1], 0)
    np.testing.assert_array_equal(kp[1, :4, 2], 1)
    # The square's visible mask excludes the circle's disc, so its box is cut on the right.
    full = shapes_render.full_masks(scene)[0]
    np.testing.assert_array_equal(kept["masks"][0, 0], full[0] & ~full[2])
    assert kept["boxes"][0, 0, 2] < _extent(full[0])[2]

    # With the default threshold the hidden triangle is dropped and not drawn at all.
    dropped = shapes_render.render_scene(scene, min_visible_pixels=1)
    np.testing.assert_array_equal(dropped["valid"][0], [True, True, False])
    np.testing.assert_array_equal(dropped["classes"][0], [geo.SQUARE, geo.CIRCLE, 0])
    scene.present[0, 1] = False
    without = shapes_render.render_scene(scene, min_visible_pixels=1)
    np.testing.assert_array_equal(dropped["image"], without["image"])


def test_horizontal_flip_pairs():
    """After x -> W - x, FLIP_PERMUTATION restores 'right' names to the right of 'left' names."""
    ds = ShapesDataset("keypoints", num_examples=60, image_size=64)
    b = ds.get_batch(range(60))
    w = ds.width
    for c in range(NUM_CLASSES):
        rows = np.nonzero(b["classes"][:, 0] == c)[0]
        assert rows.size > 0
        for r in rows:
            kp = b["keypoints"][r, 0].copy()
            flipped = kp.copy()
            flipped[:, 0] = np.where(kp[:, 2] > 0, w - kp[:, 0], 0)
            fixed = flipped[FLIP_PERMUTATION[c]]
            for left_name, right_name in [(n, n.replace("right", "left")) for n in KEYPOINT_NAMES[c]
                                          if "right" in n]:
                i, j = KEYPOINT_NAMES[c].index(left_name), KEYPOINT_NAMES[c].index(right_name)
                # i is a "right" point, j its "left" partner
                assert kp[i, 0] > kp[j, 0]
                assert fixed[i, 0] > fixed[j, 0]
                assert flipped[i, 0] < flipped[j, 0]  # without the permutation the names are wrong


def test_classification_labels_cover_all_classes():
    b = ShapesDataset("classification", num_examples=120, image_size=32).get_batch(range(120))
    counts = np.bincount(b["label"], minlength=NUM_CLASSES)
    assert (counts > 5).all()


# ----------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    "kwargs, exc, text",
    [
        (dict(task="segmentation"), ValueError, "task"),
        (dict(split="val"), ValueError, "split"),
        (dict(image_size=8), ValueError, "image_size"),
        (dict(image_size=(64,)), ValueError, "image_size"),
        (dict(image_size=64.0), TypeError, "image_size"),
        (dict(num_examples=-1), ValueError, "num_examples"),
        (dict(seed=-2), ValueError, "seed"),
        (dict(task="detection", min_objects=4, max_objects=2), ValueError, "min_objects"),
        (dict(task="detection", max_objects=0), ValueError, "max_objects"),
        (dict(task="keypoints", max_objects=3), ValueError, "max_objects"),
        (dict(min_visible_pixels=-1), ValueError, "min_visible_pixels"),
    ],
)
def test_bad_arguments(kwargs, exc, text):
    with pytest.raises(exc, match=text):
        ShapesDataset(**kwargs)


def test_bad_indices():
    ds = ShapesDataset(num_examples=3, image_size=16)
    with pytest.raises(IndexError, match="index 3"):
        ds[3]
    with pytest.raises(IndexError, match="index -4"):
        ds[-4]
    with pytest.raises(TypeError, match="index"):
        ds[1.0]
    with pytest.raises(IndexError):
        ds.get_batch([0, 5])
    with pytest.raises(ValueError, match="indices"):
        ds.get_batch([])
    assert len(ds) == 3 and len(list(ds)) == 3


# ----------------------------------------------------------------------------- grain
def test_grain_map_dataset_batches():
    grain = pytest.importorskip("grain")
    ds = ShapesDataset("detection", num_examples=10, image_size=32)
    batches = list(grain.MapDataset.source(ds).batch(4, drop_remainder=True))
    assert len(batches) == 2
    expect = ds.get_batch(range(4))
    for k in expect:
        np.testing.assert_array_equal(batches[0][k], expect[k], err_msg=k)


def test_grain_data_loader():
    grain = pytest.importorskip("grain")
    ds = ShapesDataset("classification", num_examples=12, image_size=32)
    sampler = grain.samplers.IndexSampler(num_records=len(ds), shuffle=False, num_epochs=1,
                                          shard_options=grain.sharding.NoSharding(), seed=0)
    loader = grain.DataLoader(data_source=ds, sampler=sampler,
                              operations=[grain.transforms.Batch(batch_size=6, drop_remainder=True)],
                              worker_count=0)
    batches = list(loader)
    assert len(batches) == 2
    assert batches[1]["image"].shape == (6, 32, 32, 3)
    np.testing.assert_array_equal(batches[1]["label"], ds.get_batch(range(6, 12))["label"])


def test_classification_images_equal_keypoints_task_images():
    """Both single-object tasks draw the same scenes; the classification path renders only the image."""
    cls = ShapesDataset("classification", num_examples=8, image_size=40, seed=5).get_batch(range(8))
    kp = ShapesDataset("keypoints", num_examples=8, image_size=40, seed=5).get_batch(range(8))
    np.testing.assert_array_equal(cls["image"], kp["image"])
    np.testing.assert_array_equal(cls["label"], kp["classes"][:, 0])


def test_materialise_equals_the_records_and_selects_keys():
    ds = ShapesDataset("detection", split="train", num_examples=7, image_size=32, seed=5)
    src = ds.materialise(("image", "boxes"), chunk=3)  # chunks of 3, 3, 1
    assert len(src) == 7 and sorted(src[0]) == ["boxes", "image"]
    for i in (0, 3, 6):
        np.testing.assert_array_equal(src[i]["image"], ds[i]["image"])
        np.testing.assert_array_equal(src[i]["boxes"], ds[i]["boxes"])
    assert sorted(ds.materialise()[0]) == sorted(ds[0])
    with pytest.raises(ValueError, match="unknown \\['nope'\\]"):
        ds.materialise(("image", "nope"))


# ----------------------------------------------------------------------------- colour by class
# sha256 of get_batch's arrays (key, dtype, shape, bytes; keys sorted) with the default random
# object colours, recorded before colour_by_class existed: the default output must not change.
_DEFAULT_DIGESTS = [
    (("classification", 32, "train", 0, 12),
     "910bc97d23f0aecbe25b7f7c8c8cc29026917bf9cbb1329170b9daad9ff52dbc"),
    (("keypoints", 40, "test", 1, 8),
     "9b15502749002b2d5d01878a839432804228401e2214994e7b7f26dfed618070"),
    (("detection", (48, 40), "validation", 0, 8),
     "79516fb9e0cf847c1d32279e4ccac73287492de8275bff73104167401858e768"),
    (("multi_keypoints", 32, "train", 3, 6),
     "36a4c4078d0e978b6f91418368f2f6c3d66c6332ba9ec77e44b2cc5ab5f77406"),
]


def _digest(batch):
    h = hashlib.sha256()
    for k in sorted(batch):
        a = np.ascontiguousarray(batch[k])
        for part in (k, str(a.dtype), str(a.shape)):
            h.update(part.encode())
        h.update(a.tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("args, expected", _DEFAULT_DIGESTS)
def test_default_colours_are_bit_identical_to_the_recorded_output(args, expected):
    task, size, split, seed, n = args
    ds = ShapesDataset(task, split=split, num_examples=n, image_size=size, seed=seed)
    assert _digest(ds.get_batch(range(n))) == expected
    explicit = ShapesDataset(task, split=split, num_examples=n, image_size=size, seed=seed,
                             colour_by_class=False, palette_noise=0.3)
    assert _digest(explicit.get_batch(range(n))) == expected


def test_palette_has_equal_lightness_and_distinct_hues():
    from vai_jax.ops import rgb_to_lab

    lab = np.asarray(rgb_to_lab(CLASS_PALETTE.astype(np.float32)), np.float64)
    hue = np.deg2rad(15.0 + 60.0 * np.arange(NUM_CLASSES))
    np.testing.assert_allclose(lab[:, 0], 60.0, atol=0.05)
    np.testing.assert_allclose(lab[:, 1:], 35.0 * np.stack([np.cos(hue), np.sin(hue)], -1),
                               atol=0.05)
    assert CLASS_PALETTE.shape == (NUM_CLASSES, 3) and 0.0 < CLASS_PALETTE.min() < 1.0


def test_colour_by_class_object_colours_follow_the_class():
    n = 120
    kw = dict(num_examples=n, image_size=32, seed=2)
    plain = ShapesDataset("keypoints", **kw).get_batch(range(n))
    ds = ShapesDataset("keypoints", colour_by_class=True, palette_noise=0.05, **kw)
    coloured = ds.get_batch(range(n))
    # Same scenes: geometry and classes are unchanged.
    for key in ("masks", "boxes", "classes", "keypoints", "semantic"):
        np.testing.assert_array_equal(coloured[key], plain[key], err_msg=key)
    # Per-class mean object colour: near the palette (shading and pixel noise are centred).
    means = np.stack([coloured["image"][coloured["semantic"] == c + 1].mean(0) / 255.0
                      for c in range(NUM_CLASSES)])
    np.testing.assert_allclose(means, CLASS_PALETTE, atol=0.04)
    # The class explains almost all the variance of the objects' mean colours, and next to
    # none of it with the default random colours.
    assert _explained_by_class(coloured) > 0.9
    assert _explained_by_class(plain) < 0.2


def _explained_by_class(batch):
    """Between-class share of the variance of each image's mean object colour (R²)."""
    labels = batch["classes"][:, 0]
    colour = np.stack([img[sem > 0].mean(0) for img, sem in zip(batch["image"], batch["semantic"])])
    total = ((colour - colour.mean(0)) ** 2).sum()
    within = sum(((colour[labels == c] - colour[labels == c].mean(0)) ** 2).sum()
                 for c in np.unique(labels))
    return 1.0 - within / total


def test_colour_by_class_objects_stand_out_in_grey():
    """The background's lightness is kept away from the palette's: the object's mean CIE L
    differs from the background's by more than 10 in 98% of the images (the object's shading
    and the background's texture leave a few closer ones)."""
    from vai_jax.ops import rgb_to_lab

    batch = ShapesDataset("keypoints", num_examples=200, image_size=32, seed=1,
                          colour_by_class=True).get_batch(range(200))
    lightness = np.asarray(rgb_to_lab(batch["image"].astype(np.float32) / 255.0))[..., 0]
    obj = batch["semantic"] > 0
    contrast = np.array([abs(lum[m].mean() - lum[~m].mean()) for lum, m in zip(lightness, obj)])
    assert np.percentile(contrast, 2) > 10.0 and contrast.min() > 4.0


def test_separate_luma():
    luma = lambda c: c @ np.array([0.2126, 0.7152, 0.0722])
    dark = np.array([[0.6, 0.5, 0.4], [0.1, 0.2, 0.1]])  # mean luma below the target 0.55
    out = shapes_render.separate_luma(dark, 0.55, 0.2)
    np.testing.assert_allclose(luma(out[0]), 0.35)
    np.testing.assert_allclose(out[0] / out[0, 0], dark[0] / dark[0, 0])  # hue kept
    np.testing.assert_array_equal(out[1], dark[1])  # already dark enough
    light = np.array([[0.6, 0.5, 0.4], [0.9, 0.95, 0.9]])
    out = shapes_render.separate_luma(light, 0.55, 0.2)
    np.testing.assert_allclose(luma(out[0]), 0.75)
    np.testing.assert_allclose((1 - out[0]) / (1 - out[0, 0]), (1 - light[0]) / (1 - light[0, 0]))
    np.testing.assert_array_equal(out[1], light[1])
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_colour_by_class_is_deterministic_and_batch_independent():
    kw = dict(num_examples=10, image_size=24, seed=4, colour_by_class=True, palette_noise=0.2)
    a = ShapesDataset("classification", **kw).get_batch(range(10))
    b = ShapesDataset("classification", **kw).get_batch(range(10))
    assert _digest(a) == _digest(b)
    one = ShapesDataset("classification", **kw)[7]
    np.testing.assert_array_equal(one["image"], a["image"][7])
    noisier = ShapesDataset("classification", **dict(kw, palette_noise=0.0)).get_batch(range(10))
    assert not np.array_equal(noisier["image"], a["image"])
    multi = ShapesDataset("detection", **dict(kw, palette_noise=0.0)).get_batch(range(10))
    for c in np.unique(multi["semantic"])[1:] - 1:  # every object, also with several per image
        mean = multi["image"][multi["semantic"] == c + 1].mean(0) / 255.0
        assert np.argmin(((CLASS_PALETTE - mean) ** 2).sum(-1)) == c


def test_colour_by_class_arguments():
    ds = ShapesDataset(colour_by_class=True, palette_noise=0.1, image_size=16)
    assert repr(ds).endswith("colour_by_class=True, palette_noise=0.1)")
    assert "colour_by_class" not in repr(ShapesDataset(image_size=16))
    with pytest.raises(ValueError, match="palette_noise must be a number in \\[0, 1\\]"):
        ShapesDataset(colour_by_class=True, palette_noise=1.5)
    with pytest.raises(TypeError, match="colour_by_class must be a bool"):
        ShapesDataset(colour_by_class="yes")


def test_get_parameters_reproduce_the_records_geometry():
    """Single-object parameters match the rendered records: class, keypoints recomputed from
    centre, scale, rotation and aspect, and the sampled rotation range; nothing else changes."""
    ds = ShapesDataset("keypoints", num_examples=40, image_size=32, seed=5)
    p = ds.get_parameters(range(40))
    rec = ds.get_batch(range(40))
    assert set(p) == {"classes", "present", "centre", "scale", "rotation", "aspect"}
    assert p["scale"].shape == (40, 1) and p["scale"].dtype == np.float32
    assert p["present"].all()
    np.testing.assert_array_equal(p["classes"][:, 0], rec["label"])
    c = p["classes"][:, 0]
    assert (np.abs(p["rotation"][:, 0]) <= geo.MAX_ROTATION[c] + 1e-6).all()
    assert ((p["scale"] >= 0.2 * 32 - 1e-4) & (p["scale"] <= 0.4 * 32 + 1e-4)).all()
    local = geo.LOCAL_KEYPOINTS[c]                                    # [N, K, 2]
    u, v = local[..., 0], local[..., 1] * p["aspect"][:, :1]
    cos, sin = np.cos(p["rotation"][:, :1]), np.sin(p["rotation"][:, :1])
    r, cx, cy = p["scale"][:, :1], p["centre"][:, :1, 0], p["centre"][:, :1, 1]
    xy = np.stack([cx + r * (cos * u - sin * v), cy + r * (sin * u + cos * v)], -1)
    kp = rec["keypoints"][:, 0]
    vis = kp[..., 2] > 0
    np.testing.assert_allclose(xy[vis], kp[..., :2][vis], atol=1e-3)
    one = ds.get_parameters([7])
    for key in p:
        np.testing.assert_array_equal(one[key][0], p[key][7], err_msg=key)
    multi = ShapesDataset("detection", num_examples=4, image_size=32).get_parameters(range(4))
    assert multi["scale"].shape == (4, 6) and (multi["present"].sum(1) >= 1).all()
    assert (multi["scale"][~multi["present"]] == 0).all()
    with pytest.raises(ValueError, match="empty"):
        ds.get_parameters([])
