"""experiments/dense_crf end to end on ``:runlocal`` (the validation search, post-processing
with the exact and the grid filter, CRF-as-RNN fine-tuning, metrics, tables and figures), the
search picking the best validation setting, and the grafting of a trained network under the
CRF."""
import json

import numpy as np
import pytest

from experiments.dense_crf import train as crf_train
from experiments.dense_crf.configs import default as crf_default

PNG = b"\x89PNG\r\n\x1a\n"


def test_runlocal_writes_tables_figures_and_metrics(tmp_path):
    cfg = crf_default.get_config("runlocal")
    cfg.progress = False
    # Colour sigmas of 80 and 160 intensity units: the bilateral grid of the "post_grid" row
    # has (255 / sigma)^3 colour cells, and at the config's 20 one batch takes ~10 s on a CPU.
    cfg.search.start.colour_sigma = 80.0
    cfg.search.colour_sigma = (80.0, 160.0)
    out = crf_train.run(cfg, str(tmp_path))
    rows = out["rows"]
    assert [r["variant"] for r in rows] == ["network", "post", "post_grid", "rnn", "rnn_unary"]
    for r in rows:
        for key in ("miou", "pixel_accuracy"):
            assert 0.0 <= r[key] <= 1.0, key
        assert set(r["trimap_accuracy"]) == {"1", "2"}
        assert all(0.0 <= v <= 1.0 for v in r["trimap_accuracy"].values())
        f = r["boundary"]["f_score"]
        assert f != f or 0.0 <= f <= 1.0
    search = out["search"]["fcn8s"]
    assert len(search["grid"]) == 2
    assert search["best"]["colour_sigma"] == max(search["grid"],
                                                 key=lambda g: g["val_miou"])["colour_sigma"]
    learned = search["crf_as_rnn_learned"]
    assert np.asarray(learned["compatibility"]).shape == (7, 7)
    t = out["timing"]["fcn8s"]
    assert t["crf"]["batched"] > 0 and t["crf"]["single"] > 0 and t["network"] > 0
    assert t["crf_grid"]["batched"] > 0
    for name in ("crf_examples.png", "trimap.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG, name
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["rows"][1]["miou"] == pytest.approx(rows[1]["miou"])
    md = (tmp_path / "results.md").read_text().splitlines()
    assert md[0].startswith("| model | variant | mIoU | pixel acc. | trimap acc. 1 px |")
    assert len(md) == 2 + len(rows) and "| fcn8s | CRF-as-RNN (end to end) |" in md[5]


def test_graft_network_keeps_the_crf_parameters():
    crf = {"params": {"bilateral_weight": np.ones(())}}
    net = {"params": {"w": np.arange(2.0)}, "batch_stats": {"bn": {"mean": np.ones(3)}}}
    got = crf_train.graft_network(crf, net)
    np.testing.assert_array_equal(got["params"]["network"]["w"], [0.0, 1.0])
    assert float(got["params"]["crf"]["bilateral_weight"]) == 1.0
    np.testing.assert_array_equal(got["batch_stats"]["network"]["bn"]["mean"], np.ones(3))


def test_config_variants():
    cfg = crf_default.get_config()
    assert set(cfg.finetune.models) <= set(cfg.models)
    assert cfg.crf.method == "exact" and len(list(cfg.search.colour_sigma)) > 1
    with pytest.raises(ValueError, match="unknown config variant"):
        crf_default.get_config("nope")
    cfg = crf_default.get_config("runlocal")
    cfg.finetune.models = ("deeplab",)
    with pytest.raises(ValueError, match="config.finetune.models must be among"):
        crf_train.run(cfg, "/nonexistent-never-written")
