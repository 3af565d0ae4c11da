"""COCO export of the shapes data: load back with pycocotools and compare with the records."""
import json

import numpy as np
import pytest
from pycocotools.coco import COCO

from vai_jax.data.coco_export import export_coco, to_coco
from vai_jax.data.shapes import CLASS_NAMES, KEYPOINT_NAMES, NUM_KEYPOINTS, SKELETON, ShapesDataset


@pytest.mark.parametrize("task", ["detection", "keypoints"])
def test_export_round_trips_through_pycocotools(tmp_path, task):
    ds = ShapesDataset(task, num_examples=7, image_size=40, seed=1)
    path = export_coco(ds, str(tmp_path / "ann.json"), batch_size=3, image_dir=str(tmp_path / "img"),
                       progress=False)
    coco = COCO(path)
    assert sorted(coco.getImgIds()) == list(range(1, 8))
    cats = coco.loadCats(coco.getCatIds())
    assert [c["name"] for c in cats] == list(CLASS_NAMES)
    for c, cat in enumerate(cats):
        assert len(cat["keypoints"]) == NUM_KEYPOINTS
        assert cat["keypoints"][:len(KEYPOINT_NAMES[c])] == list(KEYPOINT_NAMES[c])
        assert cat["skeleton"] == [[i + 1, j + 1] for i, j in SKELETON[c]]
    total = 0
    for index in range(len(ds)):
        rec = ds[index]
        img = coco.loadImgs(index + 1)[0]
        assert (img["height"], img["width"]) == (40, 40)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=index + 1))
        n = int(rec["num_objects"])
        assert len(anns) == n
        total += n
        for m, ann in enumerate(sorted(anns, key=lambda a: a["id"])):
            x1, y1, x2, y2 = rec["boxes"][m].astype(np.float64)
            np.testing.assert_allclose(ann["bbox"], [x1, y1, x2 - x1, y2 - y1])
            assert ann["category_id"] == int(rec["classes"][m]) + 1
            mask = coco.annToMask(ann)
            np.testing.assert_array_equal(mask.astype(bool), rec["masks"][m])
            assert ann["area"] == rec["masks"][m].sum()
            kp = np.asarray(ann["keypoints"], np.float64).reshape(NUM_KEYPOINTS, 3)
            want = np.array(rec["keypoints"][m], np.float64)
            want[want[:, 2] > 0, :2] -= 0.5  # COCO keypoints are pixel indices
            np.testing.assert_allclose(kp, want, rtol=0, atol=1e-6)
            assert ann["num_keypoints"] == int((rec["keypoints"][m][:, 2] > 0).sum())
            assert ann["iscrowd"] == 0
    assert len(coco.getAnnIds()) == total > 0
    assert len(list((tmp_path / "img").glob("*.png"))) == 7


def test_export_is_json_serialisable_and_rejects_classification():
    d = to_coco(ShapesDataset("multi_keypoints", num_examples=2, image_size=32), progress=False)
    json.dumps(d)
    with pytest.raises(ValueError, match="classification"):
        to_coco(ShapesDataset("classification", num_examples=2, image_size=32), progress=False)
