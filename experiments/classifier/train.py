"""Training and evaluation of an image classifier (the logic of ``main.py``).

``train_and_evaluate(config, workdir)`` builds the data, the model (``config.model`` holds
:func:`vai_jax.create_model`'s arguments), the optimiser and the data-parallel steps, runs
:func:`vai_jax.train.loop.fit` and writes ``results.json`` and ``curves.png``.
"""
from __future__ import annotations

import functools
import json
import os
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import vai_jax
from vai_jax.classification.losses import softmax_cross_entropy
from vai_jax.classification.metrics import topk_counts
from vai_jax.data.pipeline import make_loader
from vai_jax.data.shapes import NUM_CLASSES as SHAPES_NUM_CLASSES
from vai_jax.data.shapes import ShapesDataset
from vai_jax.data.sources import ArraySource, SelectKeys
from vai_jax.train import distributed, parallel
from vai_jax.train.augment import make_preprocess
from vai_jax.train.checkpoint import CheckpointManager
from vai_jax.train.curves import plot_curves
from vai_jax.train.loop import EarlyStopping, Plateau, evaluate, fit
from vai_jax.train.metrics_writer import MetricsWriter
from vai_jax.train.optim import make_optimizer, make_plateau, make_schedule
from vai_jax.train.precision import DynamicLossScale, compute_dtype, needs_loss_scale
from vai_jax.train.regularization import make_weight_penalty
from vai_jax.train.state import TrainState, init_variables
from vai_jax.train.step import make_eval_step, make_train_step

NUM_CLASSES = {"shapes": SHAPES_NUM_CLASSES, "cifar10": 10}


class TinyCNN(nn.Module):
    """Two conv-BN-ReLU layers, dropout and a linear classifier: for smoke tests (seconds)."""

    num_classes: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = x.astype(self.dtype)
        for i, width in enumerate((8, 16)):
            x = nn.Conv(width, (3, 3), strides=2, dtype=self.dtype, name=f"conv{i + 1}")(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype,
                             name=f"bn{i + 1}")(x)
            x = nn.relu(x)
        x = jnp.mean(x, axis=(1, 2))
        x = nn.Dropout(0.1, deterministic=not train)(x)
        return nn.Dense(self.num_classes, dtype=self.dtype, name="fc")(x), {}


def build_model(model_cfg, num_classes: int, dtype):
    """``model_cfg.name`` is ``"tiny_cnn"`` (local smoke-test model) or any
    :func:`vai_jax.create_model` name; its other fields are constructor arguments."""
    kwargs = dict(model_cfg)
    name = kwargs.pop("name")
    if name == "tiny_cnn":
        return TinyCNN(num_classes=num_classes, dtype=dtype, **kwargs)
    return vai_jax.create_model(name, num_classes=num_classes, dtype=dtype, **kwargs)


def materialise_shapes(split: str, num_examples: int, image_size: int, seed: int) -> ArraySource:
    """The shapes classification split, generated once and kept in memory."""
    ds = ShapesDataset("classification", split=split, num_examples=num_examples,
                       image_size=image_size, seed=seed)
    return ds.materialise(("image", "label"))


def build_sources(cfg):
    """(train source, test source) of records ``{"image": uint8 [H, W, 3], "label": int32}``."""
    if cfg.dataset == "shapes":
        return (materialise_shapes("train", cfg.num_train_examples, cfg.image_size, cfg.seed),
                materialise_shapes("test", cfg.num_test_examples, cfg.image_size, cfg.seed))
    if cfg.dataset == "cifar10":
        from vai_jax.data.sources import load_source

        data_dir = cfg.data_dir or None
        strip = lambda src: SelectKeys(src, ("image", "label"))
        return (strip(load_source("cifar10", "train", data_dir=data_dir)),
                strip(load_source("cifar10", "test", data_dir=data_dir)))
    raise ValueError(f"config.dataset must be one of {sorted(NUM_CLASSES)}; got {cfg.dataset!r}")


def build_optimizer(cfg):
    """(optax transformation, schedule) from ``cfg.optimizer`` and ``cfg.schedule``."""
    o, s = cfg.optimizer, cfg.schedule
    updates = cfg.num_steps // o.accumulate_steps
    schedule = make_schedule(s.kind, base_lr=o.lr, total_steps=updates,
                             warmup_steps=s.warmup_steps, boundaries=tuple(s.boundaries),
                             decay_factor=s.decay_factor)
    tx = make_optimizer(o.name, learning_rate=schedule, momentum=o.momentum,
                        nesterov=o.nesterov, b1=o.b1, b2=o.b2, weight_decay=o.weight_decay,
                        clip_grad_norm=o.clip_grad_norm or None,
                        accumulate_steps=o.accumulate_steps)
    return tx, schedule


def train_and_evaluate(cfg, workdir: str) -> dict:
    """Run the whole job; returns (and writes to ``results.json``) the summary."""
    t_start = time.perf_counter()
    distributed.initialize_from_env()
    os.makedirs(workdir, exist_ok=True)
    if cfg.dataset not in NUM_CLASSES:
        raise ValueError(f"config.dataset must be one of {sorted(NUM_CLASSES)}; "
                         f"got {cfg.dataset!r}")
    num_classes = NUM_CLASSES[cfg.dataset]
    mesh = parallel.make_mesh()
    parallel.check_batch_size(cfg.batch_size, mesh, "config.batch_size")
    local_batch = cfg.batch_size // jax.process_count()

    train_source, test_source = build_sources(cfg)
    train_loader = make_loader(train_source, batch_size=cfg.batch_size, seed=cfg.seed,
                               shuffle=True, worker_count=cfg.grain_workers,
                               num_classes=num_classes)
    test_loader = make_loader(test_source, batch_size=cfg.batch_size, seed=cfg.seed,
                              shuffle=False, num_epochs=1, drop_remainder=False,
                              num_classes=num_classes)
    image_shape = tuple(np.shape(train_source[0]["image"]))

    dtype = compute_dtype(cfg.precision)
    model = build_model(cfg.model, num_classes, dtype)
    rng = jax.random.PRNGKey(cfg.seed)
    init_rng, state_rng = jax.random.split(rng)
    variables = init_variables(model, (1,) + image_shape, rng=init_rng)
    num_params = sum(x.size for x in jax.tree.leaves(variables["params"]))
    tx, schedule = build_optimizer(cfg)
    plateau_tx = None
    if cfg.plateau.enabled:
        p = cfg.plateau
        plateau_tx = make_plateau(factor=p.factor, patience=p.patience,
                                  max_reductions=p.max_reductions)
    state = TrainState.create(
        apply_fn=model.apply, variables=variables, tx=tx, rng=state_rng,
        ema=cfg.ema_decay > 0, plateau=plateau_tx,
        loss_scale=DynamicLossScale.create() if needs_loss_scale(cfg.precision) else None)
    state = parallel.replicate(state, mesh)

    preprocess = make_preprocess(flip=cfg.augment.flip, crop_padding=cfg.augment.crop_padding)
    loss_fn = functools.partial(softmax_cross_entropy, label_smoothing=cfg.label_smoothing)
    reg = cfg.regularization
    train_step = make_train_step(
        loss_fn,
        metrics_fn=lambda out, b: {"accuracy": (jnp.argmax(out[0], -1) == b["label"])},
        preprocess_fn=preprocess,
        regularizer=make_weight_penalty(l1=reg.l1, l2=reg.l2) if reg.l1 or reg.l2 else None,
        ema_decay=cfg.ema_decay or None, num_classes=num_classes)
    ks = tuple(k for k in cfg.eval_topk if k <= num_classes)
    eval_step = make_eval_step(
        lambda out, b, mask: topk_counts(out[0], b["label"], ks, mask),
        preprocess_fn=preprocess, loss_fn=loss_fn, use_ema=cfg.ema_decay > 0,
        num_classes=num_classes)
    run_train = parallel.data_parallel(train_step, mesh)
    run_eval = parallel.data_parallel(eval_step, mesh, donate_state=False)
    evaluate_test = lambda s: evaluate(run_eval, s, iter(test_loader), batch_size=local_batch)

    checkpoints = CheckpointManager(os.path.join(workdir, "checkpoints"),
                                    save_every=cfg.checkpoint_every,
                                    max_to_keep=cfg.keep_checkpoints,
                                    best_metric=cfg.best_metric or None)
    writer = MetricsWriter(workdir)
    es = cfg.early_stopping
    result = fit(
        state, train_step=run_train, train_iter=iter(train_loader), num_steps=cfg.num_steps,
        batch_size=cfg.batch_size, eval_fn=evaluate_test, eval_every=cfg.eval_every,
        log_every=cfg.log_every, checkpoints=checkpoints, writer=writer,
        learning_rate_fn=lambda step: schedule(step // cfg.optimizer.accumulate_steps),
        plateau=Plateau(plateau_tx, cfg.plateau.metric) if plateau_tx is not None else None,
        early_stopping=EarlyStopping(es.metric, es.patience) if es.patience else None,
        place_state=lambda s: parallel.replicate(s, mesh), progress=cfg.progress)
    checkpoints.close()
    writer.close()

    summary = {
        "model": cfg.model.name, "dataset": cfg.dataset, "num_params": int(num_params),
        "steps": result.step, "stopped_by": result.stopped_by,
        **{f"test_{k}": v for k, v in result.last_eval.items()},
        "skipped_steps": result.skipped_steps, "skip_causes": result.skip_causes,
        "images_per_sec": result.images_per_sec,
        "train_seconds": result.train_seconds,
        "job_seconds": time.perf_counter() - t_start,
                "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
        "processes": jax.process_count(), "jax_version": jax.__version__,
        "config": cfg.to_dict(),
    }
    if jax.process_index() == 0:
        if os.path.exists(writer.path):
            plot_curves(writer.path, os.path.join(workdir, "curves.png"),
                        title=f"{cfg.model.name} on {cfg.dataset}")
        with open(os.path.join(workdir, "results.json"), "w") as f:
            json.dump(summary, f, indent=2, default=str)
    return summary


def summary_line(summary: dict, workdir: str) -> str:
    """One line for the terminal: steps, test top-1, throughput, wall time, where results are."""
    top1 = summary.get("test_top1")
    return (f"done: {summary['steps']} steps, test top-1 "
            f"{'n/a' if top1 is None else f'{100 * top1:.2f}%'}, "
            f"{summary['images_per_sec']:.1f} images/s, {summary['job_seconds']:.0f} s; "
            f"results in {os.path.join(workdir, 'results.json')}")
