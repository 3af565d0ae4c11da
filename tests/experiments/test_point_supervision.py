"""experiments/point_supervision end to end on ``:runlocal`` (simulated annotations, the
points + objectness run, metrics, tables and figures), each run seeing only its own
annotation, and the annotation cost."""
import json

import numpy as np
import pytest

from experiments.point_supervision import train as ps_train
from experiments.point_supervision.configs import default as ps_default

PNG = b"\x89PNG\r\n\x1a\n"


def test_runlocal_writes_tables_figures_and_metrics(tmp_path):
    cfg = ps_default.get_config("runlocal")
    cfg.progress = False
    out = ps_train.run(cfg, str(tmp_path))
    rows = out["rows"]
    assert [r["run"] for r in rows] == list(cfg.runs)
    for r in rows:
        for key in ("miou", "object_iou", "pixel_accuracy"):
            assert 0.0 <= r[key] <= 1.0 or np.isnan(r[key]), key
        assert r["steps"] == cfg.num_steps
    r = rows[0]
    assert r["train_examples"] == 64 and 1.0 < r["pixels_per_image"] <= 7.0
    assert r["annotation_hours"] == pytest.approx(64 * 22.1 / 3600)
    for name in ("predictions.png", "annotations.png", "cost.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG, name
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["annotation_cost"]["points"]["class_answers_per_image"] == 6
    md = (tmp_path / "results.md").read_text().splitlines()
    assert md[0].startswith("| run | loss terms | training images |")
    assert "| points_objectness | image + point + objectness | 64 |" in md[-1]


def test_each_run_reads_only_its_annotation():
    cfg = ps_default.get_config("runlocal")
    cfg.num_train_examples = 12
    data = ps_train.annotate(cfg, 7)
    assert data["points"].shape == data["semantic"].shape == (12, 32, 32)
    assert data["present"].shape == (12, 7) and data["objectness"].dtype == np.float32
    again = ps_train.annotate(cfg, 7)
    np.testing.assert_array_equal(data["points"], again["points"])      # deterministic
    keys = {run: set(ps_train.run_source(run, cfg, data, 7)[0][0])
            for run in ps_default.get_config().runs}
    assert keys["full"] == keys["full_budget"] == {"image", "semantic"}
    assert keys["image"] == {"image", "present"}
    assert keys["image_objectness"] == {"image", "present", "objectness"}
    assert keys["points"] == {"image", "present", "points"}
    assert keys["points_objectness"] == {"image", "present", "points", "objectness"}
    assert len(ps_train.run_source("full_budget", cfg, data, 7)[0]) == 1   # 12 * 22.1 / 239.7
    cost = ps_train.annotation_cost(cfg, data)
    assert cost["image"]["pixels_per_image"] == 0.0 and cost["full"]["pixels_per_image"] == 1024
    n_obj = cost["points"]["object_points_per_image"]
    assert cost["points"]["pixels_per_image"] == pytest.approx(n_obj + 1.0)


def test_config_checks():
    with pytest.raises(ValueError, match="unknown config variant"):
        ps_default.get_config("nope")
    cfg = ps_default.get_config("runlocal")
    cfg.runs = ("boxes",)
    with pytest.raises(ValueError, match="config.runs must name entries of config.terms"):
        ps_train.run(cfg, "/nonexistent-never-written")
