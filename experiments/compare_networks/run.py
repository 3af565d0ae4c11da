"""The network comparison (the logic of ``main.py``): ``run(config, workdir)``.

For each model: exact parameter and multiply-accumulate counts (``vai_jax.analysis.summarize``,
per example at ``config.image_size``), measured images/s of a jit-compiled inference forward
pass and of a full training step (forward, backward, SGD-momentum update, BatchNorm statistics),
and the top-1 accuracy when ``config.trained_results`` gives one.

Throughput is measured on JAX's default backend (the GPU when there is one) with
:func:`vai_jax.analysis.timing.time_calls`: ``warmup_steps`` calls (compilation included) are
excluded, then ``num_steps`` calls are timed. Inputs are random (speed does not depend on them).
"""
from __future__ import annotations

import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp
import optax
from absl import logging
from tqdm import tqdm

from experiments.compare_networks import plots
from vai_jax.analysis import summarize
from vai_jax.analysis.timing import describe_devices, time_calls
from vai_jax.backbones import create_model
from vai_jax.viz.tables import markdown_table


@dataclasses.dataclass
class Result:
    """One model's line of the comparison (throughputs in images/s, ``None`` when not run)."""

    model: str
    params: int
    macs: int
    infer_images_per_s: float | None = None
    train_images_per_s: float | None = None
    top1: float | None = None
    dataset: str | None = None


def measure_throughput(model, *, image_size: int, batch_size: int, num_classes: int,
                       num_steps: int, warmup_steps: int, train: bool, seed: int
                       ) -> tuple[float, float | None]:
    """Images/s of inference (``train=False``) and, if ``train``, of one SGD training step.

    The training step is the standard one: softmax cross-entropy on integer labels, gradients of
    all parameters, SGD with momentum 0.9, BatchNorm statistics updated; the state is donated.
    """
    key_init, key_x, key_drop = jax.random.split(jax.random.key(seed), 3)
    x = jax.random.normal(key_x, (batch_size, image_size, image_size, 3), jnp.float32)
    labels = jnp.arange(batch_size, dtype=jnp.int32) % max(num_classes, 1)
    variables = jax.jit(lambda k, x: model.init(k, x, train=False))(key_init, x[:1])
    params = variables["params"]
    extra = {k: v for k, v in variables.items() if k != "params"}

    infer = jax.jit(lambda p, e, x: model.apply({"params": p, **e}, x, train=False)[0])
    infer_s = time_calls(lambda: infer(params, extra, x), num_steps=num_steps,
                         warmup_steps=warmup_steps).wall_s
    if not train:
        return batch_size / infer_s, None

    tx = optax.sgd(0.01, momentum=0.9)
    mutable = list(extra)

    def train_step(state, x, labels, step):
        p, e, opt = state

        def loss_fn(p):
            (logits, _), new_e = model.apply(
                {"params": p, **e}, x, train=True, mutable=mutable,
                rngs={"dropout": jax.random.fold_in(key_drop, step)})
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
            return loss, new_e

        (loss, new_e), grads = jax.value_and_grad(loss_fn, has_aux=True)(p)
        updates, opt = tx.update(grads, opt, p)
        return (optax.apply_updates(p, updates), {**e, **new_e}, opt), loss

    step_fn = jax.jit(train_step, donate_argnums=0)
    state = [(params, extra, tx.init(params)), 0]

    def one_step():
        state[0], loss = step_fn(state[0], x, labels, state[1])
        state[1] += 1
        return loss

    train_s = time_calls(one_step, num_steps=num_steps, warmup_steps=warmup_steps).wall_s
    return batch_size / infer_s, batch_size / train_s


def _top1(value) -> float:
    return value / 100 if value > 1 else float(value)


def load_trained_results(paths) -> dict[str, tuple[float, str | None]]:
    """``{model: (top-1 fraction, dataset or None)}`` from ``config.trained_results`` files.

    Each file is either the ``results.json`` of ``experiments/classifier`` (an object with
    ``"model"``, ``"dataset"`` and ``"test_top1"``), a list of such objects, or a mapping
    ``{model: top1}`` / ``{model: {"top1": ..., "dataset": ...}}``. Numbers above 1 are read as
    percentages. Later files override earlier ones.
    """
    if not paths:
        return {}
    out = {}
    for path in [paths] if isinstance(paths, str) else paths:
        with open(path) as f:
            raw = json.load(f)
        records = raw if isinstance(raw, list) else [raw]
        for rec in records:
            if not isinstance(rec, dict):
                raise ValueError(f"trained_results {path}: expected JSON objects; got "
                                 f"{type(rec).__name__}")
            if "model" in rec and ("test_top1" in rec or "top1" in rec):
                out[rec["model"]] = (_top1(rec.get("test_top1", rec.get("top1"))),
                                     rec.get("dataset"))
                continue
            for name, value in rec.items():
                dataset = None
                if isinstance(value, dict):
                    dataset = value.get("dataset")
                    value = value.get("top1", value.get("test_top1"))
                if not isinstance(value, (int, float)):
                    raise ValueError(f"trained_results {path}: entry {name!r} must be a "
                                     f"number or have 'top1'; got {value!r}")
                out[name] = (_top1(value), dataset)
    return out


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def to_markdown(results: list[Result], meta: dict) -> str:
    """The comparison table in markdown, with the settings it was measured under."""
    timing = (f"on {meta['device']} (batch {meta['batch_size']}, {meta['num_steps']} timed "
              f"steps after {meta['warmup_steps']} warm-up; jax {meta['jax_version']})"
              if meta["num_steps"] > 0 else "(counts only, no timing)")
    rows = []
    for r in results:
        top1 = "-" if r.top1 is None else f"{100 * r.top1:.1f}%" + (
            f" ({r.dataset})" if r.dataset else "")
        rows.append([r.model, f"{r.params / 1e6:.2f}", f"{r.macs / 1e9:.3f}",
                     _fmt(r.infer_images_per_s, ".1f"), _fmt(r.train_images_per_s, ".1f"), top1])
    rows += [[name, f"skipped: {why}", "", "", "", ""]
             for name, why in meta.get("skipped", {}).items()]
    table = markdown_table(["Model", "Params (M)", "MACs per image (G)", "Inference (img/s)",
                            "Train step (img/s)", "Top-1"], rows, align="lrrrrr")
    return "\n".join([
        f"Network comparison at {meta['image_size']}x{meta['image_size']} {timing}.", "", table,
        "", "MACs: multiply-accumulates of conv and dense layers per image "
        "(torchvision's \"GFLOPS\" convention); parameters include BatchNorm scale/bias."])


def run(cfg, workdir: str) -> dict:
    """Measure every model of ``cfg.models`` and write ``comparison.{md,json,png}`` to
    ``workdir``; returns ``{"meta", "results", "markdown"}``."""
    os.makedirs(workdir, exist_ok=True)
    accuracy = load_trained_results(list(cfg.trained_results))
    meta = dict(image_size=cfg.image_size, batch_size=cfg.batch_size, num_steps=cfg.num_steps,
                warmup_steps=cfg.warmup_steps, num_classes=cfg.num_classes,
                device=describe_devices(), backend=jax.default_backend(),
                jax_version=jax.__version__,
                date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    results, skipped = [], {}
    meta["skipped"] = skipped
    for name in (bar := tqdm(cfg.models, desc="models", unit="model")):
        bar.set_postfix_str(name)
        model = create_model(name, num_classes=cfg.num_classes)
        try:
            summary = summarize(model, (1, cfg.image_size, cfg.image_size, 3), train=False)
        except ValueError as e:  # e.g. an input too small for the architecture
            logging.warning("skipping %s: %s", name, e)
            skipped[name] = str(e).split(";")[0]
            continue
        result = Result(name, summary.params, summary.macs)
        if cfg.num_steps > 0:
            result.infer_images_per_s, result.train_images_per_s = measure_throughput(
                model, image_size=cfg.image_size, batch_size=cfg.batch_size,
                num_classes=cfg.num_classes, num_steps=cfg.num_steps,
                warmup_steps=cfg.warmup_steps, train=cfg.train, seed=cfg.seed)
        if name in accuracy:
            result.top1, result.dataset = accuracy[name]
        results.append(result)
        logging.info("%s: %s", name, result)
        jax.clear_caches()  # compiled executables of big models add up

    md = to_markdown(results, meta)
    with open(os.path.join(workdir, "comparison.md"), "w") as f:
        f.write(md + "\n")
    with open(os.path.join(workdir, "comparison.json"), "w") as f:
        json.dump({"meta": meta, "results": [dataclasses.asdict(r) for r in results]}, f,
                  indent=2)
    plots.comparison(results, meta, os.path.join(workdir, "comparison.png"))
    return {"meta": meta, "results": results, "markdown": md}
