"""The inspection experiment (the logic of ``main.py``): ``run(config, workdir)``.

Without ``config.checkpoint_dir`` a :class:`vai_jax.analysis.PlainCNN` is trained here first (a
minimal optax loop on the built-in shapes data); with one, the latest checkpoint of
``experiments/classifier`` is restored by name into ``config.model`` (shape mismatches name the
parameter). Each section adds its table to ``report.md`` and its figure (``plots.py``) to the
workdir; ``results.json`` holds the figures.
"""
from __future__ import annotations

import functools
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

import vai_jax
from experiments.inspection import plots
from vai_jax.analysis import summarize
from vai_jax.analysis.activation_max import AscentConfig, maximise_activation, to_display
from vai_jax.analysis.bagnet_evidence import class_maps, evidence_maps
from vai_jax.analysis.filters import first_layer_kernel
from vai_jax.analysis.layers import LOGITS, check_layers, layer_shapes
from vai_jax.analysis.patches import top_patches
from vai_jax.analysis.plain_cnn import PlainCNN
from vai_jax.analysis.probing import probe_layers, probe_table
from vai_jax.analysis.pruning import (plain_cnn_specs, prune_plain_cnn, prune_resnet,
                                      resnet_specs, spec_activation_scores)
from vai_jax.analysis.quantization import model_size_bytes, quantise_params
from vai_jax.analysis.receptive_field import layer_receptive_field
from vai_jax.analysis.timing import describe_devices
from vai_jax.analysis.transfer import restore_by_name
from vai_jax.backbones.resnet import ResNet
from vai_jax.classification.losses import softmax_cross_entropy
from vai_jax.data.shapes import NUM_CLASSES, ShapesDataset
from vai_jax.train.augment import CIFAR10_MEAN, CIFAR10_STD, make_preprocess
from vai_jax.train.checkpoint import restore_params
from vai_jax.train.state import TrainState
from vai_jax.train.step import make_train_step
from vai_jax.viz.tables import markdown_table


# ------------------------------------------------------------------------------------ data
def load_shapes(split: str, n: int, image_size: int, seed: int) -> dict:
    """``{"image": uint8 [n, H, W, 3], "label": int32 [n]}`` of the classification task."""
    ds = ShapesDataset("classification", split=split, num_examples=n, image_size=image_size,
                       seed=seed)
    parts = [ds.get_batch(range(i, min(i + 1000, n))) for i in range(0, n, 1000)]
    return {k: np.concatenate([p[k] for p in parts]) for k in ("image", "label")}


def normalise(images) -> np.ndarray:
    """uint8 images -> the model input (the classifier experiment's normalisation)."""
    return ((np.asarray(images, np.float32) - np.asarray(CIFAR10_MEAN, np.float32))
            / np.asarray(CIFAR10_STD, np.float32))


# ---------------------------------------------------------------------------------- models
def build_model(model_cfg):
    """``model_cfg.name`` is ``"plain_cnn"`` (:class:`PlainCNN`) or a
    :func:`vai_jax.create_model` name; its other fields are constructor fields."""
    kwargs = model_cfg.to_dict()
    name = kwargs.pop("name")
    if name == "plain_cnn":
        return PlainCNN(num_classes=NUM_CLASSES, **kwargs)
    return vai_jax.create_model(name, num_classes=NUM_CLASSES, **kwargs)


def init(model, image_size: int, seed: int) -> dict:
    x = jnp.zeros((1, image_size, image_size, 3))
    return dict(jax.jit(lambda r: model.init(r, x, train=False))(jax.random.PRNGKey(seed)))


def restore(model, directory: str, image_size: int, seed: int) -> dict:
    """Latest checkpoint of experiments/classifier, restored by name into ``model``'s variables."""
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
    for i in bar:
        idx = rng.integers(0, n, batch_size)
        state, metrics = step(state, {"image": data["image"][idx], "label": data["label"][idx]})
        if i % 25 == 0:
            bar.set_postfix(loss=f"{float(metrics['loss']):.3f}")
    return state.variables()


@functools.lru_cache(maxsize=None)
def _predictor(model):
    """One compiled arg-max predictor per (hashable) model: re-used across accuracy calls."""
    return jax.jit(lambda v, x: jnp.argmax(model.apply(v, x, train=False)[0], -1))


def accuracy(model, variables, x, y, batch_size=250) -> float:
    run_batch = _predictor(model)
    correct = 0
    for s in range(0, len(x), batch_size):
        pred = np.asarray(run_batch(variables, x[s:s + batch_size]))
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
def activation_max_section(cfg, model, variables, layers, shapes, workdir) -> tuple[str, dict]:
    """Gradient ascent from a blank image: one row per layer (first channels, centre unit),
    the last row the classes; returns (markdown, mean gain per layer)."""
    a = cfg.actmax
    ascent = AscentConfig(steps=a.steps, learning_rate=a.lr, l2_decay=a.l2_decay,
                          blur_every=a.blur_every, blur_sigma=a.blur_sigma, jitter=a.jitter)
    hw = (cfg.image_size, cfg.image_size, 3)
    rows, gains = {}, {}
    for layer in tqdm(layers + [LOGITS], desc="activation max", disable=not cfg.progress):
        n_ch = shapes[layer][-1]
        channels = list(range(min(a.channels, n_ch))) if layer != LOGITS else list(range(n_ch))
        # The pre-activation (BN output) where there is one: a ReLU unit that is off on the
        # blank start image has no gradient.
        target = f"{layer}/bn" if f"{layer}/bn" in shapes else layer
        imgs, before, after = maximise_activation(model, variables, target, channels,
                                                  input_shape=hw, config=ascent,
                                                  objective="centre" if layer != LOGITS
                                                  else "mean", seed=cfg.seed, train=False)
        rows[layer if layer != LOGITS else "classes"] = list(to_display(imgs))
        gains[layer] = float(np.mean(after - before))
    plots.activation_max(rows, workdir)
    return ("## Activation maximisation\n\n![activation maximisation](activation_max.png)\n"
            "\nGradient ascent from a blank image (L2 decay, blur, jitter); rows: layers "
            "(first channels, centre unit, before the ReLU), last row: classes.\n"), gains


def pruning_section(cfg, model, variables, plan, summary, accuracy0, train_data, x_test, y_test,
                    workdir) -> tuple[str, list]:
    """Prune every ratio x method, test before and after fine-tuning; (markdown, records)."""
    specs, prune, widths_of, what = plan
    r = cfg.prune
    in_shape = (1, cfg.image_size, cfg.image_size, 3)
    x_val = normalise(train_data["image"][-min(1000, cfg.num_train):])
    stats = spec_activation_scores(model, variables, x_val, specs, train=False)
    rows = [["none", "0", widths_of(model), f"{summary.params:,}", f"{summary.macs:,}",
             f"{100 * accuracy0:.1f}", f"{100 * accuracy0:.1f}"]]
    curve, records = {}, []
    runs = [(m, q) for m in r.methods for q in r.ratios]
    for method, ratio in tqdm(runs, desc="prune + fine-tune", disable=not cfg.progress):
        small, sv, _ = prune(model, variables, ratio, method=method, activation_stats=stats)
        acc0 = accuracy(small, sv, x_test, y_test)
        sv = train(small, sv, train_data, steps=r.finetune_steps,
                   batch_size=cfg.train.batch_size, lr=r.finetune_lr,
                   weight_decay=cfg.train.weight_decay, crop_padding=cfg.train.crop_padding,
                   seed=cfg.seed + 2, progress=False, desc="fine-tune")
        acc1 = accuracy(small, sv, x_test, y_test)
        s = summarize(small, in_shape, train=False)
        rows.append([method, ratio, widths_of(small), f"{s.params:,}", f"{s.macs:,}",
                     f"{100 * acc0:.1f}", f"{100 * acc1:.1f}"])
        curve.setdefault(f"{method} + fine-tune", [(summary.params, 100 * accuracy0)])
        curve[f"{method} + fine-tune"].append((s.params, 100 * acc1))
        records.append(dict(method=method, ratio=ratio, widths=widths_of(small), params=s.params,
                            macs=s.macs, accuracy_pruned=acc0, accuracy_finetuned=acc1))
    plots.pruning(curve, what, r.finetune_steps, workdir)
    table = markdown_table(["method", "ratio", "widths", "params", "MACs", "acc. pruned %",
                            f"acc. +{r.finetune_steps} steps %"], rows)
    return (f"## Pruning ({what}, the same ratio each)\n\n{table}\n\n![pruning](pruning.png)\n",
            records)


def quantisation_section(cfg, model, variables, accuracy0, x_test, y_test
                         ) -> tuple[str, list, int]:
    """k-means weight sharing of every kernel at each ``cfg.quant.bits``, no fine-tuning;
    (markdown, records, float32 bytes)."""
    float_size = model_size_bytes(variables)["total"]
    rows = [["float32", f"{float_size:,}", "1.0", f"{100 * accuracy0:.1f}"]]
    records = []
    for bits in cfg.quant.bits:
        qp, qlayers = quantise_params(variables["params"], bits)
        qv = dict(variables, params=jax.tree.map(jnp.asarray, qp))
        size = model_size_bytes(variables, qlayers)["total"]
        acc = accuracy(model, qv, x_test, y_test)
        rows.append([f"{bits}-bit k-means", f"{size:,}", f"{float_size / size:.1f}",
                     f"{100 * acc:.1f}"])
        records.append(dict(bits=bits, bytes=size, accuracy=acc))
    table = markdown_table(["weights", "bytes", "compression", "test acc. %"], rows)
    return ("## Quantisation (k-means weight sharing of every kernel, no fine-tuning)\n\n"
            + table + "\n"), records, float_size


# ------------------------------------------------------------------------------------- run
def run(cfg, workdir: str) -> dict:
    """Every section on the network of ``cfg``; writes ``report.md``, ``results.json`` and the
    figures to ``workdir`` and returns the results (with the report's text under ``report``)."""
    t0, c0 = time.perf_counter(), time.process_time()
    os.makedirs(workdir, exist_ok=True)
    out = {"config": cfg.to_dict()}
    report = [f"# Inside {cfg.model.name} on shapes {cfg.image_size}x{cfg.image_size}\n"]
    train_data = load_shapes("train", cfg.num_train, cfg.image_size, cfg.seed)
    test_data = load_shapes("test", cfg.num_test, cfg.image_size, cfg.seed)
    x_test, y_test = normalise(test_data["image"]), test_data["label"]
    in_shape = (1, cfg.image_size, cfg.image_size, 3)

    model = build_model(cfg.model)
    if cfg.checkpoint_dir:
        variables = restore(model, cfg.checkpoint_dir, cfg.image_size, cfg.seed)
        source = f"restored from {cfg.checkpoint_dir}"
    else:
        if cfg.model.name != "plain_cnn":
            raise ValueError(f"config.model.name={cfg.model.name!r} needs config.checkpoint_dir "
                             f"(only 'plain_cnn' is trained here)")
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
    report.append(markdown_table(["layer", "output", "receptive field (px)", "jump (px)"],
                                 [[l, "x".join(map(str, shapes[l][1:])), fields[l].size[0],
                                   fields[l].jump[0]] for l in layers]) + "\n")
    out["receptive_fields"] = {l: fields[l].size[0] for l in layers}

    name, kernel = first_layer_kernel(variables)
    plots.filters(kernel, name, workdir)
    report.append(f"## First-layer filters\n\n![filters](filters.png) ({name}, "
                  f"{kernel.shape[-1]} filters)\n")

    text, out["activation_max_mean_gain"] = activation_max_section(cfg, model, variables, layers,
                                                                   shapes, workdir)
    report.append(text)

    # Top patches (Zeiler & Fergus) on the test images.
    report.append("## Maximally activating patches\n")
    for layer in layers:
        res = top_patches(model, variables, layer,
                          range(min(cfg.patches.channels, shapes[layer][-1])),
                          x_test, test_data["image"], k=cfg.patches.k, fill=128, train=False,
                          progress=False)
        plots.top_patches(res, layer, cfg.patches.k, workdir)
        report.append(f"![{layer}]({plots.patches_name(layer)})\n")

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
    out["probe"] = {k: {l: r.test_accuracy for l, r in v.items()} for k, v in probes.items()}
    plots.probe(probes, layers, workdir)
    report.append("## Linear probes (test accuracy %, Zhang et al. 2017 style)\n\n"
                  + probe_table(probes) + "\n\n![probe](probe.png)\n")

    plan = pruning_plan(model)
    if plan is not None:
        text, out["pruning"] = pruning_section(cfg, model, variables, plan, summary,
                                               out["test_accuracy"], train_data, x_test, y_test,
                                               workdir)
        report.append(text)
    else:
        report.append(f"## Pruning\n\nSkipped: {type(model).__name__} has no width fields to "
                      "shrink (PlainCNN and ResNet have).\n")

    text, out["quantisation"], out["float32_bytes"] = quantisation_section(
        cfg, model, variables, out["test_accuracy"], x_test, y_test)
    report.append(text)

    n_ev = cfg.evidence_images
    ev, logits = evidence_maps(model, variables, x_test[:n_ev], train=False)
    pred = np.asarray(jnp.argmax(logits, -1))
    plots.evidence(test_data["image"][:n_ev], class_maps(ev, pred), pred, y_test[:n_ev], workdir)
    report.append("## Per-position class evidence (predicted class)\n\n![evidence](evidence.png)\n"
                  "\nThe classifier applied at every position of the last feature map (BagNet "
                  "style); red: more evidence than the image's average.\n")

    out["seconds"] = time.perf_counter() - t0
    out["cpu_seconds"] = time.process_time() - c0
    out["device"] = describe_devices()
    report.append(f"\nTotal {out['seconds']:.0f} s wall, {out['cpu_seconds']:.0f} s CPU (all "
                  f"threads) on {out['device']}.\n")
    text = "\n".join(report)
    with open(os.path.join(workdir, "report.md"), "w") as f:
        f.write(text)
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump(out, f, indent=2, default=str)
    return dict(out, report=text)
