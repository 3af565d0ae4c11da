r"""Per-record cost of the joint NumPy transforms and of the grain loader (one core).

  taskset -c 0 python experiments/bench_data_transforms.py --workdir workdir/benchmarks

Prints a table (what, input -> output size, records/s by process CPU time and by wall clock)
and writes ``<workdir>/bench_data_transforms.json``. Records are detection-style: an RGB uint8
image, ``--objects`` boxes with instance masks and 17 keypoints each. Each transform entry is
the best of ``--repeats`` timed passes over ``--records`` records after one warm-up pass; the
loader entry times ``make_loader`` (worker_count=0, Resize + flip + jitter, batch 32) end to
end. ``--quick``: 2 records of 64x80 with 2 objects, one timed pass (a smoke test).
"""
from __future__ import annotations

import json
import os
import time

import grain.python as grain
import numpy as np
from absl import app, flags

from vai_jax.analysis.timing import machine_info
from vai_jax.data.pipeline import make_loader
from vai_jax.data.transforms import (
    ColorJitter,
    Normalize,
    RandomAffine,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
)
from vai_jax.viz.tables import markdown_table

_WORKDIR = flags.DEFINE_string("workdir", "workdir/benchmarks",
                               "Where bench_data_transforms.json is written.")
_RECORDS = flags.DEFINE_integer("records", 32, "Records per timed pass.", lower_bound=1)
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed passes per entry (the best is reported).",
                                lower_bound=1)
_OBJECTS = flags.DEFINE_integer("objects", 5, "Objects (boxes, masks, keypoints) per record.")
_HEIGHT = flags.DEFINE_integer("height", 375, "Input image height (a typical VOC/COCO image).")
_WIDTH = flags.DEFINE_integer("width", 500, "Input image width.")
_QUICK = flags.DEFINE_bool("quick", False, "2 records of 64x80 with 2 objects, one timed pass.")


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
            "records_per_s_cpu": len(records) / best_cpu,
            "records_per_s_wall": len(records) / best_wall}


def time_loader(records, repeats) -> dict:
    transforms = [Resize((224, 224)), RandomHorizontalFlip(0.5), ColorJitter(0.2, 0.2, 0.2)]
    n = len(records)
    best_cpu = best_wall = float("inf")
    for r in range(repeats + 1):
        loader = make_loader(records, batch_size=min(32, n), seed=r, num_epochs=1,
                             transforms=transforms, max_objects=8, shard_options=grain.NoSharding(),
                             read_options=grain.ReadOptions(num_threads=1, prefetch_buffer_size=8))
        c0, w0 = time.process_time(), time.perf_counter()
        count = sum(b["image"].shape[0] for b in loader)
        if r:  # the first pass is the warm-up
            best_cpu = min(best_cpu, time.process_time() - c0)
            best_wall = min(best_wall, time.perf_counter() - w0)
    h, w = records[0]["image"].shape[:2]
    return {"what": "make_loader(Resize+flip+jitter, pad, batch)", "in": f"{h}x{w}",
            "out": "224x224", "masks": "masks" in records[0], "records_per_s_cpu": count / best_cpu,
            "records_per_s_wall": count / best_wall}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    h, w, m, n = _HEIGHT.value, _WIDTH.value, _OBJECTS.value, _RECORDS.value
    repeats = _REPEATS.value
    if _QUICK.value:
        h, w, m, n, repeats = 64, 80, 2, 2, 1
    plain = make_records(n, h, w, m, masks=False)
    with_masks = make_records(n, h, w, m, masks=True)
    affine = lambda: RandomAffine(30.0, (0.75, 1.25), (0.1, 0.1), 0.5, out_size=(256, 256))
    entries = [
        ("RandomHorizontalFlip(1.0)", RandomHorizontalFlip(1.0), plain),
        ("Resize(224, 224)", Resize((224, 224)), plain),
        ("RandomResizedCrop(224)", RandomResizedCrop((224, 224)), plain),
        ("RandomAffine(rot 30, scale, flip) -> 256", affine(), plain),
        ("RandomAffine(rot 30, scale, flip) -> 256", affine(), with_masks),
        ("ColorJitter(0.4, 0.4, 0.4)", ColorJitter(0.4, 0.4, 0.4), plain),
        ("Normalize()", Normalize(), plain),
    ]
    rows = [time_transform(name, t, recs, repeats) for name, t, recs in entries]
    rows.append(time_loader(plain, repeats))
    print(markdown_table(
        ["what", "in", "out", "masks", "records/s (CPU time)", "records/s (wall)"],
        [[r["what"], r["in"], r["out"], r["masks"], f"{r['records_per_s_cpu']:.1f}",
          f"{r['records_per_s_wall']:.1f}"] for r in rows], align="lrrlrr"))
    os.makedirs(_WORKDIR.value, exist_ok=True)
    path = os.path.join(_WORKDIR.value, "bench_data_transforms.json")
    with open(path, "w") as f:
        json.dump({"machine": machine_info(), "objects": m, "repeats": repeats,
                   "results": rows}, f, indent=2)
    print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main)
