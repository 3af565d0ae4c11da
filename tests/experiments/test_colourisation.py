"""experiments/colourisation end to end on the ``:runlocal`` config: the table, the figures and
the reference rows."""
import json
import os

import pytest

from experiments.colourisation import train as train_colourisation
from experiments.colourisation.configs import default as colourisation_default


def test_runlocal_writes_the_table_and_figures(tmp_path):
    cfg = colourisation_default.get_config("runlocal")
    cfg.progress = False
    cfg.runs = ("local", "fusion_classification")  # the two ends (each run compiles its steps)
    rows = train_colourisation.run(cfg, str(tmp_path))
    names = [r["run"] for r in rows]
    assert names == ["grey", "oracle", "local", "fusion_classification"]
    by_name = {r["run"]: r for r in rows}
    for r in rows:
        assert r["ab_mae"] >= 0 and r["ab_rmse"] >= r["ab_mae"] - 1e-6 and r["psnr"] > 0
        assert r["object_ab_mae"] >= 0
    assert by_name["grey"]["object_ab_mae"] > by_name["oracle"]["object_ab_mae"]
    assert "top1" in by_name["fusion_classification"] and "top1" not in by_name["local"]
    assert not by_name["local"]["fusion"] and by_name["fusion_classification"]["fusion"]
    assert by_name["fusion_classification"]["num_params"] > by_name["local"]["num_params"]
    assert by_name["local"]["steps"] == cfg.num_steps
    table = (tmp_path / "results.md").read_text()
    assert "| `fusion_classification` | yes | yes |" in table and "class oracle" in table
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [r["run"] for r in saved["rows"]] == names
    assert saved["config"]["model"]["fusion_features"] == cfg.model.fusion_features
    for png in ("colourisation_examples.png", "curves.png"):
        with open(tmp_path / png, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", png
    assert os.path.exists(tmp_path / "local" / "metrics.jsonl")


def test_config_variants():
    cfg = colourisation_default.get_config()
    assert cfg.runs == ("local", "local_classification", "fusion", "fusion_classification")
    assert set(cfg.runs) <= set(cfg.variants)
    assert cfg.image_size % 4 == 0 and cfg.batch_size % 8 == 0
    model = train_colourisation.build_model(cfg, "fusion_classification")
    assert model.fusion and model.num_classes == 6
    assert train_colourisation.loss_options(cfg, "fusion_classification")[
        "classification_weight"] > 0
    assert train_colourisation.loss_options(cfg, "local")["classification_weight"] == 0
    with pytest.raises(ValueError, match="unknown config variant"):
        colourisation_default.get_config("nope")
