"""experiments/detection end to end on its runlocal config: Faster R-CNN and Mask R-CNN trained a
few steps and evaluated with COCOeval; every output written, every figure finite and in range,
and objects beyond the padding counted (not silently dropped)."""
import importlib
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.detection import train as train_detection
from vai_jax.analysis import count_params
from vai_jax.detection.proposals import sliding_window_proposals
from experiments.detection.configs import compare as detection_compare
from experiments.detection.configs import default as detection_default


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
    rows = train_detection.run(_tiny(detection_default.get_config("runlocal"), ("faster_rcnn", "mask_rcnn")),
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
    cfg = _tiny(detection_default.get_config("runlocal"), ("yolo",))
    with pytest.raises(ValueError, match="config.models"):
        train_detection.run(cfg, str(tmp_path))


def test_compare_config_lists_the_four_detectors():
    cfg = detection_compare.get_config()
    assert tuple(cfg.models) == ("rcnn", "fast_rcnn", "faster_rcnn", "mask_rcnn")
    assert cfg.num_steps > 200
    np.testing.assert_equal(detection_compare.get_config("runlocal").num_steps < cfg.num_steps, True)


@pytest.mark.parametrize("config", ["default", "rcnn", "fast_rcnn", "mask_rcnn", "compare"])
def test_configs_build_their_models(config):
    """Every config's model dicts go to the constructors as they are; the default Faster R-CNN
    is the 254 k-parameter model of its measured figures."""
    cfg = importlib.import_module(f"experiments.detection.configs.{config}").get_config()
    s = cfg.image_size
    windows = jnp.asarray(sliding_window_proposals((s, s), **cfg.windows))
    assert windows.shape == (3068, 4)
    for name in cfg.models:
        model = train_detection.build_model(cfg.model, name, 6)
        x = {"image": jnp.zeros((1, s, s, 3)), "proposals": windows[None],
             "proposal_valid": jnp.ones((1, len(windows)), bool)}
        variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, train=False))
        if config == "default":
            assert round(count_params(variables) / 1000) == 254, count_params(variables)
    assert (cfg.model.roi_stage.pool_mode == "pool") == (config == "fast_rcnn")
