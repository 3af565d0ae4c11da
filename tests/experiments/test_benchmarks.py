"""experiments/bench_*.py in their ``--quick`` smoke mode: each prints its markdown table and
writes its JSON (rows and the machine description)."""
import importlib.util
import json
import os
import subprocess
import sys

from tests.subprocess_env import subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(name, workdir, *args, quick=True):
    env = subprocess_env()  # one CPU device, XLA's fast-compiling CPU options (conftest.py)
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "experiments", f"{name}.py"),
         *(["--quick"] if quick else []), f"--workdir={workdir}", *args], env=env,
        capture_output=True, text=True, timeout=600)
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
    """Side by side: the vai_jax worker and, with torch, the PyTorch twins (NCHW and
    channels-last) of a CIFAR ResNet, one alternated round of training steps."""
    out, saved = _run("bench_train", tmp_path, "--models=resnet20_cifar")
    assert "| model | batch x size | side | median s |" in out
    rows = {r["side"]: r for r in saved["results"]}
    assert rows["vai_jax"]["median_s"] > 0 and rows["vai_jax"]["batch_size"] == 2
    record = saved["records"][0]
    assert record["mode"] == "train" and len(record["load_average_before"]) == 3
    if importlib.util.find_spec("torchvision") is not None:
        assert set(rows) == {"vai_jax", "torch", "torch channels_last"}
        assert min(r["vs_torch"] for r in rows.values() if r["side"] != "vai_jax") == 1.0
    else:
        assert set(rows) == {"vai_jax"} and rows["vai_jax"]["vs_torch"] is None


def test_bench_gpu_smoke(tmp_path):
    """Every section of the GPU benchmark at tiny sizes; without --smoke on a CPU it only says
    that there is no GPU."""
    # The run without --smoke (a process start and the check) runs alongside the smoke run.
    no_gpu = subprocess.Popen([sys.executable, os.path.join(ROOT, "experiments", "bench_gpu.py"),
                               f"--workdir={tmp_path / 'none'}"], env=subprocess_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, saved = _run("bench_gpu", tmp_path, "--smoke", quick=False)
    assert saved["smoke"] and not saved["skipped"] and not saved["errors"]
    sections = {r["section"] for r in saved["rows"]}
    assert sections == {"resnet50_train", "resnet50_inference", "roi_ops", "nms", "soft_argmax",
                        "faster_rcnn_train"}
    cases = [r["case"] for r in saved["rows"]]
    assert "roi_align fwd+bwd, plan cpu (default)" in cases
    assert "roi_pool fwd, plan accelerator" in cases
    assert all(r["value"] > 0 for r in saved["rows"])
    from experiments.bench_gpu import peak_tflops

    assert peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert peak_tflops("NVIDIA H100 PCIe") == 756.0 and peak_tflops("NVIDIA H200") == 989.0
    assert peak_tflops("NVIDIA A100-SXM4-40GB") == 312.0 and peak_tflops("cpu") is None
    stdout = no_gpu.communicate(timeout=120)[0]
    assert no_gpu.returncode == 0 and "bench_gpu: no GPU here" in stdout
    assert not (tmp_path / "none").exists()


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
    assert saved["kwargs"]["rpn_post_nms_top_n_test"] == 100
    assert saved["machine"]["load_average"] is not None
