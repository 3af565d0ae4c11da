r"""vai_jax against PyTorch / torchvision, side by side: training steps or inference passes of the
same models on the same batches, timed in alternation, as a markdown table and JSON.

  PYTHONPATH=/opt/torchref python experiments/bench_train.py --workdir workdir/benchmarks
  python experiments/bench_train.py --mode inference --workdir workdir/benchmarks
  python experiments/bench_train.py --models resnet50 --variants default,onednn,lax_conv

Each model's sides (vai_jax under every ``--variants`` entry; PyTorch in NCHW and channels-last
when torch and torchvision are importable) run in their own worker processes
(:mod:`experiments.bench_pairs`; models, twins and batches are described there). Every worker
makes ``--warmup`` untimed calls (the first compiles), then the rounds alternate them call by
call, one computing
at a time (each round starting with the next worker): ``--rounds`` calls each; the table gives the median wall time per call, the range,
the median process-CPU time, images/s and the ratio to the fastest PyTorch side. The JSON
(``<workdir>/bench_<mode>.json``) holds every call's times, the first-call times and the
machine with its load average before and after each model. On a shared machine the ratios of
one run are the meaningful figures: the sides saw the same load.

Variants (``VARIANTS``): XLA:CPU options set through ``XLA_FLAGS`` in the worker, and the
convolutions' formulation (:func:`experiments.bench_pairs.set_convolutions`): ``lax_conv``
(every convolution ``lax.conv_general_dilated``), ``rewrite_all`` (every ``nn.Conv`` through
:mod:`vai_jax.ops.conv`: 1x1 as matrix products, depthwise as sums of taps; ``default`` is the
library as built). ``--quick``: tiny sizes (classifiers 32x32, batch
2), one warm-up call and one round (a smoke test).
"""
from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile

from absl import app, flags

from experiments import bench_pairs
from vai_jax.analysis.timing import machine_info
from vai_jax.viz.tables import markdown_table

# name: (XLA_FLAGS added in the worker, convolutions: bench_pairs.set_convolutions).
VARIANTS = {
    "default": ("", "library"),
    "lax_conv": ("", "lax"),
    "rewrite_all": ("", "rewrite_all"),
    "onednn": ("--xla_cpu_use_onednn=true", "library"),
    "no_xnnpack": ("--xla_cpu_use_xnnpack=false", "library"),
    "xnn_fusion": ("--xla_cpu_experimental_xnn_fusion_type=dot,eltwise,reduce", "library"),
    "xnn_graph": ("--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY",
                  "library"),
    "ynn_fusion": ("--xla_cpu_experimental_ynn_fusion_type=dot,eltwise,reduce", "library"),
    "one_thread_eigen": ("--xla_cpu_multi_thread_eigen=false", "library"),
    "vector_512": ("--xla_cpu_prefer_vector_width=512", "library"),
}
DEFAULT_MODELS = {"train": "resnet50,resnet32_cifar,mobilenet_v2,faster_rcnn_shapes",
                  "inference": "resnet50,resnet32_cifar,mobilenet_v2,fasterrcnn_resnet50_fpn"}

_WORKDIR = flags.DEFINE_string("workdir", "workdir/benchmarks",
                               "Where bench_<mode>.json and .md are written.")
_MODE = flags.DEFINE_enum("mode", "train", bench_pairs.MODES, "Training steps or inference.")
_MODELS = flags.DEFINE_list("models", None, "Models (experiments/bench_pairs.py); default: "
                            f"{DEFAULT_MODELS['train']} (train), {DEFAULT_MODELS['inference']} "
                            "(inference).")
_VARIANTS = flags.DEFINE_list("variants", ["default"], f"vai_jax variants: {sorted(VARIANTS)}.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Timed calls per side.", lower_bound=1)
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed calls per side before the rounds (the "
                               "first compiles).", lower_bound=1)
_TORCH = flags.DEFINE_bool("torch", True, "Time the PyTorch twins when torch is importable.")
_QUICK = flags.DEFINE_bool("quick", False, "Tiny sizes, one round (a smoke test).")

_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_pairs.py")


def torch_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "torchvision"))


class Worker:
    """One side of one model in a subprocess (protocol in :mod:`experiments.bench_pairs`)."""

    def __init__(self, spec: dict, label: str, env: dict):
        self.label, self.spec = label, spec
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, _WORKER, json.dumps(spec)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        self.info = self._read()

    def _read(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith("@@"):
                return json.loads(line[2:])
        self.proc.wait()
        self.log.seek(0)
        raise RuntimeError(f"the {self.label} worker for {self.spec['model']} exited with code "
                           f"{self.proc.returncode}:\n{self.log.read()[-4000:]}")

    def run(self) -> dict:
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait()
        self.log.close()


def worker_env(variant: str | None) -> dict:
    env = dict(os.environ)
    if variant is not None:
        flags_, convolutions = VARIANTS[variant]
        env["XLA_FLAGS"] = " ".join(filter(None, [env.get("XLA_FLAGS", ""), flags_]))
        env["VAI_JAX_BENCH_CONV"] = convolutions
    return env


def time_model(name: str, mode: str, variants, *, rounds: int, warmup: int, quick: bool,
               with_torch: bool) -> dict:
    """Start the model's workers one after the other, alternate them for ``rounds`` calls;
    returns the model's record (times per side, first calls, load before and after)."""
    entry = bench_pairs.model_entry(name, quick=quick)
    base = dict(model=name, mode=mode, warmup=warmup, **entry)
    sides = [(f"vai_jax[{v}]" if len(variants) > 1 else "vai_jax", "vai_jax", v)
             for v in variants]
    if with_torch and bench_pairs.has_twin(name, mode):
        sides += [("torch", "torch", None), ("torch channels_last", "torch_cl", None)]
    load_before = machine_info()["load_average"]
    workers = []
    try:
        for label, side, variant in sides:
            workers.append(Worker(dict(base, side=side), label, worker_env(variant)))
        times = {w.label: [] for w in workers}
        for r in range(rounds):  # each round starts with the next worker
            for w in workers[r % len(workers):] + workers[:r % len(workers)]:
                times[w.label].append(w.run())
    finally:
        for w in workers:
            w.close()
    return {**base, "rounds": rounds, "times": times,
            "first_call_s": {w.label: w.info["first_call_s"] for w in workers},
            "workers": {w.label: w.info for w in workers},
            "load_average_before": load_before,
            "load_average_after": machine_info()["load_average"]}


def summary_rows(record: dict) -> list[dict]:
    """Per side: median / min / max wall s, median CPU s, images/s and the ratio to the fastest
    PyTorch side (> 1: slower than PyTorch)."""
    med = {k: statistics.median(t["wall_s"] for t in v) for k, v in record["times"].items()}
    torch_sides = [med[k] for k in med if k.startswith("torch")]
    best_torch = min(torch_sides) if torch_sides else None
    rows = []
    for k, v in record["times"].items():
        walls = [t["wall_s"] for t in v]
        rows.append({"model": record["model"], "side": k, "batch_size": record["batch_size"],
                     "image_size": record["image_size"], "median_s": med[k],
                     "min_s": min(walls), "max_s": max(walls),
                     "median_cpu_s": statistics.median(t["cpu_s"] for t in v),
                     "images_per_s": record["batch_size"] / med[k],
                     "first_call_s": record["first_call_s"][k],
                     "vs_torch": med[k] / best_torch if best_torch else None})
    return rows


def table(rows: list[dict], records: list[dict]) -> str:
    loads = {r["model"]: f"{r['load_average_before'][0]:.1f} / {r['load_average_after'][0]:.1f}"
             if r["load_average_before"] else "-" for r in records}
    return markdown_table(
        ["model", "batch x size", "side", "median s", "range s", "CPU s", "images/s",
         "vs best PyTorch", "first call s", "load before / after"],
        [[r["model"], f"{r['batch_size']} x {r['image_size']}", r["side"],
          f"{r['median_s']:.3f}", f"{r['min_s']:.3f} - {r['max_s']:.3f}",
          f"{r['median_cpu_s']:.2f}", f"{r['images_per_s']:.1f}",
          f"{r['vs_torch']:.2f}x" if r["vs_torch"] else "-", f"{r['first_call_s']:.1f}",
          loads[r["model"]]] for r in rows],
        align="lllrrrrrrl")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    mode, quick = _MODE.value, _QUICK.value
    models = _MODELS.value or DEFAULT_MODELS[mode].split(",")
    unknown = [v for v in _VARIANTS.value if v not in VARIANTS]
    if unknown or not _VARIANTS.value:
        raise app.UsageError(f"--variants must name entries of {sorted(VARIANTS)}; got "
                             f"{_VARIANTS.value}")
    for name in models:
        bench_pairs.check_model(name, mode)
    with_torch = _TORCH.value and torch_available()
    if _TORCH.value and not with_torch:
        print("torch / torchvision not importable: vai_jax only "
              "(PYTHONPATH=/opt/torchref or pip install -e '.[ref]' for the PyTorch side)")
    rounds, warmup = (1, 1) if quick else (_ROUNDS.value, _WARMUP.value)
    machine = machine_info()
    records = []
    for name in models:
        records.append(time_model(name, mode, _VARIANTS.value, rounds=rounds, warmup=warmup,
                                  quick=quick, with_torch=with_torch))
        print(f"{name}: done (load average {records[-1]['load_average_after']})", flush=True)
    rows = [row for r in records for row in summary_rows(r)]
    text = table(rows, records)
    print(text)
    os.makedirs(_WORKDIR.value, exist_ok=True)
    stem = os.path.join(_WORKDIR.value, f"bench_{mode}")
    with open(stem + ".json", "w") as f:
        json.dump({"machine": machine, "machine_after": machine_info(), "mode": mode,
                   "quick": quick, "variants": {v: VARIANTS[v] for v in _VARIANTS.value},
                   "results": rows, "records": records}, f, indent=1)
    with open(stem + ".md", "w") as f:
        f.write(text + "\n")
    print(f"wrote {stem}.json and {stem}.md")


if __name__ == "__main__":
    app.run(main)
