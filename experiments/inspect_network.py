r"""Look inside a trained classifier: filters, activation maximisation, top patches, linear
probes (trained vs random), pruning curve, quantisation table and per-patch evidence maps.

  python experiments/inspect_network.py --workdir /tmp/inspect
  python experiments/inspect_network.py --workdir /tmp/inspect_r32 \
      --checkpoint_dir /tmp/shapes_resnet32 --config.model=resnet32_cifar
  python experiments/inspect_network.py --workdir /tmp/smoke \
      --config=experiments/configs/inspect_shapes.py:runlocal

Without ``--checkpoint_dir`` a :class:`vai_jax.analysis.PlainCNN` is trained here first (a
minimal optax loop on the built-in shapes data). With one, the latest checkpoint of
``experiments/train_classifier.py`` is restored by name into ``config.model`` (shape mismatches
name the parameter). Everything is written under ``--workdir`` (see the config's docstring).
"""
from __future__ import annotations

import functools
import json
import os
import time

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs",
                              "inspect_shapes.py")


def _define_flags():
    """Command-line flags (defined only when run as a script, so tests can import this)."""
    flags.DEFINE_string("workdir", None, "Output folder (PNG, report.md, results.json).")
    flags.DEFINE_string("checkpoint_dir", None, "train_classifier.py workdir (or its "
                        "checkpoints/); overrides config.checkpoint_dir.")
    config_flags.DEFINE_config_file(
        "config", DEFAULT_CONFIG, "Path to an ml_collections config file (optionally "
        "':variant').", lock_config=True)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import vai_jax  # noqa: E402
from vai_jax.analysis import summarize  # noqa: E402
from vai_jax.analysis.activation_max import (AscentConfig, maximise_activation,  # noqa: E402
                                             to_display)
from vai_jax.analysis.bagnet_evidence import class_maps, evidence_maps  # noqa: E402
from vai_jax.analysis.filters import filter_images, first_layer_kernel  # noqa: E402
from vai_jax.analysis.layers import LOGITS, check_layers, layer_shapes  # noqa: E402
from vai_jax.analysis.patches import top_patches  # noqa: E402
from vai_jax.analysis.plain_cnn import PlainCNN  # noqa: E402
from vai_jax.analysis.probing import probe_layers, probe_table  # noqa: E402
from vai_jax.analysis.pruning import (plain_cnn_specs, prune_plain_cnn,  # noqa: E402
                                      prune_resnet, resnet_specs,
                                      spec_activation_scores)
from vai_jax.analysis.quantization import model_size_bytes, quantise_params  # noqa: E402
from vai_jax.analysis.receptive_field import layer_receptive_field  # noqa: E402
from vai_jax.analysis.transfer import restore_by_name  # noqa: E402
from vai_jax.backbones.resnet import ResNet  # noqa: E402
from vai_jax.data.shapes import CLASS_NAMES, NUM_CLASSES, ShapesDataset  # noqa: E402
from vai_jax.classification.losses import softmax_cross_entropy  # noqa: E402
from vai_jax.train.augment import CIFAR10_MEAN, CIFAR10_STD, make_preprocess  # noqa: E402
from vai_jax.train.checkpoint import restore_params  # noqa: E402
from vai_jax.train.state import TrainState  # noqa: E402
from vai_jax.train.step import make_train_step  # noqa: E402
from vai_jax.viz.grids import save_heatmap_grid, save_image_grid, save_rows_grid  # noqa: E402
from vai_jax.viz.lines import save_line_plot  # noqa: E402


# ------------------------------------------------------------------------------------ data
def load_shapes(split: str, n: int, image_size: int, seed: int) -> dict:
    """``{"image": uint8 [n, H, W, 3], "label": int32 [n]}`` of the classification task."""
    ds = ShapesDataset("classification", split=split, num_examples=n, image_size=image_size,
                       seed=seed)
    parts = [ds.get_batch(range(i, min(i + 1000, n))) for i in range(0, n, 1000)]
    return {k: np.concatenate([p[k] for p in parts]) for k in ("image", "label")}


def normalise(images) -> np.ndarray:
    """uint8 images -> the model input (train_classifier.py's normalisation)."""
    return ((np.asarray(images, np.float32) - np.asarray(CIFAR10_MEAN, np.float32))
            / np.asarray(CIFAR10_STD, np.float32))


# ---------------------------------------------------------------------------------- models
def build_model(cfg):
    if cfg.model == "plain_cnn":
        return PlainCNN(widths=tuple(cfg.widths), pool_after=tuple(cfg.pool_after),
                        num_classes=NUM_CLASSES)
    return vai_jax.create_model(cfg.model, num_classes=NUM_CLASSES)


def init(model, image_size: int, seed: int) -> dict:
    x = jnp.zeros((1, image_size, image_size, 3))
    return dict(jax.jit(lambda r: model.init(r, x, train=False))(jax.random.PRNGKey(seed)))


def restore(model, directory: str, image_size: int, seed: int) -> dict:
    """Latest checkpoint of train_classifier.py, restored by name into ``model``'s variables."""
    if os.path.isdir(os.path.join(directory, "checkpoints")):
        directory = os.path.join(directory, "checkpoints")
    state = restore_params(directory)
    source = {"params": state["params"]}
    if state.get("batch_stats"):
        source["batch_stats"] = state["batch_stats"]
    variables, report = restore_by_name(init(model, image_size, seed), source)
    if report.not_in_source or report.unused_source:
        raise ValueError(f"checkpoint {directory} does not match the model: {report.summary()}; "
                         f"missing {report.not_in_source[:5]}, unused {report.unused_source[:5]}")
    return variables


def train(model, variables, data, *, steps, batch_size, lr, weight_decay, crop_padding, seed,
          progress, desc):
    """Minimal optax loop (AdamW, cosine decay) with flips and shifts; returns variables."""
    if steps <= 0:
        return variables
    schedule = optax.cosine_decay_schedule(lr, steps)
    tx = optax.adamw(schedule, weight_decay=weight_decay)
    state = TrainState.create(apply_fn=model.apply, variables=variables, tx=tx,
                              rng=jax.random.PRNGKey(seed))
    step = jax.jit(make_train_step(softmax_cross_entropy,
                                   preprocess_fn=make_preprocess(crop_padding=crop_padding)))
    rng = np.random.default_rng(seed)
    n = len(data["label"])
    bar = tqdm(range(steps), desc=desc, disable=not progress)
    for _ in bar:
        idx = rng.integers(0, n, batch_size)
        state, metrics = step(state, {"image": data["image"][idx], "label": data["label"][idx]})
        if _ % 25 == 0:
            bar.set_postfix(loss=f"{float(metrics['loss']):.3f}")
    return state.variables()


@functools.lru_cache(maxsize=None)
def _predictor(model):
    """One compiled arg-max predictor per (hashable) model: re-used across accuracy calls."""
    return jax.jit(lambda v, x: jnp.argmax(model.apply(v, x, train=False)[0], -1))


def accuracy(model, variables, x, y, batch_size=250) -> float:
    run = _predictor(model)
    correct = 0
    for s in range(0, len(x), batch_size):
        pred = np.asarray(run(variables, x[s:s + batch_size]))
        correct += int(np.sum(pred == y[s:s + batch_size]))
    return correct / len(x)


def pruning_plan(model):
    """``(specs, prune(model, variables, ratio, method, stats), widths(model) -> str, what)``
    for the networks whose widths are fields (PlainCNN: every conv; ResNet: the inner
    convolutions of every unit), else None."""
    if isinstance(model, PlainCNN):
        return (plain_cnn_specs(model), prune_plain_cnn,
                lambda m: "x".join(map(str, m.widths)), "every conv")
    if isinstance(model, ResNet) and resnet_specs(model):
        def widths(m):
            inner = [w for stage in m.unit_inner_widths() for unit in stage for w in unit]
            return f"{sum(inner)} inner ch."
        return resnet_specs(model), prune_resnet, widths, "the inner convs of every residual unit"
    return None


# -------------------------------------------------------------------------------- sections
def md_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def run(cfg, workdir: str, checkpoint_dir: str | None) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    os.makedirs(workdir, exist_ok=True)
    out = {"config": cfg.to_dict()}
    report = [f"# Inside {cfg.model} on shapes {cfg.image_size}x{cfg.image_size}\n"]
    train_data = load_shapes("train", cfg.num_train, cfg.image_size, cfg.seed)
    test_data = load_shapes("test", cfg.num_test, cfg.image_size, cfg.seed)
    x_test, y_test = normalise(test_data["image"]), test_data["label"]
    hw = (cfg.image_size, cfg.image_size, 3)
    in_shape = (1,) + hw

    model = build_model(cfg)
    checkpoint_dir = checkpoint_dir or cfg.checkpoint_dir or None
    if checkpoint_dir:
        variables = restore(model, checkpoint_dir, cfg.image_size, cfg.seed)
        source = f"restored from {checkpoint_dir}"
    else:
        if cfg.model != "plain_cnn":
            raise ValueError(f"config.model={cfg.model!r} needs --checkpoint_dir (only "
                             f"'plain_cnn' is trained here)")
        t = time.perf_counter()
        variables = train(model, init(model, cfg.image_size, cfg.seed), train_data,
                          steps=cfg.train.steps, batch_size=cfg.train.batch_size,
                          lr=cfg.train.lr, weight_decay=cfg.train.weight_decay,
                          crop_padding=cfg.train.crop_padding, seed=cfg.seed,
                          progress=cfg.progress, desc="train")
        out["train_seconds"] = time.perf_counter() - t
        source = (f"trained here: {cfg.train.steps} steps x {cfg.train.batch_size} images, "
                  f"{out['train_seconds']:.0f} s")
    random_variables = init(model, cfg.image_size, cfg.seed + 1)
    out["test_accuracy"] = accuracy(model, variables, x_test, y_test)
    summary = summarize(model, in_shape, train=False)
    out["params"], out["macs"] = summary.params, summary.macs
    report.append(f"Network: {source}. Test accuracy {100 * out['test_accuracy']:.1f}% on "
                  f"{cfg.num_test} images; {summary.params:,} parameters, "
                  f"{summary.macs:,} MACs per image.\n")

    # Layers: the backbone's feature maps (PlainCNN: every conv).
    shapes = layer_shapes(model, variables, in_shape, train=False)
    layers = [l for l in cfg.layers if l] or [f.name for f in model.feature_info]
    check_layers(layers, list(shapes), "config.layers")
    fields = {l: layer_receptive_field(model, variables, l, in_shape, train=False)
              for l in layers}
    report.append("## Layers and receptive fields\n")
    report.append(md_table(["layer", "output", "receptive field (px)", "jump (px)"],
                           [[l, "x".join(map(str, shapes[l][1:])), fields[l].size[0],
                             fields[l].jump[0]] for l in layers]) + "\n")
    out["receptive_fields"] = {l: fields[l].size[0] for l in layers}

    # Filters.
    name, kernel = first_layer_kernel(variables)
    save_image_grid(filter_images(kernel), os.path.join(workdir, "filters.png"),
                    title=f"{name} filters {kernel.shape[0]}x{kernel.shape[1]}", cell_inches=0.8)
    report.append(f"## First-layer filters\n\n![filters](filters.png) ({name}, "
                  f"{kernel.shape[-1]} filters)\n")

    # Activation maximisation (one row per layer, plus the classes).
    a = cfg.actmax
    ascent = AscentConfig(steps=a.steps, learning_rate=a.lr, l2_decay=a.l2_decay,
                          blur_every=a.blur_every, blur_sigma=a.blur_sigma, jitter=a.jitter)
    rows, gains = {}, {}
    for layer in tqdm(layers + [LOGITS], desc="activation max", disable=not cfg.progress):
        n_ch = shapes[layer][-1]
        channels = list(range(min(a.channels, n_ch))) if layer != LOGITS else list(range(n_ch))
        # Maximise the pre-activation (BN output) where there is one: a ReLU unit that is off
        # on the blank start image has no gradient.
        target = f"{layer}/bn" if f"{layer}/bn" in shapes else layer
        imgs, before, after = maximise_activation(model, variables, target, channels,
                                                  input_shape=hw, config=ascent,
                                                  objective="centre" if layer != LOGITS
                                                  else "mean", seed=cfg.seed, train=False)
        rows[layer if layer != LOGITS else "classes"] = list(to_display(imgs))
        gains[layer] = float(np.mean(after - before))
    save_rows_grid(rows, os.path.join(workdir, "activation_max.png"),
                   col_titles={"classes": list(CLASS_NAMES)},
                   title="activation maximisation (centre unit per channel; classes: logits)")
    out["activation_max_mean_gain"] = gains
    report.append("## Activation maximisation\n\n![activation maximisation](activation_max.png)\n"
                  "\nGradient ascent from a blank image (L2 decay, blur, jitter); rows: layers "
                  "(first channels, centre unit, before the ReLU), last row: classes.\n")

    # Top patches (Zeiler & Fergus) on the test images.
    report.append("## Maximally activating patches\n")
    for layer in layers:
        res = top_patches(model, variables, layer, range(min(cfg.patches.channels,
                                                             shapes[layer][-1])),
                          x_test, test_data["image"], k=cfg.patches.k, fill=128, train=False,
                          progress=False)
        prow = {f"ch {c}": list(res.crops[i]) for i, c in enumerate(res.channels)}
        save_rows_grid(prow, os.path.join(workdir, f"patches_{layer.replace('/', '_')}.png"),
                       title=f"{layer}: top-{cfg.patches.k} test patches "
                             f"({res.field.size[0]} px receptive field)")
        report.append(f"![{layer}](patches_{layer.replace('/', '_')}.png)\n")

    # Linear probes, trained vs random.
    p = cfg.probe
    n_tr = min(p.num_train, cfg.num_train)
    x_tr, y_tr = normalise(train_data["image"][:n_tr]), train_data["label"][:n_tr]
    probes = {}
    for label, v in (("trained", variables), ("random init", random_variables)):
        probes[label] = probe_layers(model, v, layers, x_tr, y_tr, x_test, y_test,
                                     num_classes=NUM_CLASSES, target_dim=p.target_dim,
                                     steps=p.steps, learning_rate=p.lr,
                                     weight_decay=p.weight_decay, train=False)
    table = probe_table(probes)
    out["probe"] = {k: {l: r.test_accuracy for l, r in v.items()} for k, v in probes.items()}
    save_line_plot({k: (range(len(layers)), [100 * v[l].test_accuracy for l in layers])
                    for k, v in probes.items()}, os.path.join(workdir, "probe.png"),
                   xlabel="layer", ylabel="linear probe test accuracy (%)",
                   xticklabels=layers, hline=(100.0 / NUM_CLASSES, "chance"),
                   title="linear probes: accuracy vs depth")
    report.append("## Linear probes (test accuracy %, Zhang et al. 2017 style)\n\n" + table
                  + "\n\n![probe](probe.png)\n")

    # Pruning curve.
    plan = pruning_plan(model)
    if plan is not None:
        specs, prune, widths_of, what = plan
        r = cfg.prune
        x_val = normalise(train_data["image"][-min(1000, cfg.num_train):])
        stats = spec_activation_scores(model, variables, x_val, specs, train=False)
        rows_md, curve = [], {}
        base = ["0", widths_of(model), f"{summary.params:,}", f"{summary.macs:,}",
                f"{100 * out['test_accuracy']:.1f}", f"{100 * out['test_accuracy']:.1f}"]
        rows_md.append(["none"] + base)
        runs = [(m, q) for m in r.methods for q in r.ratios]
        for method, ratio in tqdm(runs, desc="prune + fine-tune", disable=not cfg.progress):
            small, sv, _ = prune(model, variables, ratio, method=method, activation_stats=stats)
            acc0 = accuracy(small, sv, x_test, y_test)
            sv = train(small, sv, train_data, steps=r.finetune_steps,
                       batch_size=cfg.train.batch_size, lr=r.finetune_lr,
                       weight_decay=cfg.train.weight_decay,
                       crop_padding=cfg.train.crop_padding, seed=cfg.seed + 2,
                       progress=False, desc="fine-tune")
            acc1 = accuracy(small, sv, x_test, y_test)
            s = summarize(small, in_shape, train=False)
            rows_md.append([method, ratio, widths_of(small), f"{s.params:,}", f"{s.macs:,}",
                            f"{100 * acc0:.1f}", f"{100 * acc1:.1f}"])
            curve.setdefault(f"{method} + fine-tune", [(summary.params,
                                                        100 * out["test_accuracy"])])
            curve[f"{method} + fine-tune"].append((s.params, 100 * acc1))
            out.setdefault("pruning", []).append(dict(
                method=method, ratio=ratio, widths=widths_of(small), params=s.params,
                macs=s.macs, accuracy_pruned=acc0, accuracy_finetuned=acc1))
        save_line_plot({k: tuple(zip(*v)) for k, v in curve.items()},
                       os.path.join(workdir, "pruning.png"), xlabel="parameters",
                       ylabel="test accuracy (%)", logx=True,
                       title=f"channel pruning of {what} ({r.finetune_steps} fine-tune steps)")
        report.append(f"## Pruning ({what}, the same ratio each)\n\n" + md_table(
            ["method", "ratio", "widths", "params", "MACs", "acc. pruned %",
             f"acc. +{r.finetune_steps} steps %"], rows_md) + "\n\n![pruning](pruning.png)\n")
    else:
        report.append(f"## Pruning\n\nSkipped: {type(model).__name__} has no width fields to "
                      "shrink (PlainCNN and ResNet have).\n")

    # Quantisation.
    float_size = model_size_bytes(variables)["total"]
    qrows = [["float32", f"{float_size:,}", "1.0", f"{100 * out['test_accuracy']:.1f}"]]
    for bits in cfg.quant.bits:
        qp, qlayers = quantise_params(variables["params"], bits)
        qv = dict(variables, params=jax.tree.map(jnp.asarray, qp))
        size = model_size_bytes(variables, qlayers)["total"]
        acc = accuracy(model, qv, x_test, y_test)
        qrows.append([f"{bits}-bit k-means", f"{size:,}", f"{float_size / size:.1f}",
                      f"{100 * acc:.1f}"])
        out.setdefault("quantisation", []).append(dict(bits=bits, bytes=size, accuracy=acc))
    report.append("## Quantisation (k-means weight sharing of every kernel, no fine-tuning)\n\n"
                  + md_table(["weights", "bytes", "compression", "test acc. %"], qrows) + "\n")
    out["float32_bytes"] = float_size

    # Evidence maps.
    n_ev = cfg.evidence_images
    ev, logits = evidence_maps(model, variables, x_test[:n_ev], train=False)
    pred = np.asarray(jnp.argmax(logits, -1))
    save_heatmap_grid(test_data["image"][:n_ev], class_maps(ev, pred),
                      os.path.join(workdir, "evidence.png"),
                      titles=[f"{CLASS_NAMES[p]} (true {CLASS_NAMES[t]})"
                              for p, t in zip(pred, y_test[:n_ev])])
    report.append("## Per-position class evidence (predicted class)\n\n![evidence](evidence.png)\n"
                  "\nThe classifier applied at every position of the last feature map (BagNet "
                  "style); red: more evidence than the image's average.\n")

    out["seconds"] = time.perf_counter() - t0
    out["cpu_seconds"] = time.process_time() - c0
    out["device"] = f"{jax.device_count()} x {jax.devices()[0].device_kind}"
    report.append(f"\nTotal {out['seconds']:.0f} s wall, {out['cpu_seconds']:.0f} s CPU (all "
                  f"threads) on {out['device']} ({os.cpu_count()} CPU cores visible).\n")
    with open(os.path.join(workdir, "report.md"), "w") as f:
        f.write("\n".join(report))
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump(out, f, indent=2, default=str)
    return out


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.workdir:
        raise app.UsageError("--workdir is required")
    logging.set_verbosity(logging.WARNING)
    out = run(FLAGS.config, FLAGS.workdir, FLAGS.checkpoint_dir)
    print(open(os.path.join(FLAGS.workdir, "report.md")).read())
    print(f"done in {out['seconds']:.0f} s; results in {FLAGS.workdir}")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
