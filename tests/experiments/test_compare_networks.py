"""experiments/compare_networks: the timing loop, results JSON parsing, table, plot and the
whole run (counts only)."""
import dataclasses
import json

import flax.linen as nn
import pytest

from experiments.compare_networks import plots
from experiments.compare_networks import run as cn
from experiments.compare_networks.configs import cpu as cpu_config
from experiments.compare_networks.configs import default as default_config


class _TinyNet(nn.Module):
    """Backbone-shaped: ``(logits, features)``, BatchNorm statistics and dropout."""

    num_classes: int = 5

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = nn.Conv(4, (3, 3), strides=2)(x)
        x = nn.BatchNorm(use_running_average=not train)(x)
        x = nn.Dropout(0.5, deterministic=not train)(nn.relu(x))
        return nn.Dense(self.num_classes)(x.mean((1, 2))), {"stage1": x}


def test_measure_throughput_runs_inference_and_train_step():
    infer, train = cn.measure_throughput(_TinyNet(), image_size=8, batch_size=2, num_classes=5,
                                         num_steps=2, warmup_steps=1, train=True, seed=0)
    assert infer > 0 and train > 0
    infer, train = cn.measure_throughput(_TinyNet(), image_size=8, batch_size=2, num_classes=5,
                                         num_steps=1, warmup_steps=1, train=False, seed=0)
    assert infer > 0 and train is None


def test_load_trained_results(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"a": 76.1, "b": 0.5, "c": {"top1": 91.0, "dataset": "cifar10"}}))
    got = cn.load_trained_results(str(path))
    assert got["a"] == (pytest.approx(0.761), None)
    assert got["b"] == (0.5, None)
    assert got["c"] == (pytest.approx(0.91), "cifar10")
    assert cn.load_trained_results(None) == {}
    classifier = tmp_path / "results.json"  # what experiments/classifier writes
    classifier.write_text(json.dumps({"model": "resnet20_cifar", "dataset": "cifar10",
                                      "test_top1": 0.912, "num_params": 1}))
    both = cn.load_trained_results([str(path), str(classifier)])
    assert both["resnet20_cifar"] == (0.912, "cifar10") and both["a"][0] == pytest.approx(0.761)
    path.write_text(json.dumps({"a": {"loss": 1.0}}))
    with pytest.raises(ValueError, match="trained_results"):
        cn.load_trained_results(str(path))


def test_markdown_and_plot(tmp_path):
    meta = dict(image_size=64, batch_size=8, num_steps=3, warmup_steps=2, device="CPU",
                jax_version="x")
    results = [cn.Result("alpha", 1_500_000, 2_000_000_000, 10.0, 3.0, 0.7, "cifar10"),
               cn.Result("beta", 60_000_000, 700_000_000, 20.0, None)]
    md = cn.to_markdown(results, meta)
    assert "| alpha | 1.50 | 2.000 | 10.0 | 3.0 | 70.0% (cifar10) |" in md
    assert "| beta | 60.00 | 0.700 | 20.0 | - | - |" in md
    for res in (results, [dataclasses.replace(r, top1=None) for r in results]):
        out = tmp_path / "c.png"
        plots.comparison(res, meta, str(out))
        assert out.stat().st_size > 1000
        out.unlink()



def test_run_counts_only(tmp_path):
    """``num_steps=0``: exact counts for every model (no compilation), the files written, a
    model too deep for the input size listed as skipped."""
    cfg = default_config.get_config()
    cfg.models, cfg.image_size, cfg.num_steps = ("resnet20_cifar", "alexnet"), 32, 0
    cfg.num_classes = 10
    out = cn.run(cfg, str(tmp_path))
    assert [r.model for r in out["results"]] == ["resnet20_cifar"]
    assert out["results"][0].params == 269_722  # He et al. (2016): 0.27 M
    assert "alexnet" in out["meta"]["skipped"]
    assert "| resnet20_cifar | 0.27 |" in (tmp_path / "comparison.md").read_text()
    saved = json.loads((tmp_path / "comparison.json").read_text())
    assert saved["results"][0]["infer_images_per_s"] is None
    assert (tmp_path / "comparison.png").stat().st_size > 1000


def test_cpu_config_is_the_default_at_cpu_size():
    cpu, default = cpu_config.get_config(), default_config.get_config()
    assert (cpu.image_size, cpu.batch_size, cpu.num_steps) == (96, 8, 3)
    assert cpu.models == default.models and cpu.warmup_steps == default.warmup_steps == 2
