r"""The network comparison: parameters, multiply-accumulates, measured throughput and accuracy.

For each model: exact parameter and multiply-accumulate counts (``vai_jax.analysis.summarize``,
per example at ``--image_size``), measured images/s of a jit-compiled inference forward pass and
of a full training step (forward, backward, SGD-momentum update, BatchNorm statistics), and the
top-1 accuracy when ``--trained_results`` gives one. Writes ``comparison.md``,
``comparison.json`` and ``comparison.png`` to ``--workdir`` and prints the table.

Throughput is measured on JAX's default backend (the GPU when there is one): ``--warmup_steps``
calls (compilation included) are excluded, then ``--num_steps`` calls are timed with
``block_until_ready`` on the last output. Inputs are random (speed does not depend on them).

Run (small, CPU, ~minutes)::

  python experiments/compare_networks.py --workdir /tmp/compare --image_size 64 \
      --batch_size 8 --num_steps 3

Full size (GPU)::

  python experiments/compare_networks.py --workdir /tmp/compare --image_size 224 \
      --batch_size 64 --num_steps 20 --trained_results /path/to/results.json

``--trained_results`` takes comma-separated JSON files: the ``results.json`` that
``experiments/train_classifier.py`` writes (its ``model``, ``dataset`` and ``test_top1``), or
``{model_name: top1}`` / ``{model_name: {"top1": ..., "dataset": ...}}`` (numbers above 1 are
read as percentages). The accuracy column says on which data set each model was trained.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from typing import Any, Callable

from absl import app, flags, logging

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from vai_jax.analysis import summarize
from vai_jax.backbones import create_model

DEFAULT_MODELS = ("alexnet,vgg16,googlenet,inception_v3,resnet50,densenet121,mobilenet_v1,"
                  "squeezenet1_0,shufflenet_v1")

FLAGS = flags.FLAGS


def _define_flags():
    """Command-line flags, defined only when run as a script (tests import this module)."""
    flags.DEFINE_string("workdir", None, "Directory for comparison.{md,json,png}.", required=True)
    flags.DEFINE_list("models", DEFAULT_MODELS, "Comma-separated model names (vai_jax.list_models()).")
    flags.DEFINE_integer("image_size", 224, "Square input size for counts and timing.")
    flags.DEFINE_integer("batch_size", 32, "Batch size of the timed calls.")
    flags.DEFINE_integer("num_steps", 10, "Timed calls per measurement (after warm-up).")
    flags.DEFINE_integer("warmup_steps", 2, "Untimed calls before timing (the first compiles).")
    flags.DEFINE_integer("num_classes", 1000, "Classifier width.")
    flags.DEFINE_bool("train", True, "Also time a training step.")
    flags.DEFINE_list("trained_results", [], "Optional JSON files: train_classifier.py's "
                      "results.json, or {model: top1 or {'top1': ..., 'dataset': ...}}.")
    flags.DEFINE_integer("seed", 0, "PRNG seed for parameters and inputs.")


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


def time_calls(fn: Callable[[], Any], *, num_steps: int, warmup_steps: int) -> float:
    """Seconds per call of ``fn`` (a jitted call returning arrays), warm-up calls excluded."""
    out = None
    for _ in range(max(warmup_steps, 1)):
        out = fn()
    jax.block_until_ready(out)
    start = time.perf_counter()
    for _ in range(num_steps):
        out = fn()
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / num_steps


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
                         warmup_steps=warmup_steps)
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

    train_s = time_calls(one_step, num_steps=num_steps, warmup_steps=warmup_steps)
    return batch_size / infer_s, batch_size / train_s


def _top1(value) -> float:
    return value / 100 if value > 1 else float(value)


def load_trained_results(paths) -> dict[str, tuple[float, str | None]]:
    """``{model: (top-1 fraction, dataset or None)}`` from ``--trained_results`` files.

    Each file is either ``experiments/train_classifier.py``'s ``results.json`` (an object with
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
                raise ValueError(f"--trained_results {path}: expected JSON objects; got "
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
                    raise ValueError(f"--trained_results {path}: entry {name!r} must be a "
                                     f"number or have 'top1'; got {value!r}")
                out[name] = (_top1(value), dataset)
    return out


def device_description() -> str:
    dev = jax.devices()[0]
    if dev.platform == "cpu":
        return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores visible)"
    return f"{dev.platform.upper()} {dev.device_kind} x{jax.device_count()}"


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def to_markdown(results: list[Result], meta: dict) -> str:
    """The comparison table in markdown, with the settings it was measured under."""
    timing = (f"on {meta['device']} (batch {meta['batch_size']}, {meta['num_steps']} timed "
              f"steps after {meta['warmup_steps']} warm-up; jax {meta['jax_version']})"
              if meta["num_steps"] > 0 else "(counts only, no timing)")
    lines = [
        f"Network comparison at {meta['image_size']}x{meta['image_size']} {timing}.",
        "",
        "| Model | Params (M) | MACs per image (G) | Inference (img/s) | Train step (img/s) "
        "| Top-1 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        top1 = "-" if r.top1 is None else f"{100 * r.top1:.1f}%" + (
            f" ({r.dataset})" if r.dataset else "")
        lines.append(f"| {r.model} | {r.params / 1e6:.2f} | {r.macs / 1e9:.3f} | "
                     f"{_fmt(r.infer_images_per_s, '.1f')} | {_fmt(r.train_images_per_s, '.1f')} "
                     f"| {top1} |")
    for name, why in meta.get("skipped", {}).items():
        lines.append(f"| {name} | skipped: {why} | | | | |")
    lines += ["", "MACs: multiply-accumulates of conv and dense layers per image "
              "(torchvision's \"GFLOPS\" convention); parameters include BatchNorm scale/bias."]
    return "\n".join(lines)


def plot(results: list[Result], meta: dict, path: str) -> None:
    """Two panels. Left: top-1 accuracy vs GMACs with bubble area ∝ parameters when accuracies
    are given, else parameters vs GMACs with bubble area ∝ measured inference images/s.
    Right: measured inference and training-step images/s vs GMACs (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.5))
    with_acc = [r for r in results if r.top1 is not None]
    if with_acc:
        rs = with_acc
        y = np.array([100 * r.top1 for r in rs])
        size = np.array([r.params / 1e6 for r in rs])
        ax1.set_ylabel("top-1 accuracy (%)")
        ax1.set_title("Accuracy vs multiply-accumulates (bubble area ∝ parameters)", fontsize=10)
    else:
        rs = results
        y = np.array([r.params / 1e6 for r in rs])
        speed = np.array([r.infer_images_per_s or 0.0 for r in rs])
        size = 60 * speed / speed.max() if speed.max() > 0 else np.full(len(rs), 10.0)
        ax1.set_yscale("log")
        ax1.set_ylabel("parameters (M)")
        ax1.set_title("Parameters vs multiply-accumulates\n"
                      "(bubble area ∝ measured inference images/s)", fontsize=10)
    x = np.array([r.macs / 1e9 for r in rs])
    ax1.scatter(x, y, s=20 + 8 * size, alpha=0.45, c=np.arange(len(rs)) % 10, cmap="tab10",
                vmin=0, vmax=9, edgecolors="k")
    for r, xi, yi in zip(rs, x, y):
        ax1.annotate(r.model, (xi, yi), fontsize=8, ha="center", va="bottom",
                     xytext=(0, 7), textcoords="offset points")
    ax1.set_xlabel(f"GMACs per image at {meta['image_size']}x{meta['image_size']}")

    for attr, label, marker in (("infer_images_per_s", "inference", "o"),
                                ("train_images_per_s", "training step", "s")):
        pts = [(r.macs / 1e9, getattr(r, attr), r.model) for r in results if getattr(r, attr)]
        if pts:
            ax2.scatter([p[0] for p in pts], [p[1] for p in pts], marker=marker, label=label)
            for mx, v, name in pts:
                ax2.annotate(name, (mx, v), fontsize=7, xytext=(4, 2), textcoords="offset points")
    ax2.set_yscale("log")
    ax2.set_xlabel("GMACs per image")
    ax2.set_ylabel("images/s (measured)")
    ax2.set_title(f"Measured throughput, {meta['device']}, batch {meta['batch_size']}",
                  fontsize=10)
    if ax2.collections:
        ax2.legend()
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log":
                axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                axis.set_major_formatter(plain)
                axis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(models: list[str], *, workdir: str, image_size: int, batch_size: int, num_steps: int,
        warmup_steps: int, num_classes: int, train: bool, trained_results,
        seed: int) -> list[Result]:
    """Measure every model and write ``comparison.{md,json,png}`` to ``workdir``."""
    os.makedirs(workdir, exist_ok=True)
    accuracy = load_trained_results(trained_results)
    meta = dict(image_size=image_size, batch_size=batch_size, num_steps=num_steps,
                warmup_steps=warmup_steps, num_classes=num_classes, device=device_description(),
                backend=jax.default_backend(), jax_version=jax.__version__,
                date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    results, skipped = [], {}
    meta["skipped"] = skipped
    for name in (bar := tqdm(models, desc="models", unit="model")):
        bar.set_postfix_str(name)
        model = create_model(name, num_classes=num_classes)
        try:
            summary = summarize(model, (1, image_size, image_size, 3), train=False)
        except ValueError as e:  # e.g. an input too small for the architecture
            logging.warning("skipping %s: %s", name, e)
            skipped[name] = str(e).split(";")[0]
            continue
        result = Result(name, summary.params, summary.macs)
        if num_steps > 0:
            result.infer_images_per_s, result.train_images_per_s = measure_throughput(
                model, image_size=image_size, batch_size=batch_size, num_classes=num_classes,
                num_steps=num_steps, warmup_steps=warmup_steps, train=train, seed=seed)
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
    plot(results, meta, os.path.join(workdir, "comparison.png"))
    print(md)
    return results


def main(argv):
    del argv
    run(FLAGS.models, workdir=FLAGS.workdir, image_size=FLAGS.image_size,
        batch_size=FLAGS.batch_size, num_steps=FLAGS.num_steps,
        warmup_steps=FLAGS.warmup_steps, num_classes=FLAGS.num_classes, train=FLAGS.train,
        trained_results=FLAGS.trained_results, seed=FLAGS.seed)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
