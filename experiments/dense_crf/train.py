"""Dense CRF on top of segmentation networks (the logic of ``main.py``).

``run(config, workdir)`` trains each network of ``config.models`` by the segmentation
experiment's recipe (:func:`experiments.segmentation.train.train_one`), then compares on the
test split:

- the network alone;
- the network + the fully connected CRF as post-processing
  (:func:`vai_jax.ops.dense_crf.dense_crf`, exact mean field), with the appearance kernel's
  weight and sigmas chosen by a coordinate search for the best mIoU on a validation split
  (the smoothness kernel fixed, as DeepLab does); and the same CRF with the bilateral-grid
  filter (``config.crf.compare_grid``);
- CRF-as-RNN (Zheng et al. 2015): :class:`vai_jax.nn.crf.CRFAsRNN`, the trained network topped
  by a :class:`~vai_jax.nn.crf.DenseCRF` with the searched sigmas and learnable weights and
  compatibility, fine-tuned end to end; against the control that fine-tunes the network alone
  for the same steps (with and without the post-processing CRF).

Metrics: mIoU, pixel accuracy, trimap accuracy in bands of ``config.trimap_widths`` pixels
around the true boundaries and the boundary F-score
(:mod:`vai_jax.segmentation.metrics`), and the CRF's time per image. Writes ``results.json``,
``results.md``, ``crf_examples.png`` and ``trimap.png`` (:mod:`experiments.dense_crf.plots`).
"""
from __future__ import annotations

import functools
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from experiments.dense_crf import plots
from experiments.segmentation import train as segmentation
from vai_jax.analysis.timing import time_calls
from vai_jax.data.shapes import ShapesDataset
from vai_jax.nn.crf import CRFAsRNN, DenseCRF
from vai_jax.ops.dense_crf import dense_crf
from vai_jax.segmentation.losses import segmentation_loss
from vai_jax.segmentation.metrics import (boundary_counts, boundary_f_score, confusion_matrix,
                                          metrics_from_confusion, trimap_confusion_matrix)
from vai_jax.train import parallel
from vai_jax.train.state import init_variables

# The network input is (u8 / 255 - MEAN) / STD; the CRF's image is u8 = x * STD_U8 + MEAN_U8.
MEAN_U8, STD_U8 = segmentation.MEAN * 255.0, segmentation.STD * 255.0


def build_data(cfg):
    """``(train, validation, test, num_classes, transforms)``: the segmentation experiment's
    train and test splits and ``cfg.num_val_examples`` images of the validation split."""
    train, test, k, _, transforms = segmentation.build_data(cfg)
    val = ShapesDataset("detection", split="validation", num_examples=cfg.num_val_examples,
                        image_size=cfg.image_size, seed=cfg.seed
                        ).materialise(("image", "semantic"))
    return train, val, test, k, transforms


def arrays(source):
    """``(images uint8 [N, H, W, 3], labels int32 [N, H, W])`` of a whole source."""
    n = len(source)
    records = [source[i] for i in range(n)]
    return (np.stack([r["image"] for r in records]),
            np.stack([r["semantic"] for r in records]).astype(np.int32))


def predict(model, variables, images, batch_size: int, keys=("out",)):
    """``{key: outputs[key]}`` (float32 logits ``[N, H, W, K]``) of ``model`` over ``images``
    (uint8), in batches (the last one padded)."""
    forward = jax.jit(lambda v, x: {k: model.apply(
        v, segmentation.preprocess({"image": x}, None, train=False), train=False)[k]
        for k in keys})
    out = {k: [] for k in keys}
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size]
        n = len(x)
        if n < batch_size:
            x = np.concatenate([x, np.repeat(x[-1:], batch_size - n, 0)])
        for k, v in forward(variables, x).items():
            out[k].append(np.asarray(v)[:n])
    return {k: np.concatenate(v) for k, v in out.items()}


def crf_kwargs(cfg, params: dict, method: str | None = None) -> dict:
    """:func:`dense_crf` keyword arguments of ``cfg.crf`` with ``params``
    (``bilateral_weight``, ``position_sigma``, ``colour_sigma``); ``method`` overrides
    ``cfg.crf.method``."""
    return dict(iterations=cfg.crf.iterations, spatial_sigma=cfg.crf.spatial_sigma,
                bilateral_sigmas=(params["position_sigma"], params["colour_sigma"]),
                weights=(cfg.crf.spatial_weight, params["bilateral_weight"]),
                method=method or cfg.crf.method)


def crf_labels(logits, images, cfg, params: dict, method: str | None = None):
    """Labels ``[N, H, W]`` after mean-field refinement of ``logits`` (in batches of
    ``cfg.crf.batch_size``)."""
    kw, b = crf_kwargs(cfg, params, method), cfg.crf.batch_size
    out = []
    for i in range(0, len(logits), b):
        z = dense_crf(jnp.asarray(logits[i:i + b]), jnp.asarray(images[i:i + b], jnp.float32),
                      **kw)
        out.append(np.asarray(jnp.argmax(z, -1), np.int32))
    return np.concatenate(out)


def scores(labels, preds, num_classes: int, cfg) -> dict:
    """mIoU, pixel accuracy, per-class IoU, trimap pixel accuracy and mIoU per band width, and
    the boundary F-score of ``preds`` against ``labels`` ``[N, H, W]``."""
    m = metrics_from_confusion(confusion_matrix(labels, preds, num_classes,
                                                ignore_label=cfg.ignore_label))
    out = {"miou": m["miou"], "pixel_accuracy": m["pixel_accuracy"],
           "iou": [None if np.isnan(v) else float(v) for v in m["iou"]],
           "trimap_accuracy": {}, "trimap_miou": {}}
    for w in cfg.trimap_widths:
        t = metrics_from_confusion(trimap_confusion_matrix(labels, preds, num_classes, int(w),
                                                           ignore_label=cfg.ignore_label))
        out["trimap_accuracy"][str(w)] = t["pixel_accuracy"]
        out["trimap_miou"][str(w)] = t["miou"]
    out["boundary"] = boundary_f_score(boundary_counts(labels, preds, cfg.boundary_tolerance,
                                                       ignore_label=cfg.ignore_label))
    return out


SEARCH_FIELDS = ("bilateral_weight", "position_sigma", "colour_sigma")


def search_crf(logits, images, labels, num_classes: int, cfg):
    """Coordinate search of ``cfg.search`` on the validation split, for the best mIoU: from
    ``cfg.search.start``, each field of ``cfg.search.order`` in turn over its values, the other
    fields held at the best so far (a setting is evaluated once). Returns ``(best params,
    rows)``, one row per evaluated setting with its validation mIoU and pixel accuracy, in
    evaluation order; ties keep the earlier setting."""
    s = cfg.search
    if sorted(s.order) != sorted(SEARCH_FIELDS):
        raise ValueError(f"config.search.order must order the fields {SEARCH_FIELDS}; got "
                         f"{tuple(s.order)}")
    rows, seen = [], {}

    def evaluate(params):
        key = tuple(params[f] for f in SEARCH_FIELDS)
        if key not in seen:
            pred = crf_labels(logits, images, cfg, params)
            m = metrics_from_confusion(confusion_matrix(labels, pred, num_classes,
                                                        ignore_label=cfg.ignore_label))
            seen[key] = len(rows)
            rows.append(dict(params, val_miou=m["miou"], val_pixel_accuracy=m["pixel_accuracy"]))
        return rows[seen[key]]["val_miou"]

    best = {f: float(s.start[f]) for f in SEARCH_FIELDS}
    best_miou = evaluate(best)
    for field in s.order:
        for value in s[field]:
            trial = dict(best, **{field: float(value)})
            miou = evaluate(trial)
            if miou > best_miou:
                best, best_miou = trial, miou
    return best, rows


def crf_seconds_per_image(logits, images, cfg, params: dict, method: str | None = None) -> dict:
    """Wall seconds per image of the mean-field refinement (jit-compiled, warm), in a batch of
    ``cfg.crf.batch_size`` and one image at a time."""
    kw = crf_kwargs(cfg, params, method)
    out = {}
    for label, b in (("batched", cfg.crf.batch_size), ("single", 1)):
        z = jnp.asarray(logits[:b])
        im = jnp.asarray(images[:b], jnp.float32)
        t = time_calls(lambda: dense_crf(z, im, **kw).block_until_ready(),
                       num_steps=cfg.timing_repeats)
        out[label] = t.wall_s / len(z)
    return out


def network_seconds_per_image(model, variables, images, cfg) -> float:
    x = jnp.asarray(images[:cfg.crf.batch_size])
    f = jax.jit(lambda v, x: model.apply(
        v, segmentation.preprocess({"image": x}, None, train=False), train=False)["out"])
    return time_calls(lambda: f(variables, x).block_until_ready(),
                      num_steps=cfg.timing_repeats).wall_s / len(x)


def fine_tune(model, variables, cfg, train_source, transforms, mesh, weights):
    """``cfg.finetune.steps`` of the segmentation recipe's loss from ``variables`` (a CRF's
    updates scaled by ``cfg.finetune.crf_update_scale``); returns the new variables and the
    fit result."""
    loss_fn = functools.partial(segmentation_loss, ignore_label=cfg.ignore_label,
                                class_weights=weights)
    f = cfg.finetune
    scale = {"crf": f.crf_update_scale} if "crf" in variables["params"] else None
    result = segmentation.train_from(model, variables, cfg, train_source, transforms, mesh,
                                     loss_fn, rng=jax.random.PRNGKey(cfg.seed + 1),
                                     num_steps=f.steps, lr=f.lr, warmup_steps=f.warmup_steps,
                                     batch_size=f.batch_size, update_scale=scale)
    return jax.device_get(result.state.variables()), result


def crf_as_rnn(network, cfg, params: dict) -> CRFAsRNN:
    """The network topped by a DenseCRF with the searched sigmas; its learnable weights start
    at the searched ones (and the compatibility at Potts)."""
    crf = DenseCRF(iterations=cfg.crf.iterations, spatial_sigma=cfg.crf.spatial_sigma,
                   bilateral_sigmas=(params["position_sigma"], params["colour_sigma"]),
                   init_weights=(cfg.crf.spatial_weight, params["bilateral_weight"]),
                   learn_compatibility=cfg.finetune.learn_compatibility, method=cfg.crf.method)
    return CRFAsRNN(network, crf, image_mean=MEAN_U8, image_std=STD_U8)


def graft_network(crf_variables, network_variables) -> dict:
    """:class:`CRFAsRNN` variables: the trained network's under ``network`` and the
    :class:`DenseCRF`'s (its own ``init``) under ``crf``."""
    out = {"params": {"network": network_variables["params"], "crf": crf_variables["params"]}}
    if "batch_stats" in network_variables:
        out["batch_stats"] = {"network": network_variables["batch_stats"]}
    return out


VARIANTS = {
    "network": "network",
    "post": "+ dense CRF (post-processing)",
    "post_grid": "+ dense CRF (post, bilateral grid)",
    "tuned": "fine-tuned, no CRF",
    "tuned_post": "fine-tuned + dense CRF (post)",
    "rnn": "CRF-as-RNN (end to end)",
    "rnn_unary": "CRF-as-RNN, its network alone",
}
"""Row kinds of the table, in order."""


def results_table(rows, widths) -> str:
    head = ("| model | variant | mIoU | pixel acc. | "
            + " | ".join(f"trimap acc. {w} px" for w in widths)
            + " | boundary F | CRF ms/img |")
    lines = [head, "|---|---|" + "---:|" * (4 + len(widths))]
    for r in rows:
        ms = "—" if r.get("crf_seconds") is None else f"{1e3 * r['crf_seconds']:.1f}"
        lines.append(f"| {r['model']} | {VARIANTS[r['variant']]} | {r['miou']:.3f} | "
                     f"{r['pixel_accuracy']:.3f} | "
                     + " | ".join(f"{r['trimap_accuracy'][str(w)]:.3f}" for w in widths)
                     + f" | {r['boundary']['f_score']:.3f} | {ms} |")
    return "\n".join(lines)


def run(cfg, workdir: str) -> dict:
    """Train, search, fine-tune, evaluate and draw; returns (and writes to ``results.json``)
    the rows and the run's facts."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    unknown = sorted(set(cfg.finetune.models) - set(cfg.models))
    if unknown:
        raise ValueError(f"config.finetune.models must be among config.models "
                         f"{tuple(cfg.models)}; got {unknown}")
    mesh = parallel.make_mesh()
    parallel.check_batch_size(cfg.batch_size, mesh, "config.batch_size")
    parallel.check_batch_size(cfg.finetune.batch_size, mesh, "config.finetune.batch_size")
    os.makedirs(workdir, exist_ok=True)
    train_source, val_source, test_source, k, transforms = build_data(cfg)
    weights = segmentation.class_weights(cfg, train_source, k)
    val_images, val_labels = arrays(val_source)
    test_images, test_labels = arrays(test_source)
    b = cfg.eval_batch_size
    rows, searches, preds, timing = [], {}, {}, {}

    def add(name, variant, pred, crf_seconds=None):
        row = {"model": name, "variant": variant, "crf_seconds": crf_seconds,
               **scores(test_labels, pred, k, cfg)}
        rows.append(row)
        preds[(name, variant)] = pred[:cfg.num_figure_examples]
        tqdm.write(f"{name} / {VARIANTS[variant]}: mIoU {row['miou']:.3f}, pixel acc "
                   f"{row['pixel_accuracy']:.3f}, trimap acc "
                   + ", ".join(f"{v:.3f}" for v in row["trimap_accuracy"].values())
                   + f", boundary F {row['boundary']['f_score']:.3f}")

    for name in cfg.models:
        tqdm.write(f"== {name}")
        if cfg.num_steps:
            network, result = segmentation.train_one(name, cfg, k, train_source, transforms,
                                                      mesh, weights)
            variables, train_seconds = jax.device_get(result.state.variables()), \
                result.train_seconds
        else:  # an untrained network (the smoke test)
            network = segmentation.build_model(name, cfg, k)
            variables = jax.device_get(init_variables(
                network, (1, cfg.image_size, cfg.image_size, 3), rng=jax.random.PRNGKey(cfg.seed)))
            train_seconds = 0.0
        logits = predict(network, variables, test_images, b)["out"]
        val_logits = predict(network, variables, val_images, b)["out"]
        best, grid = search_crf(val_logits, val_images, val_labels, k, cfg)
        searches[name] = {"best": best, "grid": grid,
                          "val_miou_without_crf": metrics_from_confusion(confusion_matrix(
                              val_labels, np.argmax(val_logits, -1).astype(np.int32), k,
                              ignore_label=cfg.ignore_label))["miou"]}
        tqdm.write(f"{name}: CRF chosen on validation {best} (val mIoU "
                   f"{searches[name]['val_miou_without_crf']:.3f} -> "
                   f"{max(g['val_miou'] for g in grid):.3f})")
        timing[name] = {"crf": crf_seconds_per_image(logits, test_images, cfg, best),
                        "network": network_seconds_per_image(network, variables, test_images,
                                                             cfg),
                        "train_seconds": train_seconds}
        crf_s = timing[name]["crf"]["batched"]
        add(name, "network", np.argmax(logits, -1).astype(np.int32))
        add(name, "post", crf_labels(logits, test_images, cfg, best), crf_s)
        if cfg.crf.compare_grid:  # the same CRF with the bilateral-grid filter
            timing[name]["crf_grid"] = crf_seconds_per_image(logits, test_images, cfg, best,
                                                             "grid")
            add(name, "post_grid", crf_labels(logits, test_images, cfg, best, "grid"),
                timing[name]["crf_grid"]["batched"])
        if name not in cfg.finetune.models:
            continue
        if cfg.finetune.control:
            tuned, _ = fine_tune(network, variables, cfg, train_source, transforms, mesh,
                                 weights)
            tuned_logits = predict(network, tuned, test_images, b)["out"]
            add(name, "tuned", np.argmax(tuned_logits, -1).astype(np.int32))
            add(name, "tuned_post", crf_labels(tuned_logits, test_images, cfg, best), crf_s)
        model = crf_as_rnn(network, cfg, best)
        crf_vars = model.crf.init(jax.random.PRNGKey(0), jnp.zeros((1, 1, 1, k)),
                                  jnp.zeros((1, 1, 1, 3)), train=False)
        rnn_vars, rnn_result = fine_tune(model, graft_network(crf_vars, variables), cfg,
                                         train_source, transforms, mesh, weights)
        timing[name]["crf_as_rnn_train_seconds"] = rnn_result.train_seconds
        rnn = predict(model, rnn_vars, test_images, cfg.crf.batch_size, ("out", "unary"))
        add(name, "rnn", np.argmax(rnn["out"], -1).astype(np.int32), crf_s)
        add(name, "rnn_unary", np.argmax(rnn["unary"], -1).astype(np.int32))
        p = rnn_vars["params"]["crf"]
        searches[name]["crf_as_rnn_learned"] = {
            "spatial_weight": float(p["spatial_weight"]),
            "bilateral_weight": float(p["bilateral_weight"]),
            "compatibility": (np.asarray(p["compatibility"]).round(4).tolist()
                              if "compatibility" in p else None)}
    n_fig = min(cfg.num_figure_examples, len(test_images))
    plots.plot_examples(test_images[:n_fig], test_labels[:n_fig],
                        {key: v[:n_fig] for key, v in preds.items()}, k, cfg.ignore_label,
                        os.path.join(workdir, "crf_examples.png"))
    plots.plot_trimap(rows, [int(w) for w in cfg.trimap_widths], searches,
                      os.path.join(workdir, "trimap.png"))
    out = {"rows": rows, "search": searches, "timing": timing,
           "trimap_widths": [int(w) for w in cfg.trimap_widths],
           "image_size": cfg.image_size, "num_test_examples": len(test_images),
           "num_val_examples": len(val_images),
           "wall_seconds": time.perf_counter() - t0,
           "process_cpu_seconds": time.process_time() - cpu0,
           "load_average": os.getloadavg(),
           "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
           "config": cfg.to_dict()}
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump(out, f, indent=2, default=str)
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write(results_table(rows, out["trimap_widths"]) + "\n")
    return out


summary_line = segmentation.summary_line  # the same results fields (wall, CPU, load)
