"""experiments/classifier end to end: outputs, tfds cifar10 under mock_data, and
bit-identical resume after ``kill -9``."""
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "experiments", "classifier", "main.py")

from experiments.classifier import train as train_classifier
from experiments.classifier.configs import cifar10 as classifier_cifar10
from experiments.classifier.configs import default as classifier_shapes
from vai_jax.train.checkpoint import restore_params
from vai_jax.train.metrics_writer import read_metrics
from tests.subprocess_env import subprocess_env


def test_runlocal_shapes_writes_all_outputs(tmp_path):
    cfg = classifier_shapes.get_config("runlocal")
    cfg.num_steps, cfg.eval_every, cfg.checkpoint_every, cfg.progress = 10, 5, 5, False
    summary = train_classifier.train_and_evaluate(cfg, str(tmp_path))
    assert summary["steps"] == 10 and 0.0 <= summary["test_top1"] <= 1.0
    assert summary["devices"].startswith("8 x")
    records = read_metrics(str(tmp_path / "metrics.jsonl"))
    train = [r for r in records if r["split"] == "train"]
    evals = [r for r in records if r["split"] == "eval"]
    assert [r["step"] for r in evals] == [5, 10]
    for key in ("loss", "accuracy", "learning_rate", "grad_norm", "images_per_sec"):
        assert all(key in r for r in train), key
    assert os.listdir(tmp_path / "tensorboard")[0].startswith("events.out.tfevents")
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["10", "5"]
    with open(tmp_path / "curves.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["test_top1"] == summary["test_top1"] and saved["config"]["model"]["name"] == "tiny_cnn"


def test_dataset_cifar10_under_mock_data(tmp_path):
    """``--config.dataset=cifar10`` on the default config's runlocal variant, tfds mocked."""
    tfds = pytest.importorskip("tensorflow_datasets")
    cfg = classifier_shapes.get_config("runlocal")
    cfg.dataset, cfg.num_steps, cfg.progress, cfg.eval_topk = "cifar10", 4, False, (1, 5)
    with tfds.testing.mock_data(num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE):
        summary = train_classifier.train_and_evaluate(cfg, str(tmp_path))
    assert summary["dataset"] == "cifar10" and summary["steps"] == 4
    assert summary["test_count"] == 40 and 0.0 <= summary["test_top5"] <= 1.0


@pytest.mark.parametrize("variant", [None, "vgg", "runlocal"])
def test_cifar10_config_variants(variant):
    cfg = classifier_cifar10.get_config(variant)
    assert cfg.dataset == "cifar10" and cfg.batch_size % 8 == 0
    assert cfg.plateau.enabled == (variant == "vgg")
    with pytest.raises(ValueError, match="unknown config variant"):
        classifier_cifar10.get_config("nope")


# 12 steps of 16 of the 72 records: 2.7 epochs, so the resumed run crosses an epoch boundary;
# a checkpoint every step, so the kill after step 3's lands with steps still to run.
NUM_STEPS = 12


def _command(workdir):
    return [sys.executable, SCRIPT, f"--workdir={workdir}",
            "--config=" + os.path.join(ROOT, "experiments/classifier/configs/default.py:runlocal"),
            f"--config.num_steps={NUM_STEPS}", "--config.checkpoint_every=1",
            "--config.eval_every=0", "--config.keep_checkpoints=3",
            "--config.num_train_examples=72", "--config.batch_size=16", "--config.progress=False"]


def _env():
    return subprocess_env(devices=2)


def test_kill9_resume_is_bit_identical(tmp_path):
    """Uninterrupted run vs a run killed with SIGKILL after a durable checkpoint and resumed:
    identical params, BN statistics, optimiser state and rng at the last step. The data set
    (72 records, batch 16) wraps around epochs, dropout and augmentation use the rng."""
    full, broken = tmp_path / "full", tmp_path / "broken"
    ref = subprocess.Popen(_command(full), env=_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    victim = subprocess.Popen(_command(broken), env=_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    ckpt = broken / "checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline and victim.poll() is None:
        done = [int(d) for d in os.listdir(ckpt) if d.isdigit()] if ckpt.exists() else []
        if done and max(done) >= 3:
            break
        time.sleep(0.02)
    assert victim.poll() is None, "the run finished (or died) before it could be killed"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert not (broken / "results.json").exists()
    killed_at = max(int(d) for d in os.listdir(ckpt) if d.isdigit())
    assert 3 <= killed_at < NUM_STEPS
    resumed = subprocess.run(_command(broken), env=_env(), capture_output=True, text=True,
                             timeout=240)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert "resumed from checkpoint step" in resumed.stdout + resumed.stderr
    out = ref.communicate(timeout=240)[0]
    assert ref.returncode == 0, out[-3000:]
    a, b = restore_params(str(full / "checkpoints"), step=NUM_STEPS), restore_params(
        str(broken / "checkpoints"), step=NUM_STEPS)
    assert int(a["step"]) == int(b["step"]) == NUM_STEPS
    flat_a = jax.tree_util.tree_flatten_with_path(a)[0]
    flat_b = jax.tree.leaves(b)
    assert len(flat_a) == len(flat_b)
    for (path, x), y in zip(flat_a, flat_b):
        np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))
