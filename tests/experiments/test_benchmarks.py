"""experiments/bench_*.py in their ``--quick`` smoke mode: each prints its markdown table and
writes its JSON (rows and the machine description)."""
import importlib.util
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(name, workdir, *args):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "experiments", f"{name}.py"), "--quick",
         f"--workdir={workdir}", *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    with open(os.path.join(workdir, f"{name}.json")) as f:
        return done.stdout, json.load(f)


def test_bench_shapes(tmp_path):
    out, saved = _run("bench_shapes", tmp_path, "--tasks=classification,detection")
    assert "| task | size | batch | images/s (CPU time) | images/s (wall) |" in out
    assert [(r["task"], r["image_size"], r["batch_size"]) for r in saved["results"]] == [
        ("classification", 32, 16), ("detection", 32, 16)]
    assert saved["machine"]["cpu_count"] >= 1


def test_bench_data_transforms(tmp_path):
    out, saved = _run("bench_data_transforms", tmp_path)
    assert "| Resize(224, 224) | 64x80 | 224x224 | False |" in out
    assert len(saved["results"]) == 8 and saved["results"][-1]["out"] == "224x224"
    assert all(r["records_per_s_cpu"] > 0 for r in saved["results"])


def test_bench_train(tmp_path):
    out, saved = _run("bench_train", tmp_path, "--model=squeezenet1_1", "--image_size=64")
    assert "| squeezenet1_1 | 64 | 8 | float32 |" in out
    row = saved["results"][0]
    assert row["wall_s_per_step"] > 0 and saved["num_steps"] == 1


def test_bench_ops(tmp_path):
    out, saved = _run("bench_ops", tmp_path)
    rows = saved["median_ms"]
    assert "roi_align[gather-separable (default, S>0; custom VJP chunk=4)] fwd+bwd" in rows
    assert "roi_pool[scan chunk=8 (default)] fwd+bwd" in rows
    assert "nms N=100 (thr 0.7, max 1000)" in rows and "| case | median ms |" in out
    assert saved["meta"]["case"].startswith("features 2x10x12x8 f32, 16 boxes")
    if importlib.util.find_spec("torchvision") is not None:
        assert "roi_align[torchvision] fwd" in rows


def test_bench_detection(tmp_path):
    out, saved = _run("bench_detection", tmp_path)
    assert "| model | median s / image | range s | first call s | detections |" in out
    assert saved["seconds"]["vai_jax (jit)"][0] > 0 and saved["kwargs"]["min_size"] == 128
    assert saved["machine"]["load_average"] is not None
