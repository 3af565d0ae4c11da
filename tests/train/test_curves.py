"""train.curves.plot_curves: one panel per metric present, laid out three to a row."""
import json

import pytest
from PIL import Image

from vai_jax.train.curves import plot_curves


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"step": 9, "lo')


@pytest.mark.parametrize("keys,size", [(("loss",), (420, 320)),
                                       (("loss", "top1", "learning_rate", "grad_norm"),
                                        (1260, 640))])
def test_one_panel_per_metric(tmp_path, keys, size):
    records = [{"step": s, "split": "train", **{k: 1.0 / (s + 1) for k in keys}}
               for s in range(5)]
    records.append({"step": 4, "split": "eval", "loss": 0.3})
    _write(tmp_path / "metrics.jsonl", records)
    out = plot_curves(str(tmp_path / "metrics.jsonl"), str(tmp_path / "c" / "curves.png"),
                      title="run")
    assert out == str(tmp_path / "c" / "curves.png")
    assert Image.open(out).size == size  # 4.2 x 3.2 inches per panel at 100 dpi
