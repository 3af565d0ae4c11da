"""Generation speed of the built-in shapes data set (images per second on one core).

Run pinned to one core, e.g.::

  taskset -c 0 python experiments/bench_shapes.py --workdir /tmp/bench_shapes

Prints a table (task, image size, batch size, images/s by process CPU time and by wall clock)
and writes <workdir>/bench_shapes.json. The CPU-time figure is the cost of generation on one core;
the wall-clock figure also counts time the process waited for a core on a busy machine. Each
entry is the best of ``--repeats`` timed calls of ``ShapesDataset.get_batch`` after one warm-up.
"""
from __future__ import annotations

import json
import os
import platform
import time

from absl import app, flags

from vai_jax.data.shapes import TASKS, ShapesDataset

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "/tmp/bench_shapes", "Where bench_shapes.json is written.")
flags.DEFINE_list("tasks", list(TASKS), "Tasks to time.")
flags.DEFINE_list("image_sizes", ["64", "128"], "Square image sizes to time.")
flags.DEFINE_integer("batch_size", 256, "Images per get_batch call.")
flags.DEFINE_integer("repeats", 5, "Timed calls per entry (best is reported).")


def time_entry(task: str, image_size: int, batch_size: int, repeats: int) -> dict:
    ds = ShapesDataset(task, image_size=image_size, num_examples=batch_size * (repeats + 1))
    ds.get_batch(range(batch_size))  # warm-up
    best_cpu = best_wall = float("inf")
    for r in range(1, repeats + 1):
        idx = range(r * batch_size, (r + 1) * batch_size)
        c0, w0 = time.process_time(), time.perf_counter()
        ds.get_batch(idx)
        best_cpu = min(best_cpu, time.process_time() - c0)
        best_wall = min(best_wall, time.perf_counter() - w0)
    return {
        "task": task, "image_size": image_size, "batch_size": batch_size,
        "images_per_s_cpu": batch_size / best_cpu, "images_per_s_wall": batch_size / best_wall,
    }


def main(argv):
    del argv
    os.makedirs(FLAGS.workdir, exist_ok=True)
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    rows = []
    print(f"{'task':<16} {'size':>5} {'batch':>6} {'img/s (cpu)':>12} {'img/s (wall)':>13}")
    for task in FLAGS.tasks:
        for size in (int(s) for s in FLAGS.image_sizes):
            row = time_entry(task, size, FLAGS.batch_size, FLAGS.repeats)
            rows.append(row)
            print(f"{task:<16} {size:>5} {FLAGS.batch_size:>6} {row['images_per_s_cpu']:>12.0f} "
                  f"{row['images_per_s_wall']:>13.0f}", flush=True)
    path = os.path.join(FLAGS.workdir, "bench_shapes.json")
    with open(path, "w") as f:
        json.dump({"machine": platform.processor() or platform.machine(), "cpu_affinity": affinity,
                   "load_average": os.getloadavg(), "results": rows}, f, indent=2)
    print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main)
