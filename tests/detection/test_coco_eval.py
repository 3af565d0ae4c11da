"""COCO box/mask AP through pycocotools on the shapes export; COCO files through CocoSource;
invalid ground truth and results reported whole."""
import json

import numpy as np
import pytest

from vai_jax.data.coco import CocoSource
from vai_jax.data.coco_export import export_coco, to_coco
from vai_jax.data.shapes import ShapesDataset
from vai_jax.detection.coco_eval import coco_ap, detections_to_coco


@pytest.fixture(scope="module")
def data():
    ds = ShapesDataset("detection", split="test", num_examples=6, image_size=32, seed=3)
    return ds, to_coco(ds, progress=False), ds.get_batch(range(6))


def _perfect(batch):
    n = batch["boxes"].shape[0]
    return (np.arange(n) + 1, batch["boxes"], np.where(batch["valid"], 0.9, 0.0), batch["classes"], batch["valid"])


def test_perfect_detections_give_ap_one(data):
    _, gt, batch = data
    ids, boxes, scores, classes, valid = _perfect(batch)
    res = detections_to_coco(ids, boxes, scores, classes, valid, masks=batch["masks"])
    assert len(res) == int(batch["valid"].sum())
    box = coco_ap(gt, res, iou_type="bbox")
    segm = coco_ap(gt, res, iou_type="segm")
    assert box["AP"] == pytest.approx(1.0) and box["AP50"] == pytest.approx(1.0)
    assert segm["AP"] == pytest.approx(1.0)


def test_perturbed_detections_score_lower(data):
    _, gt, batch = data
    ids, boxes, scores, classes, valid = _perfect(batch)
    rng = np.random.default_rng(0)
    shifted = boxes + rng.uniform(-3, 3, boxes.shape).astype(np.float32)
    shifted[..., 2:] = np.maximum(shifted[..., 2:], shifted[..., :2])  # no inverted boxes
    res = detections_to_coco(ids, shifted, scores, classes, valid)
    ap = coco_ap(gt, res)
    assert 0.0 < ap["AP"] < 0.9 and ap["AP50"] >= ap["AP75"]
    wrong = detections_to_coco(ids, boxes, scores, (classes + 1) % 6, valid)
    assert coco_ap(gt, wrong)["AP"] == pytest.approx(0.0)
    assert coco_ap(gt, [])["AP"] == 0.0


def test_coco_file_round_trip_through_coco_source(data, tmp_path):
    ds, _, batch = data
    path = export_coco(ds, str(tmp_path / "ann.json"), image_dir=str(tmp_path / "img"), progress=False)
    src = CocoSource(path, str(tmp_path / "img"), with_masks=True)
    assert len(src) == len(ds)
    rec = src[2]
    m = int(batch["valid"][2].sum())
    np.testing.assert_array_equal(rec["image"], batch["image"][2])
    order = np.lexsort(rec["boxes"].T[::-1])
    ref = np.lexsort(batch["boxes"][2, :m].T[::-1])
    np.testing.assert_allclose(rec["boxes"][order], batch["boxes"][2, :m][ref], atol=1e-4)
    np.testing.assert_array_equal(rec["classes"][order], batch["classes"][2, :m][ref])
    np.testing.assert_array_equal(rec["masks"][order], batch["masks"][2, :m][ref])


def test_bad_iou_type(data):
    _, gt, _ = data
    with pytest.raises(ValueError, match="iou_type"):
        coco_ap(gt, [], iou_type="keypoints")
    with pytest.raises(ValueError, match="segmentation"):
        coco_ap(gt, [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1.0}], iou_type="segm")


def test_ground_truth_from_records_equals_export_for_boxes(data):
    from vai_jax.detection.coco_eval import ground_truth_from_records
    from vai_jax.data.shapes import CLASS_NAMES

    ds, gt_export, batch = data
    recs = [ds[i] for i in range(len(ds))]
    gt = ground_truth_from_records(recs, image_ids=range(1, len(ds) + 1), class_names=CLASS_NAMES)
    assert len(gt["annotations"]) == len(gt_export["annotations"])
    ids, boxes, scores, classes, valid = _perfect(batch)
    res = detections_to_coco(ids, boxes, scores, classes, valid)
    assert coco_ap(gt, res)["AP"] == pytest.approx(1.0)
    recs[0] = dict(recs[0], crowd=np.ones(len(recs[0]["boxes"]), bool))  # crowd gt: ignored, not missed
    gt = ground_truth_from_records(recs, image_ids=range(1, len(ds) + 1), class_names=CLASS_NAMES)
    keep = np.ones_like(valid)
    keep[0] = False
    assert coco_ap(gt, detections_to_coco(ids, boxes, scores, classes, valid & keep))["AP"] == pytest.approx(1.0)


def test_invalid_ground_truth_and_results_are_reported_whole(data, tmp_path):
    _, gt, batch = data
    bad_gt = dict(gt, annotations=[dict(a) for a in gt["annotations"]])
    bad_gt["annotations"][0]["bbox"] = [1.0, float("nan"), 2.0, 2.0]
    bad_gt["annotations"][1]["category_id"] = 77
    del bad_gt["annotations"][2]["bbox"]
    first = [a["id"] for a in bad_gt["annotations"][:3]]
    with pytest.raises(ValueError, match=r"ground_truth is not valid COCO data: 3 problem\(s\)"
                                         rf"(.|\n)*annotation id {first[0]}: bbox must hold 4 "
                                         rf"finite numbers(.|\n)*annotation id {first[1]}: "
                                         rf"category_id 77 is not in categories(.|\n)*annotation "
                                         rf"id {first[2]}: missing 'bbox'"):
        coco_ap(bad_gt, [])
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(dict(bad_gt, annotations=bad_gt["annotations"][1:2])))
    with pytest.raises(ValueError, match=r"gt.json is not valid COCO data: 1 problem"):
        coco_ap(str(path), [])
    good = {"image_id": 1, "category_id": 1, "bbox": [0, 0, 4, 4], "score": 0.5}
    results = [good, dict(good, bbox=[0, 0, 4]), dict(good, score=None),
               dict(good, image_id=999), dict(good, category_id=42)]
    with pytest.raises(ValueError, match=r"results is not valid COCO data: 2 problem\(s\):\n  "
                                         r"result 1: bbox must be a list of 4 numbers(.|\n)*"
                                         r"result 2: score must be a finite number; got None"):
        coco_ap(gt, results)
    with pytest.raises(ValueError, match=r"results do not match the ground truth: 2 problem\(s\)"
                                         r":\n  result 0: image_id 999 .*images\n  result 1: "
                                         r"category_id 42 is not in the ground truth's "
                                         r"categories"):
        coco_ap(gt, results[3:])
