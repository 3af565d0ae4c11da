"""experiments/embeddings end to end on the tiny ``:runlocal`` variant: the table's rows and
ranges, figures, saved results; the symmetry orders behind the rotation targets."""
import json

import numpy as np
import pytest

from experiments.embeddings import train as emb_train
from experiments.embeddings.configs import default as emb_default
from vai_jax.data.shapes import CLASS_NAMES

PNG = b"\x89PNG\r\n\x1a\n"


def test_runlocal_writes_table_figures_and_results(tmp_path):
    cfg = emb_default.get_config("runlocal")
    results = emb_train.run(cfg, str(tmp_path))
    rows = results["rows"]
    names = ["pixels"] + [f"{net} {s}" for net in ("trained", "random") for s in cfg.stages]
    assert list(rows) == names
    s = cfg.data.image_size
    assert rows["pixels"]["dim"] == s * s * 3
    assert rows["trained stage3"]["dim"] == cfg.backbone.widths[-1]  # global average pooling
    for r in rows.values():
        assert 0.0 <= r["class_probe"] <= 1.0 and 0.0 <= r["class_knn"] <= 1.0
        assert r["rotation_r2"] <= 1.0 and r["log_scale_r2"] <= 1.0
        assert 0.0 <= r["rotation_median_error_deg"] <= 45.0  # at most half a quarter turn
        assert r["rotation_l2"] in cfg.ridge.l2s
    assert 0.0 <= results["test_top1"] <= 1.0
    for name in ("embeddings_pca.png", "embeddings_tsne.png", "embeddings_depth.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG, name
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["rows"]["pixels"]["class_knn"] == rows["pixels"]["class_knn"]
    assert set(saved["pca_explained_variance"]) == set(cfg.pca_representations)
    md = (tmp_path / "results.md").read_text().splitlines()
    assert md[0].startswith("| representation | dim | class: linear probe % |")
    assert [line.split(" | ")[0][2:] for line in md[2:2 + len(names)]] == names


def test_symmetry_orders_and_rotation_targets():
    assert dict(zip(CLASS_NAMES, emb_train.SYMMETRY_ORDER.tolist())) == {
        "circle": 0, "square": 4, "triangle": 3, "star": 5, "cross": 4, "ellipse": 2}
    data = {"label": np.array([0, 1, 2, 5]), "rotation": np.array([0.0, 0.1, -0.2, 0.3])}
    rows, order, targets = emb_train.rotation_targets(data)
    np.testing.assert_array_equal(rows, [1, 2, 3])
    np.testing.assert_array_equal(order, [4, 3, 2])
    np.testing.assert_allclose(targets[:, 0], np.cos([0.4, -0.6, 0.6]))


def test_config_variants(tmp_path):
    cfg = emb_default.get_config()
    assert set(cfg.pca_representations) - {"pixels"} <= {
        f"{n} {s}" for n in ("trained", "random") for s in cfg.stages}
    with pytest.raises(ValueError, match="unknown config variant"):
        emb_default.get_config("nope")
    bad = emb_default.get_config("runlocal")
    bad.pca_class = "circle"
    with pytest.raises(ValueError, match="pca_class"):
        emb_train.run(bad, str(tmp_path))
