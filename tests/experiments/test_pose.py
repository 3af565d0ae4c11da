"""experiments/pose end to end on the tiny ``:runlocal`` variant: tables (JSON and markdown),
figures and finite metrics; the COCO config's variants."""
import json
import math

import pytest

from experiments.pose import train as pose_train
from experiments.pose.configs import coco as pose_coco
from experiments.pose.configs import default as pose_default

FIGURES = ("pose_predictions.png", "pose_heatmaps.png", "pose_two_maxima.png",
           "pose_density_calibration.png", "pose_subpixel_stride.png", "pose_multi_paf.png")
HEAD_ROWS = ["regression", "heatmap (arg-max)", "heatmap (sub-pixel, quarter)",
             "heatmap (sub-pixel, Taylor)", "integral", "density"]


def _check_keypoint_row(row):
    assert math.isfinite(row["mean_px_error"]) and row["mean_px_error"] >= 0
    for key in ("pck@0.05", "pck@0.1", "coco_ap"):
        assert 0.0 <= row[key] <= 1.0, key


def test_runlocal_writes_tables_figures_and_finite_metrics(tmp_path):
    cfg = pose_default.get_config("runlocal")
    cfg.progress = False
    results = pose_train.run(cfg, str(tmp_path))

    rows = results["main_table"]
    assert [r["head"] for r in rows] == HEAD_ROWS
    for r in rows:
        _check_keypoint_row(r)
        assert r["num_params"] > 0 and r["train_images_per_sec"] > 0
    # The heatmap rows decode one trained model; the stride study reuses the stride-4 models.
    assert len({r["num_params"] for r in rows[1:4]}) == 1
    study = results["stride_study"]
    assert [(r["stride"], r["method"]) for r in study] == [
        (s, m) for s in cfg.stride_study for m in ("heatmap arg-max", "heatmap quarter-offset",
                                                   "heatmap Taylor", "integral (soft-argmax)")]
    for r in study:
        _check_keypoint_row(r)
        assert r["heatmap_size"] == cfg.image_size // r["stride"]
    assert study[0]["mean_px_error"] == rows[1]["mean_px_error"]  # same model, same decoding
    cal = results["density_calibration"]
    assert 0.0 <= cal["coverage_1sigma"] <= cal["coverage_2sigma"] <= 1.0
    assert -1.0 <= cal["spearman_sigma_vs_error"] <= 1.0 and cal["mean_sigma"] > 0
    assert len(cal["binned_sigma"]) == 10 and cal["binned_sigma"] == sorted(cal["binned_sigma"])
    multi = results["multi_instance"]
    for key in ("grouped_keypoint_accuracy", "keypoint_detection_recall",
                "instance_count_exact", "coco_ap", "coco_ap50"):
        assert 0.0 <= multi[key] <= 1.0, key
    assert multi["gt_instances"] > 0 and multi["heatmap_stride"] == cfg.multi.heatmap_stride

    saved = json.loads((tmp_path / "results.json").read_text())
    assert [r["head"] for r in saved["main_table"]] == HEAD_ROWS
    assert saved["main_table"][0]["mean_px_error"] == rows[0]["mean_px_error"]
    assert saved["config"]["backbone"]["name"] == "resnet18"
    md = (tmp_path / "results.md").read_text().splitlines()
    assert "| head | mean px error | PCK@0.05 | PCK@0.1 | COCO AP (OKS) |" in md[2]
    for r, line in zip(rows, md[4:4 + len(rows)]):
        assert line.startswith(f"| {r['head']} | {r['mean_px_error']:.2f} | "
                               f"{100 * r['pck@0.05']:.1f} |"), line
    assert "## Density head calibration" in md and "## Sub-pixel study: error vs heatmap " \
        "resolution" in md
    for name in FIGURES:
        with open(tmp_path / name, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", name


@pytest.mark.parametrize("variant", [None, "runlocal"])
def test_coco_config_builds_on_the_default(variant):
    cfg, base = pose_coco.get_config(variant), pose_default.get_config(variant)
    assert cfg.data == "coco" and not cfg.multi.enabled
    assert cfg.heads == base.heads and cfg.stride_study == base.stride_study
    if variant is None:
        assert cfg.backbone.widths == (64, 128, 256, 512) and cfg.image_size == 128
        assert cfg.head.integral.deconv_features == cfg.head.regression.conv_features == 128
    else:
        assert cfg.to_dict() == {**base.to_dict(), "data": "coco",
                                 "multi": {**base.multi.to_dict(), "enabled": False}}
    with pytest.raises(ValueError, match="unknown config variant"):
        pose_coco.get_config("nope")


def test_coco_data_are_top_down_crops_of_exported_shapes(tmp_path):
    """The COCO config's data path on files exported from the shapes data (no training)."""
    from vai_jax.data.coco_export import export_coco
    from vai_jax.data.shapes import ShapesDataset

    ds = ShapesDataset("multi_keypoints", split="train", num_examples=4, image_size=48)
    ann = export_coco(ds, str(tmp_path / "ann.json"), image_dir=str(tmp_path / "img"),
                      progress=False)
    cfg = pose_coco.get_config("runlocal")
    cfg.coco.update(dict(train_json=ann, train_images=str(tmp_path / "img")))
    cfg.num_train, cfg.num_val, cfg.crops.min_keypoints = 5, 3, 2
    train, val, info = pose_train.load_single_object_data(cfg)
    assert train["image"].shape == (5, 64, 64, 3) and val["keypoints"].shape[0] == 3
    assert info["num_keypoints"] == train["keypoints"].shape[1] == train["weights"].shape[1]
    assert info["sigmas"].shape == (info["num_keypoints"],)
    assert ((train["keypoints"][..., 2] > 0).sum(-1) >= 1).all()
    assert (train["weights"] == (train["keypoints"][..., 2] > 0)).all()
