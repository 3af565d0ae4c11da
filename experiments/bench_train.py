r"""Training-step throughput of a classifier on this machine (images/s), as a table and JSON.

  python experiments/bench_train.py --workdir workdir/benchmarks --model resnet32_cifar --image_size 32 --batch_size 128

Times ``--num_steps`` jitted data-parallel training steps (SGD-momentum, BatchNorm, the
classifier experiment's augmentation: flips and 4-pixel shifts) after ``--warmup_steps``
(compilation excluded) with :func:`vai_jax.analysis.timing.time_calls`; reports wall-clock and
process-CPU seconds per step and writes ``<workdir>/bench_train.json``. On a shared machine the
CPU time is the steadier figure: on an otherwise idle one the wall time is about the CPU time
divided by the cores in use. ``--quick``: batch 8, one warm-up and one timed step (a smoke
test; with ``--model squeezenet1_1 --image_size 64`` it takes seconds).
"""
from __future__ import annotations

import json
import os

import jax
import numpy as np
from absl import app, flags

import vai_jax
from vai_jax.analysis.timing import machine_info, time_calls
from vai_jax.classification.losses import softmax_cross_entropy
from vai_jax.train import parallel
from vai_jax.train.augment import make_preprocess
from vai_jax.train.optim import make_optimizer
from vai_jax.train.precision import compute_dtype
from vai_jax.train.state import TrainState, init_variables
from vai_jax.train.step import make_train_step
from vai_jax.viz.tables import markdown_table

_WORKDIR = flags.DEFINE_string("workdir", "workdir/benchmarks",
                               "Where bench_train.json is written.")
_MODEL = flags.DEFINE_string("model", "resnet32_cifar", "Model name (vai_jax.create_model).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 32, "Square input size.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Global batch size.")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", 6, "Classifier width.")
_WARMUP_STEPS = flags.DEFINE_integer("warmup_steps", 2, "Untimed steps (compilation).")
_NUM_STEPS = flags.DEFINE_integer("num_steps", 5, "Timed steps.", lower_bound=1)
_PRECISION = flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16", "float16"],
                               "Compute dtype.")
_QUICK = flags.DEFINE_bool("quick", False, "Batch 8, one warm-up and one timed step.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    size, batch_size = _IMAGE_SIZE.value, _BATCH_SIZE.value
    warmup_steps, num_steps = _WARMUP_STEPS.value, _NUM_STEPS.value
    if _QUICK.value:
        batch_size, warmup_steps, num_steps = 8, 1, 1
    model = vai_jax.create_model(_MODEL.value, num_classes=_NUM_CLASSES.value,
                                 dtype=compute_dtype(_PRECISION.value))
    shape = (size, size, 3)
    variables = init_variables(model, (1,) + shape, rng=jax.random.PRNGKey(0))
    mesh = parallel.make_mesh()
    parallel.check_batch_size(batch_size, mesh, "--batch_size")
    state = [parallel.replicate(TrainState.create(
        apply_fn=model.apply, variables=variables,
        tx=make_optimizer("sgd", learning_rate=0.1, momentum=0.9, weight_decay=5e-4),
        rng=jax.random.PRNGKey(1)), mesh)]
    step = parallel.data_parallel(
        make_train_step(softmax_cross_entropy, preprocess_fn=make_preprocess()), mesh)
    r = np.random.default_rng(0)
    batch = {"image": r.integers(0, 256, (batch_size,) + shape).astype(np.uint8),
             "label": r.integers(0, _NUM_CLASSES.value, batch_size).astype(np.int32)}

    def one_step():
        state[0], metrics = step(state[0], batch)
        return metrics

    t = time_calls(one_step, num_steps=num_steps, warmup_steps=warmup_steps)
    row = {"model": _MODEL.value, "image_size": size, "batch_size": batch_size,
           "precision": _PRECISION.value, "wall_s_per_step": t.wall_s,
           "cpu_s_per_step": t.cpu_s, "images_per_s_wall": batch_size / t.wall_s,
           "images_per_cpu_s": batch_size / t.cpu_s}
    print(markdown_table(
        ["model", "size", "batch", "precision", "wall s/step", "CPU s/step", "images/s (wall)",
         "images per CPU-s"],
        [[row["model"], size, batch_size, row["precision"], f"{t.wall_s:.3f}", f"{t.cpu_s:.3f}",
          f"{row['images_per_s_wall']:.1f}", f"{row['images_per_cpu_s']:.1f}"]],
        align="llrlrrrr"))
    os.makedirs(_WORKDIR.value, exist_ok=True)
    path = os.path.join(_WORKDIR.value, "bench_train.json")
    with open(path, "w") as f:
        json.dump({"machine": machine_info(), "warmup_steps": warmup_steps,
                   "num_steps": num_steps, "results": [row]}, f, indent=2)
    print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main)
