"""Train and compare semantic segmentation networks at an equal budget (the logic of
``main.py``).

``run(config, workdir)`` trains every model of ``config.models`` with the same steps, batch
size and optimiser, evaluates it on the test split and writes ``results.json``,
``results.md`` (mIoU, object IoU, pixel accuracy, parameters, multiply-accumulates, inference
and training images/s per model), ``comparison.png``, ``predictions.png`` and
``gridding.png`` (:mod:`experiments.segmentation.plots`).

The models (:data:`MODELS`): FCN-32s/16s/8s (Long et al. 2015) on a ResNet at output stride
32, DeepLab v3 (Chen et al. 2017) on the same ResNet dilated to output stride 8 (or 16),
ESPNet (Mehta et al. 2018) with and without hierarchical feature fusion, ESPNet-C, and the
encoder-decoder networks (Noh et al. 2015; SegNet). ``config.backbone`` holds
:func:`vai_jax.create_model`'s arguments, ``config.fcn`` / ``config.deeplab`` /
``config.deeplab_os16`` / ``config.espnet`` / ``config.encdec`` the constructor fields of the
heads and networks; the name of a model fixes the rest (variant, output stride, HFF).
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
from tqdm import tqdm

from experiments.segmentation import plots
from vai_jax.analysis import summarize
from vai_jax.analysis.timing import time_calls
from vai_jax.data.pipeline import make_loader
from vai_jax.data.shapes import CLASS_NAMES as SHAPES_CLASS_NAMES
from vai_jax.data.shapes import ShapesDataset
from vai_jax.segmentation.inputs import CheckLabels, pixel_counts
from vai_jax.segmentation.losses import inverse_frequency_weights, segmentation_loss
from vai_jax.segmentation.metrics import ConfusionMatrix, confusion_matrix, object_iou
from vai_jax.segmentation.models import EncoderDecoder, ESPNet, deeplabv3, fcn
from vai_jax.train import parallel
from vai_jax.train.loop import fit
from vai_jax.train.optim import make_optimizer, make_schedule
from vai_jax.train.state import TrainState, init_variables
from vai_jax.train.step import make_train_step

MEAN, STD = 0.5, 0.25

MODELS = {
    "fcn32s": lambda c, k: fcn(c.backbone, k, variant=32, **c.fcn),
    "fcn16s": lambda c, k: fcn(c.backbone, k, variant=16, **c.fcn),
    "fcn8s": lambda c, k: fcn(c.backbone, k, variant=8, **c.fcn),
    "deeplab_os16": lambda c, k: deeplabv3(c.backbone, k, output_stride=16, **c.deeplab_os16),
    "deeplab": lambda c, k: deeplabv3(c.backbone, k, output_stride=8, **c.deeplab),
    "espnet": lambda c, k: ESPNet(k, hff=True, **c.espnet),
    "espnet_nohff": lambda c, k: ESPNet(k, hff=False, **c.espnet),
    "espnet_c": lambda c, k: ESPNet(k, decoder=False, **c.espnet),
    "encdec_unpool": lambda c, k: EncoderDecoder(k, upsample="unpool", **c.encdec),
    "encdec_learned": lambda c, k: EncoderDecoder(k, upsample="learned", **c.encdec),
}
"""The models this experiment compares: ``MODELS[name](config, num_classes)``."""


def build_model(name: str, cfg, num_classes: int):
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    return MODELS[name](cfg, num_classes)


def build_data(cfg):
    """(train source, test source, num_classes, class names, transforms)."""
    if cfg.dataset == "shapes":
        names = ("background",) + tuple(SHAPES_CLASS_NAMES)
        split = lambda s, n: ShapesDataset("detection", split=s, num_examples=n,
                                           image_size=cfg.image_size, seed=cfg.seed
                                           ).materialise(("image", "semantic"), chunk=500)
        train = split("train", cfg.num_train_examples)
        test = split("test", cfg.num_test_examples)
        return train, test, len(names), names, [CheckLabels(len(names), cfg.ignore_label)]
    if cfg.dataset == "voc":
        from vai_jax.data.segmentation_sources import VOC_CLASS_NAMES, load_segmentation_source
        from vai_jax.data.transforms import Resize

        data_dir = cfg.data_dir or None
        train = load_segmentation_source(cfg.tfds_name, cfg.train_split, data_dir=data_dir)
        test = load_segmentation_source(cfg.tfds_name, cfg.test_split, data_dir=data_dir)
        n = len(VOC_CLASS_NAMES)
        return train, test, n, VOC_CLASS_NAMES, [CheckLabels(n, cfg.ignore_label),
                                                 Resize((cfg.image_size, cfg.image_size))]
    raise ValueError(f"config.dataset must be 'shapes' or 'voc'; got {cfg.dataset!r}")


def preprocess(batch, rng, *, train: bool):
    del rng, train
    return (batch["image"].astype(jnp.float32) / 255.0 - MEAN) / STD


def class_weights(cfg, train_source, num_classes, max_examples: int = 2000):
    """``(count + 1)^-power`` per class over (up to ``max_examples``) training masks, or None."""
    if not cfg.class_weight_power:
        return None
    counts = pixel_counts(train_source, num_classes, max_examples=max_examples)
    return inverse_frequency_weights(counts, power=cfg.class_weight_power)


def train_one(name, cfg, num_classes, train_source, transforms, mesh, weights=None,
              loss_fn=None):
    """Build ``name`` and train it from scratch by the recipe of ``cfg``; ``loss_fn``
    (``(outputs, batch) -> [B]``) defaults to the class-weighted pixel cross-entropy.
    Returns ``(model, FitResult)``."""
    model = build_model(name, cfg, num_classes)
    rng = jax.random.PRNGKey(cfg.seed)
    init_rng, state_rng = jax.random.split(rng)
    variables = init_variables(model, (1, cfg.image_size, cfg.image_size, 3), rng=init_rng)
    if loss_fn is None:
        loss_fn = functools.partial(segmentation_loss, ignore_label=cfg.ignore_label,
                                    class_weights=weights)
    return model, train_from(model, variables, cfg, train_source, transforms, mesh, loss_fn,
                             rng=state_rng, num_steps=cfg.num_steps, lr=cfg.lr,
                             warmup_steps=cfg.warmup_steps)


def train_from(model, variables, cfg, train_source, transforms, mesh, loss_fn, *, rng,
               num_steps: int, lr: float, warmup_steps: int, batch_size: int | None = None,
               update_scale: dict | None = None):
    """Train ``model`` from ``variables`` (a fresh init or a trained network to fine-tune) for
    ``num_steps`` with AdamW (``cfg.weight_decay``), cosine decay from ``lr`` after
    ``warmup_steps``, ``batch_size`` (default ``cfg.batch_size``) images a step shuffled by
    ``cfg.seed``. ``update_scale`` maps top-level parameter names to a factor on their updates
    (a learning rate ``factor · lr`` for that sub-module). Returns the
    :class:`~vai_jax.train.loop.FitResult`."""
    batch_size = cfg.batch_size if batch_size is None else batch_size
    schedule = make_schedule("cosine", base_lr=lr, total_steps=num_steps,
                             warmup_steps=warmup_steps)
    tx = make_optimizer("adamw", learning_rate=schedule, weight_decay=cfg.weight_decay)
    for top, factor in (update_scale or {}).items():
        if top not in variables["params"]:
            raise ValueError(f"update_scale names {top!r}, not a top-level parameter of the "
                             f"model {sorted(variables['params'])}")
        mask = lambda params, top=top: jax.tree_util.tree_map_with_path(
            lambda path, _: path[0].key == top, params)
        tx = optax.chain(tx, optax.masked(optax.scale(float(factor)), mask))
    state = parallel.replicate(TrainState.create(apply_fn=model.apply, variables=variables,
                                                 tx=tx, rng=rng), mesh)
    step = parallel.data_parallel(make_train_step(loss_fn, preprocess_fn=preprocess), mesh)
    loader = make_loader(train_source, batch_size=batch_size, seed=cfg.seed, shuffle=True,
                         transforms=transforms)
    return fit(state, train_step=step, train_iter=iter(loader), num_steps=num_steps,
               batch_size=batch_size, log_every=cfg.log_every, progress=cfg.progress)


def evaluate_model(model, variables, test_source, cfg, num_classes, transforms):
    """(metrics dict, first predictions [N, H, W]) over the test set."""
    forward = jax.jit(lambda v, x: jnp.argmax(model.apply(v, preprocess({"image": x}, None,
                                                                       train=False),
                                                          train=False)["out"], -1))
    cm_fn = jax.jit(lambda y, p, m: confusion_matrix(y, p, num_classes,
                                                     ignore_label=cfg.ignore_label, mask=m))
    acc = ConfusionMatrix(num_classes)
    loader = make_loader(test_source, batch_size=cfg.eval_batch_size, seed=0, shuffle=False,
                         num_epochs=1, drop_remainder=False, transforms=transforms)
    keep = []
    for batch in loader:
        n = len(batch["image"])
        pad = cfg.eval_batch_size - n
        img, sem = batch["image"], batch["semantic"]
        if pad:
            img = np.concatenate([img, np.repeat(img[-1:], pad, 0)])
            sem = np.concatenate([sem, np.repeat(sem[-1:], pad, 0)])
        mask = (np.arange(cfg.eval_batch_size) < n)[:, None, None]
        pred = forward(variables, img)
        acc.update(cm_fn(sem, pred, mask))
        if sum(len(k) for k in keep) < cfg.num_figure_examples:
            keep.append(np.asarray(pred[:n]))
    metrics = acc.result()
    metrics["object_iou"] = object_iou(acc.matrix)
    return metrics, np.concatenate(keep)[:cfg.num_figure_examples]


def inference_images_per_sec(model, variables, cfg, repeats: int) -> float:
    x = jnp.zeros((cfg.eval_batch_size, cfg.image_size, cfg.image_size, 3))
    f = jax.jit(lambda v, x: model.apply(v, x, train=False))
    return cfg.eval_batch_size / time_calls(lambda: f(variables, x), num_steps=repeats).wall_s


def espnet_internals(model, variables, images, cfg) -> dict:
    """Predictions, confidence (max softmax probability) ``[N, H, W]`` and the output of the
    last stride-4 ESP block (``level2_<alpha>``) of a trained ESPNet, restricted to the
    channels of its dilated branches (rates 2, 4, …; with HFF their cumulative sums):
    ``[N, H/4, W/4, w2 − first]`` where ``first = w2 − (K − 1)·⌊w2 / K⌋`` is the width of
    the rate-1 branch."""
    from vai_jax.analysis.layers import layer_outputs

    block = f"level2_{cfg.espnet.alpha}"
    x = preprocess({"image": jnp.asarray(images)}, None, train=False)

    @jax.jit
    def run(v, x):
        act = layer_outputs(model, v, x, [block], train=False)[block]
        return act, model.apply(v, x, train=False)["out"]

    act, logits = run(variables, x)
    prob = jax.nn.softmax(logits.astype(jnp.float32), -1)
    w2, k = act.shape[-1], model.branches
    first = w2 - (k - 1) * (w2 // k)
    return {"pred": np.asarray(jnp.argmax(prob, -1)), "confidence": np.asarray(prob.max(-1)),
            "activation": np.asarray(act[..., first:]), "block": block}


def transforms_apply(transforms, record):
    for t in transforms:
        record = t(record, np.random.default_rng(0))
    return record


def results_table(rows) -> str:
    lines = ["| model | mIoU | object IoU | pixel acc. | params | MACs | inference img/s | "
             "train img/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['miou']:.3f} | {r['object_iou']:.3f} | "
                     f"{r['pixel_accuracy']:.3f} | "
                     f"{r['params']:,} | {r['macs'] / 1e6:.2f} M | "
                     f"{r['inference_images_per_sec']:.0f} | {r['train_images_per_sec']:.0f} |")
    return "\n".join(lines)


def run(cfg, workdir: str) -> dict:
    """Train, evaluate and draw every model of ``cfg.models``; returns (and writes to
    ``results.json``) the rows and the run's facts."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    os.makedirs(workdir, exist_ok=True)
    mesh = parallel.make_mesh()
    parallel.check_batch_size(cfg.batch_size, mesh, "config.batch_size")
    train_source, test_source, num_classes, class_names, transforms = build_data(cfg)
    rows, preds, trained = [], {}, {}
    weights = class_weights(cfg, train_source, num_classes)
    for name in cfg.models:
        tqdm.write(f"== {name}")
        model, result = train_one(name, cfg, num_classes, train_source, transforms, mesh,
                                  weights)
        variables = jax.device_get(result.state.variables())
        metrics, pred = evaluate_model(model, variables, test_source, cfg, num_classes,
                                       transforms)
        summary = summarize(model, (1, cfg.image_size, cfg.image_size, 3), train=False)
        row = {"model": name, "miou": metrics["miou"], "pixel_accuracy": metrics["pixel_accuracy"],
               "mean_accuracy": metrics["mean_accuracy"], "object_iou": metrics["object_iou"],
               "iou": [None if np.isnan(v) else float(v) for v in metrics["iou"]],
               "params": summary.params, "macs": summary.macs,
               "inference_images_per_sec": inference_images_per_sec(model, variables, cfg,
                                                                     cfg.bench_repeats),
               "train_images_per_sec": result.images_per_sec,
               "train_seconds": result.train_seconds, "steps": result.step}
        tqdm.write(f"{name}: mIoU {row['miou']:.3f}, object IoU {row['object_iou']:.3f}, "
                   f"pixel acc {row['pixel_accuracy']:.3f}, "
                   f"{row['params']:,} params, {row['macs'] / 1e6:.1f} M MACs, "
                   f"{row['inference_images_per_sec']:.0f} img/s inference")
        rows.append(row)
        preds[name] = pred
        if name in ("espnet", "espnet_nohff"):
            trained[name] = (model, variables)
    n_fig = min(cfg.num_figure_examples, len(test_source))
    test_records = [transforms_apply(transforms, test_source[i]) for i in range(n_fig)]
    images = np.stack([r["image"] for r in test_records])
    truth = np.stack([r["semantic"] for r in test_records])
    plots.plot_comparison(rows, os.path.join(workdir, "comparison.png"))
    plots.plot_predictions(images, truth, {k: v[:n_fig] for k, v in preds.items()},
                           num_classes, cfg.ignore_label, os.path.join(workdir, "predictions.png"))
    internals = None
    if set(trained) == {"espnet", "espnet_nohff"}:
        internals = {k: espnet_internals(*trained[k], images, cfg) for k in trained}
    erf = plots.effective_receptive_fields(cfg.gridding.size, inits=cfg.gridding.inits)
    gridding = plots.plot_gridding(erf, internals, images, truth, num_classes, cfg.ignore_label,
                                   os.path.join(workdir, "gridding.png"))
    out = {"rows": rows, "class_names": list(class_names), "dataset": cfg.dataset,
           "image_size": cfg.image_size, "num_steps": cfg.num_steps,
           "class_weights": None if weights is None else weights.tolist(),
           "gridding_high_freq": gridding,
           "batch_size": cfg.batch_size, "wall_seconds": time.perf_counter() - t0,
           "process_cpu_seconds": time.process_time() - cpu0,
           "load_average": os.getloadavg(),
           "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
           "config": cfg.to_dict()}
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump(out, f, indent=2, default=str)
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write(results_table(rows) + "\n")
    return out


def summary_line(out: dict, workdir: str) -> str:
    """One line for the terminal: wall and CPU time, load, where the results are."""
    return (f"done in {out['wall_seconds']:.0f} s wall, {out['process_cpu_seconds']:.0f} s "
            f"process CPU (load average {out['load_average'][0]:.1f}); results in {workdir}")
