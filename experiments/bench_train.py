r"""Training-step throughput of a classifier on this machine (images/s), as a table and JSON.

  python experiments/bench_train.py --model resnet32_cifar --image_size 32 --batch_size 128

Times ``--num_steps`` jitted data-parallel train steps (SGD-momentum, BatchNorm, the default
config's augmentation) after ``--warmup_steps`` (compilation excluded) and reports wall-clock and
process-CPU seconds per step. On a shared machine the CPU time is the steadier figure: on an
otherwise idle machine the wall time is about CPU time / cores used.
"""
from __future__ import annotations

import json
import os
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "resnet32_cifar", "Model name (vai_jax.create_model).")
flags.DEFINE_integer("image_size", 32, "Square input size.")
flags.DEFINE_integer("batch_size", 128, "Global batch size.")
flags.DEFINE_integer("num_classes", 6, "Classifier width.")
flags.DEFINE_integer("warmup_steps", 2, "Untimed steps (compilation).")
flags.DEFINE_integer("num_steps", 5, "Timed steps.")
flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16", "float16"], "Compute dtype.")
flags.DEFINE_string("out", "", "JSON output path ('' = none).")


def main(argv):
    del argv
    import jax
    import numpy as np

    import vai_jax
    from vai_jax.classification.losses import softmax_cross_entropy
    from vai_jax.train import parallel
    from vai_jax.train.augment import make_preprocess
    from vai_jax.train.optim import make_optimizer
    from vai_jax.train.precision import compute_dtype
    from vai_jax.train.state import TrainState, init_variables
    from vai_jax.train.step import make_train_step

    model = vai_jax.create_model(FLAGS.model, num_classes=FLAGS.num_classes,
                                 dtype=compute_dtype(FLAGS.precision))
    shape = (FLAGS.image_size, FLAGS.image_size, 3)
    variables = init_variables(model, (1,) + shape, rng=jax.random.PRNGKey(0))
    mesh = parallel.make_mesh()
    state = parallel.replicate(TrainState.create(
        apply_fn=model.apply, variables=variables,
        tx=make_optimizer("sgd", learning_rate=0.1, momentum=0.9, weight_decay=5e-4),
        rng=jax.random.PRNGKey(1)), mesh)
    step = parallel.data_parallel(
        make_train_step(softmax_cross_entropy, preprocess_fn=make_preprocess()), mesh)
    r = np.random.default_rng(0)
    batch = {"image": r.integers(0, 256, (FLAGS.batch_size,) + shape).astype(np.uint8),
             "label": r.integers(0, FLAGS.num_classes, FLAGS.batch_size).astype(np.int32)}
    for _ in range(FLAGS.warmup_steps):
        state, m = step(state, batch)
    jax.block_until_ready(m)
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(FLAGS.num_steps):
        state, m = step(state, batch)
    jax.block_until_ready(m)
    wall = (time.perf_counter() - w0) / FLAGS.num_steps
    cpu = (time.process_time() - c0) / FLAGS.num_steps
    row = {"model": FLAGS.model, "image_size": FLAGS.image_size, "batch_size": FLAGS.batch_size,
           "precision": FLAGS.precision, "devices": f"{jax.device_count()} x "
           f"{jax.devices()[0].device_kind}", "cpu_count": os.cpu_count(),
           "wall_s_per_step": wall, "cpu_s_per_step": cpu,
           "images_per_s_wall": FLAGS.batch_size / wall,
           "images_per_cpu_s": FLAGS.batch_size / cpu}
    print("| model | size | batch | precision | wall s/step | CPU s/step | images/s (wall) |"
          " images per CPU-s |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {row['model']} | {row['image_size']} | {row['batch_size']} | {row['precision']} "
          f"| {wall:.3f} | {cpu:.3f} | {row['images_per_s_wall']:.1f} | "
          f"{row['images_per_cpu_s']:.1f} |")
    if FLAGS.out:
        with open(FLAGS.out, "w") as f:
            json.dump(row, f, indent=2)


if __name__ == "__main__":
    app.run(main)
