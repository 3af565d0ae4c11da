"""CocoSource over a small COCO-format file the test writes: 3 PNG images, polygons, RLE
(compressed and uncompressed/crowd), keypoints, non-contiguous category ids."""
import json

import grain.python as grain
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from vai_jax.data.coco import CocoSource
from vai_jax.data.pipeline import make_loader
from vai_jax.data.transforms import RandomHorizontalFlip, Resize

KP_NAMES = ["nose", "left_eye", "right_eye"]


def _write_coco(root):
    """Writes images + annotations; returns the ground truth the test expects back."""
    img_dir = root / "images"
    img_dir.mkdir()
    sizes = {11: (20, 24), 5: (16, 16), 30: (18, 22)}  # image id -> (H, W); ids deliberately unsorted
    images, anns, truth = [], [], {}
    for image_id, (h, w) in sizes.items():
        pix = np.zeros((h, w, 3), np.uint8)
        pix[..., 2] = 7 * image_id  # blue channel tags the image
        images.append({"id": image_id, "file_name": f"img_{image_id}.png", "height": h, "width": w})
        truth[image_id] = {"pix": pix, "objects": []}
    # Image 11: a polygon rectangle (person, with keypoints) and a compressed-RLE blob (ball).
    rect = np.zeros((20, 24), bool)
    rect[3:9, 4:12] = True  # cols 4..11, rows 3..8 = polygon [4, 12) x [3, 9)
    kps = [6, 4, 2, 5, 5, 1, 9, 5, 0]  # nose visible, left_eye occluded, right_eye unlabelled
    anns.append({"id": 1, "image_id": 11, "category_id": 7, "iscrowd": 0, "area": 48.0,
                 "bbox": [4, 3, 8, 6], "segmentation": [[4, 3, 12, 3, 12, 9, 4, 9]],
                 "keypoints": kps, "num_keypoints": 2})
    blob = np.zeros((20, 24), bool)
    blob[12:17, 15:22] = True
    blob[14, 15] = False
    rle = mask_utils.encode(np.asfortranarray(blob.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    anns.append({"id": 2, "image_id": 11, "category_id": 3, "iscrowd": 0, "area": float(blob.sum()),
                 "bbox": [15, 12, 7, 5], "segmentation": rle})
    truth[11]["objects"] = [(rect, [4, 3, 12, 9], 1, False), (blob, [15, 12, 22, 17], 0, False)]
    truth[11]["pix"][rect] = [200, 10, 77]
    truth[11]["pix"][blob] = [10, 220, 77]
    # Image 30: a crowd region as uncompressed RLE (column-major run lengths).
    crowd = np.zeros((18, 22), bool)
    crowd[2:6, 1:20] = True
    flat = crowd.flatten(order="F").astype(np.uint8)
    runs, cur, n = [], 0, 0
    for v in flat:
        if v != cur:
            runs.append(n)
            cur, n = v, 0
        n += 1
    runs.append(n)
    anns.append({"id": 3, "image_id": 30, "category_id": 3, "iscrowd": 1, "area": float(crowd.sum()),
                 "bbox": [1, 2, 19, 4], "segmentation": {"counts": runs, "size": [18, 22]}})
    truth[30]["objects"] = [(crowd, [1, 2, 20, 6], 0, True)]
    # Image 5: no annotations.
    for image_id, t in truth.items():
        Image.fromarray(t["pix"]).save(img_dir / f"img_{image_id}.png")
    cats = [{"id": 3, "name": "ball", "supercategory": "thing"},
            {"id": 7, "name": "person", "supercategory": "person", "keypoints": KP_NAMES,
             "skeleton": [[1, 2], [1, 3]]}]
    ann_file = root / "instances.json"
    ann_file.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return ann_file, img_dir, truth, kps


@pytest.fixture()
def coco(tmp_path):
    return _write_coco(tmp_path)


def test_records_round_trip(coco):
    ann_file, img_dir, truth, kps = coco
    src = CocoSource(ann_file, img_dir)
    assert len(src) == 3
    assert src.image_ids == [5, 11, 30]
    assert src.category_ids == [3, 7] and src.class_names == ["ball", "person"]
    assert src.class_of == {3: 0, 7: 1}
    assert src.keypoint_names == KP_NAMES and src.num_keypoints == 3
    for i, image_id in enumerate(src.image_ids):
        r = src[i]
        t = truth[image_id]
        np.testing.assert_array_equal(r["image"], t["pix"])
        assert r["image_id"] == image_id and r["image_id"].dtype == np.int32
        m = len(t["objects"])
        h, w = t["pix"].shape[:2]
        assert r["boxes"].shape == (m, 4) and r["boxes"].dtype == np.float32
        assert r["classes"].shape == (m,) and r["classes"].dtype == np.int32
        assert r["masks"].shape == (m, h, w) and r["masks"].dtype == bool
        assert r["keypoints"].shape == (m, 3, 3) and r["keypoints"].dtype == np.float32
        assert r["valid"].all()
        for o, (mask, box, cls, crowd) in enumerate(t["objects"]):
            np.testing.assert_array_equal(r["masks"][o], mask)
            np.testing.assert_allclose(r["boxes"][o], box)
            assert r["classes"][o] == cls and r["crowd"][o] == crowd
            # The box encloses the mask exactly (these masks are tight to their boxes).
            ii, jj = np.nonzero(mask)
            np.testing.assert_allclose(r["boxes"][o], [jj.min(), ii.min(), jj.max() + 1, ii.max() + 1])
    person = src[1]["keypoints"][0]
    # Labelled keypoints move to pixel centres (+0.5); the unlabelled one is (0, 0, 0).
    np.testing.assert_allclose(person, [[6.5, 4.5, 2], [5.5, 5.5, 1], [0, 0, 0]])
    assert np.all(src[1]["keypoints"][1] == 0)  # the ball has no keypoints
    # The keypoint sits on the person's pixels of the image.
    x, y = person[0, :2]
    np.testing.assert_array_equal(src[1]["image"][int(y), int(x)], [200, 10, 77])


def test_flip_permutation_swaps_left_right_names(coco):
    src = CocoSource(coco[0], coco[1])
    np.testing.assert_array_equal(src.flip_permutation, [[0, 1, 2], [0, 2, 1]])
    r = src[1]
    w = r["image"].shape[1]
    out = RandomHorizontalFlip(1.0, flip_permutation=src.flip_permutation)(r, np.random.default_rng(0))
    # left_eye (index 1) of the flipped person is the mirrored right_eye (unlabelled) and vice versa.
    np.testing.assert_allclose(out["keypoints"][0, 2], [w - 5.5, 5.5, 1])
    np.testing.assert_allclose(out["keypoints"][0, 1], [0, 0, 0])


def test_options_skip_crowd_and_no_masks(coco):
    src = CocoSource(coco[0], coco[1], skip_crowd=True, with_masks=False, with_keypoints=False)
    r = src[2]
    assert r["boxes"].shape == (0, 4) and "masks" not in r and "keypoints" not in r


def test_through_make_loader_to_static_shapes(coco):
    src = CocoSource(coco[0], coco[1])
    loader = make_loader(src, batch_size=3, seed=0, num_epochs=1, transforms=Resize((16, 16)), max_objects=4,
                         shard_options=grain.NoSharding())
    (batch,) = list(loader)
    assert batch["image"].shape == (3, 16, 16, 3)
    assert batch["masks"].shape == (3, 4, 16, 16) and batch["keypoints"].shape == (3, 4, 3, 3)
    assert sorted(batch["valid"].sum(1).tolist()) == [0, 1, 2]
    assert sorted(batch["image_id"].tolist()) == [5, 11, 30]


def test_missing_paths_and_bad_files(tmp_path, coco):
    ann_file, img_dir, _, _ = coco
    with pytest.raises(FileNotFoundError, match="nope.json"):
        CocoSource(tmp_path / "nope.json", img_dir)
    with pytest.raises(FileNotFoundError, match="no_images"):
        CocoSource(ann_file, tmp_path / "no_images")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"annotations": []}))
    with pytest.raises(ValueError, match="bad.json"):
        CocoSource(bad, img_dir)
    (img_dir / "img_30.png").unlink()
    src = CocoSource(ann_file, img_dir)
    with pytest.raises(FileNotFoundError, match="img_30.png"):
        src[2]


def test_shapes_export_round_trip(tmp_path):
    """ShapesDataset -> data.coco_export (COCO pixel-index keypoints) -> CocoSource (default +0.5)."""
    shapes = pytest.importorskip("vai_jax.data.shapes")
    coco_export = pytest.importorskip("vai_jax.data.coco_export")
    ds = shapes.ShapesDataset("multi_keypoints", split="train", num_examples=3, image_size=32)
    ann = coco_export.export_coco(ds, str(tmp_path / "ann.json"), image_dir=str(tmp_path / "img"), progress=False)
    src = CocoSource(ann, tmp_path / "img")
    assert len(src) == 3
    for i in range(3):
        want, got = ds[i], src[i]
        n = int(want["valid"].sum())
        np.testing.assert_array_equal(got["image"], want["image"])
        np.testing.assert_array_equal(got["classes"], want["classes"][:n])
        np.testing.assert_allclose(got["boxes"], want["boxes"][:n], atol=1e-4)
        np.testing.assert_array_equal(got["masks"], want["masks"][:n])
        np.testing.assert_allclose(got["keypoints"], want["keypoints"][:n], atol=1e-4)


def test_every_bad_annotation_is_reported_with_its_id(tmp_path, coco):
    ann_file, img_dir, _, _ = coco
    data = json.loads(ann_file.read_text())
    base = data["annotations"][0]
    bad = [dict(base, id=40, bbox=[1, 2, 3]),                        # 3 numbers
           {k: v for k, v in dict(base, id=41).items() if k != "bbox"},  # missing bbox
           dict(base, id=42, category_id=99),                         # unknown category
           dict(base, id=43, bbox=[0, 0, -2, 4]),                     # negative width
           dict(base, id=44, bbox=[0, "1", 2, 2], image_id=1234)]     # string, unknown image
    data["annotations"] += bad
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(data))
    with pytest.raises(ValueError) as info:
        CocoSource(broken, img_dir)
    msg = str(info.value)
    assert "broken.json is not valid COCO data: 6 problem(s)" in msg
    for line in ("annotation id 40: bbox must be a list of 4 numbers [x, y, w, h]; got [1, 2, 3]",
                 "annotation id 41: missing 'bbox'",
                 "annotation id 42: category_id 99 is not in categories (ids [3, 7])",
                 "annotation id 43: bbox width and height must be >= 0; got [0, 0, -2, 4]",
                 "annotation id 44: bbox must hold 4 finite numbers",
                 "annotation id 44: image_id 1234 is not in images"):
        assert line in msg, line
    assert "annotation id 1:" not in msg and "annotation id 2:" not in msg
    (tmp_path / "not_json.json").write_text("{images: ")
    with pytest.raises(ValueError, match="not_json.json is not valid JSON"):
        CocoSource(tmp_path / "not_json.json", img_dir)
