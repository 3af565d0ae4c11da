"""experiments/segmentation: shapes data, end to end (all outputs) on VOC segmentation through
tfds.data_source under mock_data, the model table, the gridding figure and its measure."""
import json
import os

import numpy as np
import pytest

from experiments.segmentation import plots
from experiments.segmentation import train as train_segmenter
from experiments.segmentation.configs import default as segmenter_shapes
from experiments.segmentation.configs import voc as segmenter_voc
from tests.backbones.zoo_checks import random_variables


def _tiny(cfg, models):
    cfg.models = models
    cfg.image_size = 32
    cfg.gridding.size = 17
    cfg.num_steps = 2
    cfg.num_train_examples = 32
    cfg.num_test_examples = 8
    cfg.eval_batch_size = 8
    cfg.num_figure_examples = 2
    cfg.progress = False
    return cfg


def test_shapes_data_for_segmentation():
    cfg = _tiny(segmenter_shapes.get_config("runlocal"), ("fcn8s",))
    train, test, k, names, transforms = train_segmenter.build_data(cfg)
    assert (len(train), len(test), k, names[0]) == (32, 8, 7, "background")
    r = transforms[0](train[0])
    assert r["image"].shape == (32, 32, 3) and r["semantic"].shape == (32, 32)
    assert r["semantic"].dtype == np.int32 and 0 <= r["semantic"].min() <= r["semantic"].max() < 7


def test_voc_config_under_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    rng = np.random.default_rng(0)
    records = []
    for i in range(12):
        h, w = int(rng.integers(36, 50)), int(rng.integers(36, 50))
        mask = rng.integers(0, 21, size=(h, w, 1)).astype(np.uint8)
        mask[:2] = 255
        records.append({"image": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
                        "image/filename": f"{i}.jpg", "segmentation_mask": mask})
    cfg = _tiny(segmenter_voc.get_config("runlocal"), ("fcn32s",))
    with tfds.testing.mock_data(as_data_source_fn=lambda self, split, **kw: records):
        out = train_segmenter.run(cfg, str(tmp_path))
    assert out["dataset"] == "voc" and len(out["class_names"]) == 21
    for f in ("results.json", "results.md", "comparison.png", "predictions.png", "gridding.png"):
        assert os.path.getsize(tmp_path / f) > 0
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["fcn32s"]
    r = rows[0]
    assert 0.0 <= r["miou"] <= 1.0 and r["params"] > 0 and r["macs"] > 0 and r["steps"] == 2
    assert len(r["iou"]) == 21 and 0.0 <= r["object_iou"] <= 1.0
    assert "| fcn32s |" in (tmp_path / "results.md").read_text()


def test_model_table():
    cfg = segmenter_shapes.get_config("runlocal")
    with pytest.raises(ValueError, match="unknown model"):
        train_segmenter.build_model("fcn4s", cfg, 7)
    deeplab = train_segmenter.build_model("deeplab", cfg, 7)
    assert deeplab.backbone.feature_info[-1].stride == 8
    assert deeplab.head.rates == tuple(cfg.deeplab.rates)
    assert train_segmenter.build_model("fcn16s", cfg, 7).head.variant == 16


def test_high_frequency_fraction_is_analytic():
    i, j = np.meshgrid(np.arange(16), np.arange(12), indexing="ij")
    checker = ((-1.0) ** (i + j))[None, :, :, None]
    period4 = np.cos(2 * np.pi * j / 4)[None, :, :, None]
    smooth = (np.cos(2 * np.pi * i / 16) + np.sin(2 * np.pi * j / 12))[None, :, :, None]
    assert plots.high_frequency_fraction(checker + 3.0) == pytest.approx(1.0)
    assert plots.high_frequency_fraction(period4) == pytest.approx(1.0)
    assert plots.high_frequency_fraction(smooth) == pytest.approx(0.0, abs=1e-12)
    # Equal power in both: one half.
    mixed = np.concatenate([checker, smooth / np.sqrt(np.mean(smooth ** 2))], axis=-1)
    assert plots.high_frequency_fraction(mixed) == pytest.approx(0.5)


def test_gridding_figure_with_trained_espnets(tmp_path):
    cfg = _tiny(segmenter_shapes.get_config("runlocal"), ("espnet", "espnet_nohff"))
    images = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    internals, v = {}, None
    for name in ("espnet", "espnet_nohff"):
        model = train_segmenter.build_model(name, cfg, 7)
        assert model.decoder_kernel == cfg.espnet.decoder_kernel == 4
        if v is None:  # HFF has no parameters: one set of variables serves both
            v = random_variables(model, np.zeros((1, 16, 16, 3), np.float32))
        internals[name] = train_segmenter.espnet_internals(model, v, images, cfg)
    got = internals["espnet"]
    assert got["pred"].shape == got["confidence"].shape == (2, 16, 16)
    w2 = cfg.espnet.widths[1]  # the dilated branches' channels: (K - 1) * (w2 // K), K = 5
    assert got["activation"].shape == (2, 4, 4, 4 * (w2 // 5))
    assert np.all((got["confidence"] > 1 / 7 - 1e-6) & (got["confidence"] <= 1 + 1e-6))
    erf = plots.effective_receptive_fields(9, width=5, depth=1, inits=1)
    hf = plots.plot_gridding(erf, internals, images, got["pred"], 7, 255,
                                       str(tmp_path / "g.png"))
    assert os.path.getsize(tmp_path / "g.png") > 0
    assert set(hf) == {"espnet", "espnet_nohff"}
    assert all(0.0 <= x <= 1.0 for v in hf.values() for x in v.values())
