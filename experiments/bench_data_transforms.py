"""Per-record cost of the joint NumPy transforms and of the grain loader (one core).

Run pinned to one core, e.g.::

  taskset -c 0 python experiments/bench_data_transforms.py --workdir /tmp/bench_data

Prints a table (what, input -> output size, records/s by process CPU time and by wall clock)
and writes <workdir>/bench_data_transforms.json. Records are detection-style: an RGB uint8
image, ``--objects`` boxes with instance masks and 17 keypoints each. Each transform entry is the
best of ``--repeats`` timed passes over ``--records`` records after one warm-up pass; the loader
entry times ``make_loader`` (worker_count=0, Resize + flip + jitter, batch 32) end to end.
"""
from __future__ import annotations

import json
import os
import platform
import time

import grain.python as grain
import numpy as np
from absl import app, flags

from vai_jax.data.pipeline import make_loader
from vai_jax.data.transforms import (
    ColorJitter,
    Normalize,
    RandomAffine,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
)

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "/tmp/bench_data", "Where bench_data_transforms.json is written.")
flags.DEFINE_integer("records", 32, "Records per timed pass.")
flags.DEFINE_integer("repeats", 3, "Timed passes per entry (best is reported).")
flags.DEFINE_integer("objects", 5, "Objects (boxes, masks, keypoints) per record.")
flags.DEFINE_integer("height", 375, "Input image height (a typical VOC/COCO image).")
flags.DEFINE_integer("width", 500, "Input image width.")


def make_records(n: int, h: int, w: int, m: int, *, masks: bool) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        xy = rng.uniform(0, [w - 60, h - 60], size=(m, 2))
        boxes = np.concatenate([xy, xy + 50], axis=1).astype(np.float32)
        rec = {
            "image": rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8),
            "boxes": boxes,
            "classes": np.arange(m, dtype=np.int32),
            "keypoints": np.concatenate(
                [rng.uniform(0, [w, h], size=(m, 17, 2)), np.full((m, 17, 1), 2.0)], -1
            ).astype(np.float32),
        }
        if masks:
            mk = np.zeros((m, h, w), bool)
            for i, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
                mk[i, y1:y2, x1:x2] = True
            rec["masks"] = mk
        out.append(rec)
    return out


def time_transform(name, transform, records, repeats) -> dict:
    rng = np.random.default_rng(1)
    for r in records:  # warm-up
        transform(r, rng)
    best_cpu = best_wall = float("inf")
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        for r in records:
            out = transform(r, rng)
        best_cpu = min(best_cpu, time.process_time() - c0)
        best_wall = min(best_wall, time.perf_counter() - w0)
    h, w = records[0]["image"].shape[:2]
    ho, wo = out["image"].shape[:2]
    return {"what": name, "in": f"{h}x{w}", "out": f"{ho}x{wo}", "masks": "masks" in records[0],
            "records_per_s_cpu": len(records) / best_cpu, "records_per_s_wall": len(records) / best_wall}


def time_loader(records, repeats) -> dict:
    transforms = [Resize((224, 224)), RandomHorizontalFlip(0.5), ColorJitter(0.2, 0.2, 0.2)]
    n = len(records)
    best_cpu = best_wall = float("inf")
    for r in range(repeats + 1):
        loader = make_loader(records, batch_size=min(32, n), seed=r, num_epochs=1, transforms=transforms,
                             max_objects=8, shard_options=grain.NoSharding(),
                             read_options=grain.ReadOptions(num_threads=1, prefetch_buffer_size=8))
        c0, w0 = time.process_time(), time.perf_counter()
        count = sum(b["image"].shape[0] for b in loader)
        if r:  # the first pass is the warm-up
            best_cpu = min(best_cpu, time.process_time() - c0)
            best_wall = min(best_wall, time.perf_counter() - w0)
    h, w = records[0]["image"].shape[:2]
    return {"what": "make_loader(Resize+flip+jitter, pad, batch)", "in": f"{h}x{w}", "out": "224x224",
            "masks": "masks" in records[0], "records_per_s_cpu": count / best_cpu,
            "records_per_s_wall": count / best_wall}


def main(argv):
    del argv
    os.makedirs(FLAGS.workdir, exist_ok=True)
    h, w, m, n = FLAGS.height, FLAGS.width, FLAGS.objects, FLAGS.records
    plain = make_records(n, h, w, m, masks=False)
    with_masks = make_records(n, h, w, m, masks=True)
    entries = [
        ("RandomHorizontalFlip(1.0)", RandomHorizontalFlip(1.0), plain),
        ("Resize(224, 224)", Resize((224, 224)), plain),
        ("RandomResizedCrop(224)", RandomResizedCrop((224, 224)), plain),
        ("RandomAffine(rot 30, scale, flip) -> 256", RandomAffine(30.0, (0.75, 1.25), (0.1, 0.1), 0.5, out_size=(256, 256)), plain),
        ("RandomAffine(rot 30, scale, flip) -> 256", RandomAffine(30.0, (0.75, 1.25), (0.1, 0.1), 0.5, out_size=(256, 256)), with_masks),
        ("ColorJitter(0.4, 0.4, 0.4)", ColorJitter(0.4, 0.4, 0.4), plain),
        ("Normalize()", Normalize(), plain),
    ]
    rows = []
    print(f"{'what':<44} {'in':>8} {'out':>8} {'masks':>6} {'rec/s (cpu)':>12} {'rec/s (wall)':>13}")

    def show(row):
        rows.append(row)
        print(f"{row['what']:<44} {row['in']:>8} {row['out']:>8} {str(row['masks']):>6} "
              f"{row['records_per_s_cpu']:>12.1f} {row['records_per_s_wall']:>13.1f}", flush=True)

    for name, t, recs in entries:
        show(time_transform(name, t, recs, FLAGS.repeats))
    show(time_loader(plain, FLAGS.repeats))
    path = os.path.join(FLAGS.workdir, "bench_data_transforms.json")
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    with open(path, "w") as f:
        json.dump({"machine": platform.processor() or platform.machine(), "cpu_affinity": affinity,
                   "load_average": os.getloadavg(), "objects": m, "results": rows}, f, indent=2)
    print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main)
