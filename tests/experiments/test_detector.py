"""experiments/train_detector.py end to end on its runlocal config: Faster R-CNN and Mask R-CNN
trained a few steps and evaluated with COCOeval; every output written, every figure finite and
in range, and objects beyond the padding counted (not silently dropped)."""
import json
import math
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "experiments"))

import train_detector  # noqa: E402
from configs import detector_compare, detector_faster_rcnn  # noqa: E402


def _tiny(cfg, models):
    cfg.models = models
    cfg.num_train, cfg.num_val = 32, 8
    cfg.num_steps = 2
    cfg.max_objects = 3  # shapes images have up to 6 objects: some must be dropped and counted
    cfg.progress = False
    cfg.num_figure_images = 2
    return cfg


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("det")
    rows = train_detector.run(_tiny(detector_faster_rcnn.get_config("runlocal"), ("faster_rcnn", "mask_rcnn")),
                              str(workdir))
    return workdir, rows


def test_outputs_written(run):
    workdir, rows = run
    for f in ("results.json", "results.md", "comparison.png", "detections_faster_rcnn.png",
              "detections_mask_rcnn.png"):
        assert os.path.getsize(workdir / f) > 0, f
    with open(workdir / "comparison.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((workdir / "results.json").read_text())
    assert [r["model"] for r in saved["rows"]] == ["faster_rcnn", "mask_rcnn"]
    assert saved["config"]["models"] == ["faster_rcnn", "mask_rcnn"]
    md = (workdir / "results.md").read_text()
    assert "| Faster R-CNN |" in md and "| Mask R-CNN |" in md
    assert len(md.strip().splitlines()) == 2 + len(rows)


def test_rows_are_finite_and_in_range(run):
    _, rows = run
    for r in rows:
        for key in ("AP", "AP50", "AP75"):
            assert 0.0 <= r["box"][key] <= 1.0, (r["model"], key, r["box"][key])
        assert r["box"]["AP50"] >= r["box"]["AP75"]
        for key in ("train_images_per_sec", "infer_images_per_sec", "seconds_per_image", "train_seconds"):
            assert math.isfinite(r[key]) and r[key] > 0, (r["model"], key, r[key])
        assert r["cnn_passes_per_image"] == 1 and r["num_params"] > 0 and r["num_steps"] == 2
        assert r["num_eval_images"] == 8
        for rec in (r["proposal_recall"], r["detection_recall"]):
            assert 0.0 <= rec["recall@0.7"] <= rec["recall@0.5"] <= 1.0
    assert "mask" not in rows[0] and 0.0 <= rows[1]["mask"]["AP"] <= 1.0


def test_objects_beyond_the_padding_are_reported(run):
    _, rows = run
    for r in rows:
        rep = r["data_report"]
        assert set(rep) == {"objects", "clipped", "degenerate", "dropped"}
        # 2 steps x 8 images of up to 6 objects, padded to 3: drops happen and are counted.
        assert rep["dropped"] > 0 and 0 < rep["objects"] <= 2 * 8 * 3


def test_unknown_model_is_rejected(tmp_path):
    cfg = _tiny(detector_faster_rcnn.get_config("runlocal"), ("yolo",))
    with pytest.raises(ValueError, match="config.models"):
        train_detector.run(cfg, str(tmp_path))


def test_compare_config_lists_the_four_detectors():
    cfg = detector_compare.get_config()
    assert tuple(cfg.models) == ("rcnn", "fast_rcnn", "faster_rcnn", "mask_rcnn")
    assert cfg.num_steps > 200
    np.testing.assert_equal(detector_compare.get_config("runlocal").num_steps < cfg.num_steps, True)
