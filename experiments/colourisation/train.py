"""Training and evaluation of the colourisation networks (the logic of ``main.py``).

``run(config, workdir)`` trains one :class:`vai_jax.colourisation.ColourisationNet` per entry of
``config.runs`` (``config.model`` with the run's ``config.variants.<run>.model`` fields on top;
the loss is :func:`vai_jax.colourisation.colourisation_loss` with ``config.loss`` and the run's
``loss`` fields) on the shapes data coloured by class, and evaluates each on the test split:
chrominance error over all pixels and over the object pixels, PSNR of the recoloured image and,
with a classification head, its accuracy. Two reference rows need no training: the grey image
(``ab = 0``) and a class oracle (each object pixel gets the mean training chrominance of its
true class's objects, each background pixel the mean background chrominance).
"""
from __future__ import annotations

import functools
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from experiments.colourisation import plots
from vai_jax.analysis import count_params
from vai_jax.colourisation import (ColourisationNet, colourisation_loss, colourisation_sums,
                                   grey_input, join_lab, split_lab, summarise)
from vai_jax.data.shapes import NUM_CLASSES, ShapesDataset
from vai_jax.data.sources import RandomBatches
from vai_jax.train import parallel
from vai_jax.train.loop import evaluate, fit
from vai_jax.train.metrics_writer import MetricsWriter, read_metrics
from vai_jax.train.optim import make_optimizer, make_schedule
from vai_jax.train.state import TrainState
from vai_jax.train.step import make_eval_step, make_train_step
from vai_jax.viz.tables import markdown_table

TITLES = {"grey": "grey input (ab = 0)", "oracle": "class oracle (true class → mean colour)"}


def make_data(cfg) -> tuple[dict, dict]:
    """(train arrays ``image``, ``label``; test arrays ``image``, ``label``, ``semantic``) of
    the single-object shapes data with class-dependent colours, kept in memory."""
    kw = dict(image_size=cfg.image_size, seed=cfg.seed, colour_by_class=True,
              palette_noise=cfg.palette_noise)
    train = ShapesDataset("classification", split="train", num_examples=cfg.num_train, **kw)
    test = ShapesDataset("keypoints", split="test", num_examples=cfg.num_test, **kw)
    return (train.materialise(("image", "label")).arrays,
            test.materialise(("image", "label", "semantic")).arrays)


def build_model(cfg, run: str) -> ColourisationNet:
    """``ColourisationNet(**config.model)`` with the run's ``model`` fields on top."""
    return ColourisationNet(**{**cfg.model, **cfg.variants[run].get("model", {})})


def loss_options(cfg, run: str) -> dict:
    """``colourisation_loss``'s keyword arguments: ``config.loss`` and the run's ``loss``."""
    return {**cfg.loss, **cfg.variants[run].get("loss", {})}


def _batches(arrays: dict, batch_size: int):
    n = len(next(iter(arrays.values())))
    for i in range(0, n, batch_size):
        yield {k: v[i:i + batch_size] for k, v in arrays.items()}


def evaluate_predictions(ab, test: dict, batch_size: int) -> dict:
    """:func:`summarise` of fixed chrominance predictions ``ab [N, H, W, 2]`` (the reference
    rows), through the same sums as the trained networks."""
    sums_fn = jax.jit(colourisation_sums)
    step = lambda _, batch: sums_fn({"ab": batch.pop("ab")}, batch, batch.pop("mask"))
    return summarise(evaluate(step, None, _batches(dict(test, ab=ab), batch_size),
                              batch_size=batch_size))


def oracle_predictions(train: dict, test: dict, batch_size: int) -> np.ndarray:
    """The class oracle: per-class mean object chrominance and mean background chrominance
    of the training images (object pixels found by rendering the same scenes' masks)."""
    to_ab = jax.jit(lambda im: split_lab(im)[1])
    sums = np.zeros((NUM_CLASSES + 1, 2))
    counts = np.zeros(NUM_CLASSES + 1)
    for batch in _batches(train, batch_size):
        ab = np.asarray(to_ab(batch["image"]), np.float64)
        region = batch["semantic"]  # 0 background, class + 1 on the object
        for r in range(NUM_CLASSES + 1):
            sel = region == r
            sums[r] += ab[sel].sum(0)
            counts[r] += sel.sum()
    means = sums / np.maximum(counts, 1)[:, None]
    return means[test["semantic"]].astype(np.float32)


def train_run(cfg, run: str, train: dict, test: dict, workdir: str, index: int) -> tuple:
    """Train and evaluate one run; returns (its row, the final state)."""
    model = build_model(cfg, run)
    rng = jax.random.PRNGKey(cfg.seed + index)
    init_rng, state_rng = jax.random.split(rng)
    s = cfg.image_size
    # Eager init: op by op, with kernels cached across runs (a jitted init compiles each time).
    variables = model.init(init_rng, jnp.zeros((1, s, s, 1)), train=False)
    schedule = make_schedule(total_steps=cfg.num_steps, **cfg.schedule)
    tx = make_optimizer(learning_rate=schedule, **cfg.optimizer)
    mesh = parallel.make_mesh()
    parallel.check_batch_size(cfg.batch_size, mesh, "config.batch_size")
    parallel.check_batch_size(cfg.eval_batch_size, mesh, "config.eval_batch_size")
    state = parallel.replicate(TrainState.create(apply_fn=model.apply, variables=variables,
                                                 tx=tx, rng=state_rng), mesh)
    loss_fn = functools.partial(colourisation_loss, **loss_options(cfg, run))
    train_step = parallel.data_parallel(make_train_step(loss_fn, preprocess_fn=grey_input), mesh)
    eval_step = parallel.data_parallel(
        make_eval_step(colourisation_sums, preprocess_fn=grey_input, loss_fn=loss_fn), mesh,
        donate_state=False)
    writer = MetricsWriter(os.path.join(workdir, run))
    tqdm.write(f"--- {run}: {count_params(variables):,} parameters, {cfg.num_steps} steps")
    t0 = time.perf_counter()
    result = fit(state, train_step=train_step,
                 train_iter=RandomBatches(train, cfg.batch_size, seed=cfg.seed),
                 num_steps=cfg.num_steps, batch_size=cfg.batch_size, log_every=cfg.log_every,
                 writer=writer, learning_rate_fn=schedule, progress=cfg.progress)
    train_seconds = time.perf_counter() - t0
    writer.close()
    means = evaluate(eval_step, result.state, _batches(test, cfg.eval_batch_size),
                     batch_size=cfg.eval_batch_size)
    row = {"run": run, **summarise(means), "test_loss": means["loss"],
           "num_params": count_params(variables), "fusion": model.fusion,
           "num_classes": model.num_classes, "steps": result.step,
           "train_seconds": train_seconds, "train_images_per_sec": result.images_per_sec}
    tqdm.write(f"{run}: " + ", ".join(f"{k} {row[k]:.3f}" for k in
                                      ("ab_mae", "object_ab_mae", "psnr") if k in row))
    return row, result.state


def predict_ab(state, images) -> np.ndarray:
    """The trained network's chrominance ``[n, H, W, 2]`` for uint8 images ``[n, H, W, 3]``."""
    fn = jax.jit(lambda v, im: state.apply_fn(v, grey_input({"image": im}, None, train=False),
                                              train=False)["ab"])
    return np.asarray(fn(state.variables(), images))


def results_table(rows) -> str:
    """The comparison as a markdown table, one row per run and reference."""
    header = ("model", "global fusion", "class head", "params", "ab MAE", "ab RMSE",
              "object ab MAE", "object ab RMSE", "PSNR (dB)", "class top-1", "training")
    lines = []
    for r in rows:
        trained = "train_seconds" in r
        lines.append((
            TITLES.get(r["run"], f"`{r['run']}`"),
            ("yes" if r["fusion"] else "no") if trained else "–",
            ("yes" if r["num_classes"] else "no") if trained else "–",
            f"{r['num_params']:,}" if trained else "–",
            f"{r['ab_mae']:.2f}", f"{r['ab_rmse']:.2f}", f"{r['object_ab_mae']:.2f}",
            f"{r['object_ab_rmse']:.2f}", f"{r['psnr']:.2f}",
            f"{100 * r['top1']:.1f}%" if "top1" in r else "–",
            f"{r['train_seconds']:.0f} s, {r['train_images_per_sec']:.0f} images/s"
            if trained else "–"))
    return markdown_table(header, lines, align="llcrrrrrrrr") + "\n"


def run(cfg, workdir: str) -> list[dict]:
    """Train and evaluate every run of ``config.runs``; write ``results.json``, ``results.md``,
    ``colourisation_examples.png`` and ``curves.png``; return the rows."""
    os.makedirs(workdir, exist_ok=True)
    for name in cfg.runs:
        if name not in cfg.variants:
            raise ValueError(f"config.runs: {name!r} has no entry in config.variants "
                             f"({sorted(cfg.variants)})")
    job0 = time.perf_counter()
    train, test = make_data(cfg)
    oracle_train = ShapesDataset(
        "keypoints", split="train", num_examples=min(cfg.num_train, cfg.oracle_examples),
        image_size=cfg.image_size, seed=cfg.seed, colour_by_class=True,
        palette_noise=cfg.palette_noise).materialise(("image", "semantic")).arrays
    rows = [{"run": "grey", **evaluate_predictions(
                np.zeros(test["image"].shape[:3] + (2,), np.float32), test, cfg.eval_batch_size)},
            {"run": "oracle", **evaluate_predictions(
                oracle_predictions(oracle_train, test, cfg.eval_batch_size), test,
                cfg.eval_batch_size)}]
    k = min(cfg.num_figure_images, len(test["image"]))
    examples = {}
    for i, name in enumerate(cfg.runs):
        row, state = train_run(cfg, name, train, test, workdir, i)
        rows.append(row)
        examples[name] = predict_ab(state, test["image"][:k])
    images = test["image"][:k]
    luminance, _ = split_lab(images)
    plots.plot_examples(
        os.path.join(workdir, "colourisation_examples.png"), images,
        {name: np.asarray(join_lab(luminance, ab)) for name, ab in examples.items()},
        grey=np.asarray(luminance[..., 0]) / 100.0)
    plots.plot_curves(os.path.join(workdir, "curves.png"),
                      {name: read_metrics(os.path.join(workdir, name, "metrics.jsonl"))
                       for name in cfg.runs})
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write(results_table(rows))
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump({"rows": rows, "job_seconds": time.perf_counter() - job0,
                   "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
                   "jax_version": jax.__version__, "config": cfg.to_dict()},
                  f, indent=1, default=str)
    return rows
