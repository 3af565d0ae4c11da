"""Semantic segmentation from cheaper annotations (the logic of ``main.py``), after Bearman et
al. (2016), "What's the point: semantic segmentation with point supervision".

``run(config, workdir)`` simulates the annotations of the shapes training split
(:mod:`vai_jax.segmentation.weak_labels`: image-level labels, one clicked pixel per object
instance plus background points, an objectness prior from the blurred object mask), trains the
segmentation experiment's network once per run of ``config.runs``, from one initialisation,
with the loss terms of ``config.terms`` (:func:`vai_jax.segmentation.losses.
weak_segmentation_loss`) and the same steps, batch and optimiser
(:func:`experiments.segmentation.train.train_from`), and evaluates
every run on the fully labelled test split. A run sees only its own annotation: the masks
are not in the records of the weakly supervised runs.

The cost of a run's annotation is given as the pixels labelled per training image (measured
on the simulated annotation), as the seconds per image that Bearman et al. measured on
PASCAL VOC 2012 for that kind of annotation (``config.seconds_per_image``) and as the hours
that would take for the run's training images. ``full_budget`` trains from full masks on as
many images as the point annotation's time would buy.

Writes ``results.json``, ``results.md``, ``predictions.png``, ``annotations.png`` and
``cost.png`` (:mod:`experiments.point_supervision.plots`).
"""
from __future__ import annotations

import functools
import json
import os
import time

import jax
import numpy as np
from tqdm import tqdm

from experiments.point_supervision import plots
from experiments.segmentation import train as segmentation
from vai_jax.data.shapes import ShapesDataset
from vai_jax.data.sources import ArraySource
from vai_jax.segmentation.inputs import CheckLabels
from vai_jax.segmentation.losses import weak_segmentation_loss
from vai_jax.segmentation.weak_labels import image_labels, objectness_prior, simulate_points
from vai_jax.train import parallel
from vai_jax.train.state import init_variables

KINDS = ("full", "image", "points")
"""Annotation kinds; each run reads one (``config.annotation[run]``)."""


def annotate(cfg, num_classes: int) -> dict:
    """The training split with every simulated annotation: arrays ``image``, ``semantic``,
    ``present [N, K]``, ``points [N, H, W]`` (ignore label except at the clicks) and
    ``objectness [N, H, W]``."""
    ds = ShapesDataset("detection", split="train", num_examples=cfg.num_train_examples,
                       image_size=cfg.image_size, seed=cfg.seed)
    out = {k: [] for k in ("image", "semantic", "points")}
    for start in range(0, len(ds), 500):
        batch = ds.get_batch(range(start, min(start + 500, len(ds))))
        out["image"].append(batch["image"])
        out["semantic"].append(batch["semantic"].astype(np.int32))
        out["points"].append(np.stack([
            simulate_points(batch["semantic"][i], batch["masks"][i], batch["valid"][i],
                            seed=cfg.point_seed, index=start + i,
                            background_points=cfg.background_points,
                            ignore_label=cfg.ignore_label)
            for i in range(len(batch["image"]))]))
    out = {k: np.concatenate(v) for k, v in out.items()}
    out["present"] = image_labels(out["semantic"], num_classes, ignore_label=cfg.ignore_label)
    out["objectness"] = objectness_prior(out["semantic"], cfg.objectness.sigma,
                                         floor=cfg.objectness.floor,
                                         ignore_label=cfg.ignore_label)
    return out


def budget_examples(cfg, n: int) -> int:
    """Full masks that the point annotation of ``n`` images would pay for (at least one)."""
    s = cfg.seconds_per_image
    return max(1, int(round(n * s.points / s.full)))


def run_source(run: str, cfg, data: dict, num_classes: int):
    """``(source, transforms)`` of one run: only the fields its loss terms read (and the
    image)."""
    terms = tuple(cfg.terms[run])
    fields = {"full": "semantic", "image": "present", "point": "points",
              "objectness": "objectness"}
    keys = ["image"] + [fields[t] for t in terms]
    n = budget_examples(cfg, len(data["image"])) if run == "full_budget" else len(data["image"])
    source = ArraySource({k: data[k][:n] for k in keys})
    transforms = [CheckLabels(num_classes, cfg.ignore_label)] if "semantic" in keys else []
    return source, transforms


def annotation_cost(cfg, data: dict) -> dict:
    """Per annotation kind: mean pixels labelled per training image, yes/no class answers per
    image, and Bearman et al.'s seconds per image."""
    labelled_full = float(np.mean(np.sum(data["semantic"] != cfg.ignore_label, axis=(1, 2))))
    clicks = np.sum(data["points"] != cfg.ignore_label, axis=(1, 2))
    k = data["present"].shape[1]
    return {
        "full": {"pixels_per_image": labelled_full, "class_answers_per_image": 0,
                 "seconds_per_image": cfg.seconds_per_image.full},
        "image": {"pixels_per_image": 0.0, "class_answers_per_image": k - 1,
                  "seconds_per_image": cfg.seconds_per_image.image},
        "points": {"pixels_per_image": float(clicks.mean()),
                   "object_points_per_image": float(np.mean(np.sum(
                       (data["points"] != cfg.ignore_label) & (data["points"] > 0), (1, 2)))),
                   "class_answers_per_image": k - 1,
                   "seconds_per_image": cfg.seconds_per_image.points},
    }


def results_table(rows) -> str:
    lines = ["| run | loss terms | training images | pixels labelled / image | "
             "s / image (VOC, Bearman et al.) | annotation hours | mIoU | object IoU | "
             "pixel acc. |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['run']} | {' + '.join(r['terms'])} | {r['train_examples']:,} | "
                     f"{r['pixels_per_image']:,.1f} | {r['seconds_per_image']:.1f} | "
                     f"{r['annotation_hours']:.1f} | {r['miou']:.3f} | {r['object_iou']:.3f} | "
                     f"{r['pixel_accuracy']:.3f} |")
    return "\n".join(lines)


def run(cfg, workdir: str) -> dict:
    """Simulate, train every run, evaluate and draw; returns (and writes to ``results.json``)
    the rows and the run's facts."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    unknown = sorted(set(cfg.runs) - set(cfg.terms))
    if unknown:
        raise ValueError(f"config.runs must name entries of config.terms {sorted(cfg.terms)}; "
                         f"got {unknown}")
    for name in cfg.runs:
        if cfg.annotation[name] not in KINDS:
            raise ValueError(f"config.annotation.{name} must be one of {KINDS}; got "
                             f"{cfg.annotation[name]!r}")
    mesh = parallel.make_mesh()
    parallel.check_batch_size(cfg.batch_size, mesh, "config.batch_size")
    os.makedirs(workdir, exist_ok=True)
    _, test_source, k, class_names, test_transforms = segmentation.build_data(cfg)
    data = annotate(cfg, k)
    cost = annotation_cost(cfg, data)
    weights = segmentation.class_weights(cfg, ArraySource({"semantic": data["semantic"]}), k)
    # One network and one initialisation for every run (train_one's model, seed and split).
    model = segmentation.build_model(cfg.model, cfg, k)
    init_rng, state_rng = jax.random.split(jax.random.PRNGKey(cfg.seed))
    # On the host: every run's state is built afresh from these (the step donates its state).
    init, state_rng = jax.device_get((init_variables(
        model, (1, cfg.image_size, cfg.image_size, 3), rng=init_rng), state_rng))
    rows, preds = [], {}
    for name in cfg.runs:
        tqdm.write(f"== {name}")
        source, transforms = run_source(name, cfg, data, k)
        terms = tuple(cfg.terms[name])
        loss_fn = functools.partial(weak_segmentation_loss, terms=terms,
                                    ignore_label=cfg.ignore_label,
                                    class_weights=weights if "full" in terms else None)
        result = segmentation.train_from(model, init, cfg, source, transforms, mesh, loss_fn,
                                         rng=state_rng, num_steps=cfg.num_steps, lr=cfg.lr,
                                         warmup_steps=cfg.warmup_steps)
        variables = jax.device_get(result.state.variables())
        metrics, pred = segmentation.evaluate_model(model, variables, test_source, cfg, k,
                                                    test_transforms)
        kind = cfg.annotation[name]
        row = {"run": name, "terms": list(terms), "annotation": kind,
               "train_examples": len(source),
               "pixels_per_image": cost[kind]["pixels_per_image"],
               "seconds_per_image": cost[kind]["seconds_per_image"],
               "annotation_hours": len(source) * cost[kind]["seconds_per_image"] / 3600.0,
               "miou": metrics["miou"], "object_iou": metrics["object_iou"],
               "pixel_accuracy": metrics["pixel_accuracy"],
               "iou": [None if np.isnan(v) else float(v) for v in metrics["iou"]],
               "train_seconds": result.train_seconds, "steps": result.step}
        rows.append(row)
        preds[name] = pred
        tqdm.write(f"{name}: mIoU {row['miou']:.3f}, object IoU {row['object_iou']:.3f}, "
                   f"pixel acc {row['pixel_accuracy']:.3f} ({len(source)} images, "
                   f"{row['pixels_per_image']:.1f} px labelled each)")
    n_fig = min(cfg.num_figure_examples, len(test_source))
    test = [segmentation.transforms_apply(test_transforms, test_source[i]) for i in range(n_fig)]
    images = np.stack([r["image"] for r in test])
    truth = np.stack([r["semantic"] for r in test])
    plots.plot_predictions(images, truth, {n: p[:n_fig] for n, p in preds.items()}, k,
                           cfg.ignore_label, os.path.join(workdir, "predictions.png"))
    plots.plot_annotations({key: v[:3] for key, v in data.items()}, k, cfg.ignore_label,
                           os.path.join(workdir, "annotations.png"))
    plots.plot_cost(rows, os.path.join(workdir, "cost.png"))
    out = {"rows": rows, "annotation_cost": cost, "class_names": list(class_names),
           "image_size": cfg.image_size, "num_steps": cfg.num_steps,
           "batch_size": cfg.batch_size, "num_test_examples": len(test_source),
           "class_weights": None if weights is None else weights.tolist(),
           "wall_seconds": time.perf_counter() - t0,
           "process_cpu_seconds": time.process_time() - cpu0,
           "load_average": os.getloadavg(),
           "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
           "config": cfg.to_dict()}
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump(out, f, indent=2, default=str)
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write(results_table(rows) + "\n")
    return out


summary_line = segmentation.summary_line  # the same results fields (wall, CPU, load)
