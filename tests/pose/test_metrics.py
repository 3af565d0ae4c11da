"""Tests for vai_jax.pose.metrics: hand-computed errors/PCK and COCO keypoint AP via pycocotools."""
import numpy as np
import pytest

from vai_jax.pose import metrics as ep

PRED = np.array([[[3.0, 4.0], [1.0, 1.0], [7.0, 7.0]],
                 [[0.0, 0.0], [10.0, 10.0], [2.0, 0.0]]])
TGT = np.array([[[0.0, 0.0, 2], [1.0, 2.0, 1], [0.0, 0.0, 0]],
                [[0.0, 1.0, 2], [10.0, 10.0, 2], [0.0, 0.0, 2]]])
# distances: [5, 1, (masked)], [1, 0, 2]


def test_mean_pixel_error_hand_computed():
    assert ep.mean_pixel_error(PRED, TGT) == pytest.approx((5 + 1 + 1 + 0 + 2) / 5)
    vis = np.array([[True, False, False], [False, False, True]])
    assert ep.mean_pixel_error(PRED, TGT[..., :2], vis) == pytest.approx((5 + 2) / 2)


def test_pck_hand_computed():
    # reference 20 -> alpha 0.05 gives 1 px: distances <= 1 are 1, 1, 0 -> 3 / 5.
    assert ep.pck(PRED, TGT, alpha=0.05, reference=20.0) == pytest.approx(3 / 5)
    # per-example references: example 0 threshold 0.1*50=5 (5, 1 ok), example 1 0.1*10=1 (1, 0).
    assert ep.pck(PRED, TGT, alpha=0.1, reference=np.array([50.0, 10.0])) == pytest.approx(4 / 5)
    np.testing.assert_allclose(ep.box_reference_size(np.array([[0, 0, 10, 4], [2, 2, 5, 9]])),
                               [10, 7])


def test_all_invisible_raises_clearly():
    tgt = TGT.copy()
    tgt[..., 2] = 0
    with pytest.raises(ValueError, match="no visible"):
        ep.mean_pixel_error(PRED, tgt)
    with pytest.raises(ValueError, match="no visible"):
        ep.pck(PRED, tgt, alpha=0.05, reference=10.0)
    with pytest.raises(ValueError, match="alpha"):
        ep.pck(PRED, TGT, alpha=0.0, reference=10.0)


def _coco_gt(kps):
    images, anns = [], []
    for i, kp in enumerate(kps):
        images.append({"id": i + 1, "width": 64, "height": 64, "file_name": f"{i}.png"})
        x0, y0 = kp[:, 0].min() - 2, kp[:, 1].min() - 2
        w, h = kp[:, 0].max() + 2 - x0, kp[:, 1].max() + 2 - y0
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                     "bbox": [float(x0), float(y0), float(w), float(h)],
                     "area": float(w * h), "num_keypoints": int((kp[:, 2] > 0).sum()),
                     "keypoints": [float(v) for v in kp.reshape(-1)]})
    return {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "shape", "keypoints": ["a", "b", "c", "d"],
                            "skeleton": [[1, 2]]}]}


def test_coco_keypoint_ap_perfect_and_perturbed():
    rng = np.random.default_rng(0)
    kps = np.concatenate([rng.uniform(10, 54, size=(4, 4, 2)), np.full((4, 4, 1), 2.0)], -1)
    gt = _coco_gt(kps)
    sig = np.full(4, 0.05)
    # COCO files hold pixel indices; our frame is +0.5 (project convention, to_coco_results
    # subtracts it again).
    ours = kps.copy()
    ours[..., :2] += 0.5
    perfect = ep.coco_keypoint_ap(gt, ep.to_coco_results(np.arange(1, 5), ours, np.ones(4)),
                                  sigmas=sig)
    assert perfect["AP"] == pytest.approx(1.0)
    assert perfect["AR"] == pytest.approx(1.0)
    noisy = ours.copy()
    noisy[..., :2] += rng.normal(scale=4.0, size=(4, 4, 2))
    worse = ep.coco_keypoint_ap(gt, ep.to_coco_results(np.arange(1, 5), noisy, np.ones(4)),
                                sigmas=sig)
    assert worse["AP"] < 1.0
    assert ep.coco_keypoint_ap(gt, [], sigmas=sig)["AP"] == 0.0
    with pytest.raises(ValueError, match="sigmas"):
        ep.coco_keypoint_ap(gt, ep.to_coco_results(np.arange(1, 5), kps, np.ones(4)))
    broken = dict(gt, annotations=[dict(a) for a in gt["annotations"]])
    broken["annotations"][1]["category_id"] = 5
    del broken["annotations"][3]["bbox"]
    ids = [broken["annotations"][i]["id"] for i in (1, 3)]
    with pytest.raises(ValueError, match=rf"ground_truth is not valid COCO data: 2 problem(.|\n)*"
                                         rf"annotation id {ids[0]}: category_id 5 is not in "
                                         rf"categories(.|\n)*annotation id {ids[1]}: missing"):
        ep.coco_keypoint_ap(broken, [], sigmas=sig)


def test_to_coco_ground_truth_round_trip_and_ap():
    rng = np.random.default_rng(1)
    kp = np.concatenate([rng.uniform(10, 54, size=(3, 2, 4, 2)), np.full((3, 2, 4, 1), 2.0)], -1)
    kp[0, 1, 2] = 0.0  # one unlabelled keypoint
    boxes = np.concatenate([kp[..., :2].min(2) - 2, kp[..., :2].max(2) + 2], -1)
    boxes[0, 1] = [5, 5, 40, 40]
    valid = np.array([[True, True], [True, False], [True, True]])
    gt = ep.to_coco_ground_truth(kp, boxes, valid, image_size=(64, 64))
    assert len(gt["images"]) == 3 and len(gt["annotations"]) == 5
    ann = gt["annotations"][1]  # image 1, object 1
    assert ann["num_keypoints"] == 3 and ann["keypoints"][6:9] == [0.0, 0.0, 0.0]
    np.testing.assert_allclose(ann["keypoints"][:2], kp[0, 1, 0, :2] - 0.5)
    np.testing.assert_allclose(ann["bbox"], [5, 5, 35, 35])
    preds = kp[valid]
    ids = np.nonzero(valid)[0] + 1
    res = ep.coco_keypoint_ap(gt, ep.to_coco_results(ids, preds, np.ones(len(ids))),
                              sigmas=np.full(4, 0.05))
    assert res["AP"] == pytest.approx(1.0)


def test_density_calibration_hand_computed():
    pred = np.array([[[0.0, 0.0], [0.0, 0.0], [5.0, 5.0]]])
    tgt = np.array([[[1.0, 3.0, 2], [0.5, 2.0, 1], [0.0, 0.0, 0]]])  # keypoint 2 unlabelled
    log_std = np.log(np.array([[[2.0, 2.0], [1.0, 4.0], [9.0, 9.0]]]))
    cal = ep.density_calibration(pred, log_std, tgt, num_bins=2)
    # coordinates (|e|, σ): (1, 2), (3, 2), (0.5, 1), (2, 4)
    assert cal["coverage_1sigma"] == pytest.approx(3 / 4)
    assert cal["coverage_2sigma"] == pytest.approx(1.0)
    assert cal["mean_sigma"] == pytest.approx(9 / 4)
    assert cal["mean_abs_error"] == pytest.approx(6.5 / 4)
    # σ sorted: 1 (0.5), 2 (1), 2 (3), 4 (2) -> bins {1, 2} and {2, 4}
    np.testing.assert_allclose(cal["binned_sigma"], [1.5, 3.0])
    np.testing.assert_allclose(cal["binned_abs_error"], [0.75, 2.5])
    # ranks of σ [1, 2, 0, 3] (ties in sort order) vs ranks of |e| [1, 3, 0, 2]
    assert cal["spearman_sigma_vs_error"] == pytest.approx(np.corrcoef([1, 2, 0, 3],
                                                                       [1, 3, 0, 2])[0, 1])
    np.testing.assert_allclose(np.sort(cal["abs_error"]), [0.5, 1, 2, 3])
    with pytest.raises(ValueError, match="no visible keypoint"):
        ep.density_calibration(pred, log_std, tgt * [1, 1, 0])


def test_grouping_stats_hand_computed():
    box = [0.0, 0.0, 10.0, 10.0]  # size 10, tolerance 0.3 -> 3 px
    gt = np.array([[[0.0, 0.0, 2], [10.0, 0.0, 2], [0.0, 10.0, 2]],
                   [[50.0, 50.0, 2], [60.0, 50.0, 2], [0.0, 0.0, 0]]])
    pred = np.array([[[51.0, 50.0, 1], [60.0, 52.0, 1], [0.0, 0.0, 0]],   # 2 of instance 1
                     [[1.0, 1.0, 1], [10.0, 0.0, 1], [20.0, 20.0, 1]],    # 2 of instance 0
                     [[0.0, 0.0, 1], [10.0, 1.0, 1], [0.0, 9.0, 1]]])     # 3 of instance 0
    peaks = np.array([[[0.0, 0.0], [50.0, 50.0]], [[30.0, 30.0], [0.0, 0.0]],
                      [[0.0, 11.0], [0.0, 0.0]]])
    peaks_valid = np.array([[True, True], [True, False], [True, False]])
    r = ep.grouping_stats(pred, gt, np.array([box, [50.0, 50.0, 60.0, 60.0]]), peaks,
                          peaks_valid, tolerance=0.3)
    # Greedy: (instance 0, pred 2) with 3 hits, then (instance 1, pred 0) with 2.
    assert r == {"gt_keypoints": 5, "grouped_correct": 5, "detected": 3, "gt_instances": 2,
                 "pred_instances": 3, "count_exact": 0}
    empty = ep.grouping_stats(np.zeros((0, 3, 3)), gt, np.array([box, box]), peaks,
                              np.zeros((3, 2), bool), tolerance=0.3)
    assert empty["grouped_correct"] == 0 and empty["detected"] == 0
