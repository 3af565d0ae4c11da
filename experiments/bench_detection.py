r"""Inference time per image of torchvision's ``fasterrcnn_resnet50_fpn`` converted to vai_jax
(jit-compiled) and of torchvision itself (eager, ``torch.no_grad``), side by side on the CPU.

  python experiments/bench_detection.py --workdir workdir/benchmarks

One photograph (``tests/detection/torchvision/astronaut.jpg``, 512 x 512, resized by the model's
transform to ``--min_size`` / ``--max_size``, 800 / 1333 by default: 800 x 800), batch 1, the
same seeded random weights in both (inference time does not depend on their values beyond the
number of detections, which both report). Rounds alternate the two (vai_jax then torchvision,
``--rounds`` times, after one warm-up call each, which for vai_jax includes compilation); the
table gives the median and the spread of the rounds, and the JSON the machine with its load
average before and after. torchvision runs with as many threads as the process has cores.
``--quick``: 128 / 160 input sizes, 100 region proposals (of 100 anchors per FPN level) instead
of 1,000, one round, torchvision skipped when it is not installed (a smoke test).
"""
from __future__ import annotations

import json
import os
import statistics
import time

import jax
import numpy as np
from absl import app, flags

from vai_jax.analysis.timing import machine_info
from vai_jax.viz.tables import markdown_table
from vai_jax.weights import detection

NAME = "fasterrcnn_resnet50_fpn"
PHOTO = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests",
                     "detection", "torchvision", "astronaut.jpg")

_WORKDIR = flags.DEFINE_string("workdir", "workdir/benchmarks",
                               "Where bench_detection.json is written.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Timed rounds (each: one call of each).",
                               lower_bound=1)
_MIN_SIZE = flags.DEFINE_integer("min_size", 800, "The transform's min_size.")
_MAX_SIZE = flags.DEFINE_integer("max_size", 1333, "The transform's max_size.")
_QUICK = flags.DEFINE_bool("quick", False, "min_size 128, max_size 160, 100 proposals, one "
                           "round.")


def random_state_dict(keys: dict, seed: int = 0) -> dict:
    """Seeded weights for torchvision's keys: kernels uniform with variance 1 / fan-in, BatchNorm
    close to the identity, biases small."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in keys.items():
        leaf = key.rsplit(".", 1)[1]
        if leaf == "running_var":
            out[key] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        elif leaf == "running_mean" or (leaf == "bias"):
            out[key] = rng.uniform(-0.1, 0.1, shape).astype(np.float32)
        elif len(shape) == 1:  # BatchNorm scale
            out[key] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        else:
            a = float(np.sqrt(3.0 / np.prod(shape[1:])))
            out[key] = rng.uniform(-a, a, shape).astype(np.float32)
    return out


def photo() -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(PHOTO).convert("RGB"), np.float32)[None] / np.float32(255.0)


def torchvision_runner(state: dict, kwargs: dict):
    """A call running torchvision's model on an NHWC batch, or None without torchvision."""
    try:
        import torch
        from torchvision.models import resnet50
        from torchvision.models.detection import FasterRCNN
        from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
        from torchvision.ops import misc
    except ImportError:
        return None, None
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    backbone = _resnet_fpn_extractor(resnet50(weights=None, norm_layer=misc.FrozenBatchNorm2d), 3)
    model = FasterRCNN(backbone, num_classes=91, **kwargs).eval()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})

    def run(images):
        with torch.no_grad():
            x = [torch.from_numpy(im.transpose(2, 0, 1).copy()) for im in images]
            return int(model(x)[0]["boxes"].shape[0])

    versions = f"torch {torch.__version__}, torchvision {__import__('torchvision').__version__}"
    return run, versions


def _timed(fn, images):
    start = time.perf_counter()
    n = fn(images)
    return time.perf_counter() - start, n


def main(argv):
    del argv
    quick = _QUICK.value
    # --quick: at 1,000 proposals the box head (12,544 x 1,024 per proposal) takes most of the run.
    kwargs = (dict(min_size=128, max_size=160, rpn_pre_nms_top_n_test=100,
                   rpn_post_nms_top_n_test=100) if quick
              else dict(min_size=_MIN_SIZE.value, max_size=_MAX_SIZE.value))
    rounds = 1 if quick else _ROUNDS.value
    load_before = machine_info()["load_average"]
    state = random_state_dict(detection.torchvision_keys(NAME))
    model, variables = detection.from_torchvision(NAME, state, **kwargs)
    apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
    images = photo()

    def run_jax(x):
        out = jax.block_until_ready(apply(variables, x))
        return int(np.asarray(out["valid"][0]).sum())

    run_torch, versions = torchvision_runner(state, kwargs)
    runners = {"vai_jax (jit)": run_jax}
    if run_torch is not None:
        runners["torchvision (eager)"] = run_torch
    warmup = {k: _timed(f, images)[0] for k, f in runners.items()}
    times = {k: [] for k in runners}
    detections = {}
    for _ in range(rounds):
        for k, f in runners.items():
            t, detections[k] = _timed(f, images)
            times[k].append(t)
    rows = []
    for k, ts in times.items():
        rows.append([k, f"{statistics.median(ts):.3f}", f"{min(ts):.3f} - {max(ts):.3f}",
                     f"{warmup[k]:.1f}", detections[k]])
    machine = machine_info()
    print(markdown_table(["model", "median s / image", "range s", "first call s", "detections"],
                         rows))
    print(f"input {images.shape[1]}x{images.shape[2]} resized with min_size {kwargs['min_size']}"
          f", max_size {kwargs['max_size']}; {rounds} rounds; load average before "
          f"{load_before}, after {machine['load_average']}")
    os.makedirs(_WORKDIR.value, exist_ok=True)
    path = os.path.join(_WORKDIR.value, "bench_detection.json")
    with open(path, "w") as f:
        json.dump({"machine": machine, "load_average_before": load_before, "model": NAME,
                   "kwargs": kwargs, "rounds": rounds, "torch": versions,
                   "seconds": times, "first_call_seconds": warmup, "detections": detections,
                   "rows": rows}, f, indent=1)
    print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main)
