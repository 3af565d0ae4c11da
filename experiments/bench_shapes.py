r"""Generation speed of the built-in shapes data set (images per second on one core).

  taskset -c 0 python experiments/bench_shapes.py --workdir workdir/benchmarks

Prints a table (task, image size, batch size, images/s by process CPU time and by wall clock)
and writes ``<workdir>/bench_shapes.json``. The CPU-time figure is the cost of generation on
one core; the wall-clock figure also counts the time the process waited for a core on a busy
machine. Each entry is the best of ``--repeats`` timed calls of ``ShapesDataset.get_batch``
after one warm-up. ``--quick``: 32x32, batch 16, one timed call (a smoke test).
"""
from __future__ import annotations

import json
import os
import time

from absl import app, flags

from vai_jax.analysis.timing import machine_info
from vai_jax.data.shapes import TASKS, ShapesDataset
from vai_jax.viz.tables import markdown_table

_WORKDIR = flags.DEFINE_string("workdir", "workdir/benchmarks",
                               "Where bench_shapes.json is written.")
_TASKS = flags.DEFINE_list("tasks", list(TASKS), "Tasks to time.")
_IMAGE_SIZES = flags.DEFINE_list("image_sizes", ["64", "128"], "Square image sizes to time.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 256, "Images per get_batch call.",
                                   lower_bound=1)
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per entry (the best is reported).",
                                lower_bound=1)
_QUICK = flags.DEFINE_bool("quick", False, "32x32, batch 16, one timed call.")


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
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    sizes = [int(s) for s in _IMAGE_SIZES.value]
    batch_size, repeats = _BATCH_SIZE.value, _REPEATS.value
    if _QUICK.value:
        sizes, batch_size, repeats = [32], 16, 1
    rows = [time_entry(task, size, batch_size, repeats)
            for task in _TASKS.value for size in sizes]
    print(markdown_table(
        ["task", "size", "batch", "images/s (CPU time)", "images/s (wall)"],
        [[r["task"], r["image_size"], r["batch_size"], f"{r['images_per_s_cpu']:.0f}",
          f"{r['images_per_s_wall']:.0f}"] for r in rows], align="lrrrr"))
    os.makedirs(_WORKDIR.value, exist_ok=True)
    path = os.path.join(_WORKDIR.value, "bench_shapes.json")
    with open(path, "w") as f:
        json.dump({"machine": machine_info(), "repeats": repeats, "results": rows}, f, indent=2)
    print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main)
