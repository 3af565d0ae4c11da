"""Pure train and eval steps built from a loss function.

``make_train_step(loss_fn, ...)`` returns ``train_step(state, batch) -> (state, metrics)``; the
model is ``state.apply_fn`` (Flax ``examples/imagenet`` style). Hyper-parameters are bound when
the step is built, never read from a config inside jitted code. The same function runs

* under ``jax.jit`` over a ``('data',)`` mesh with the batch sharded (the main path, see
  :mod:`vai_jax.train.parallel`): means are over the global batch and BatchNorm statistics are
  the global batch's, with no collective written here; and
* under ``jax.pmap(..., axis_name=A)`` when built with ``axis_name=A``: gradients, metrics
  and (through the model's own ``axis_name``) BatchNorm statistics are averaged across ``A``.

Randomness for dropout and augmentation is ``fold_in(state.rng, state.step)`` (and the device
index under pmap). A step whose gradients are not all finite changes nothing but ``step``,
``skipped_steps`` and the float16 loss scale: params, optimiser state, BatchNorm statistics and
EMA are kept.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from vai_jax.train.precision import all_finite
from vai_jax.train.state import TrainState

LossFn = Callable  # (outputs, batch) -> float32 [B] per-example loss
MetricsFn = Callable  # (outputs, batch) -> {name: float32 [B]} per-example metrics


def default_preprocess(batch, rng, *, train: bool):
    """``batch["image"]`` as float32 (no augmentation)."""
    del rng, train
    return batch["image"].astype(jnp.float32)


def _select(pred, new, old):
    return jax.tree.map(lambda n, o: jnp.where(pred, n, o), new, old)


def _weighted_mean(values, weight):
    return jnp.sum(values * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def make_train_step(loss_fn: LossFn, *, metrics_fn: MetricsFn | None = None,
                    preprocess_fn: Callable = default_preprocess,
                    regularizer: Callable | None = None, ema_decay: float | None = None,
                    axis_name: str | None = None) -> Callable:
    """Build ``train_step(state, batch) -> (new_state, metrics)``.

    Args:
      loss_fn: ``(outputs, batch) -> [B]`` per-example loss (e.g.
        ``functools.partial(vai_jax.classification.losses.softmax_cross_entropy,
        label_smoothing=0.1)``); ``outputs`` is whatever ``state.apply_fn`` returns.
      metrics_fn: ``(outputs, batch) -> {name: [B]}`` per-example training metrics.
      preprocess_fn: ``(batch, rng, *, train) -> model input`` (normalisation and on-device
        augmentation; ``rng`` is this step's key).
      regularizer: ``params -> float32 []`` added to the mean loss (see
        :func:`vai_jax.train.regularization.make_weight_penalty`).
      ema_decay: decay of ``state.ema_params`` (required iff the state keeps an EMA).
      axis_name: the pmap axis to average gradients and metrics over; ``None`` under jit.

    ``batch`` is a dict of arrays with leading axis ``B`` (the global batch under jit, the
    per-device batch under pmap); an optional ``"mask"`` ``[B]`` weights examples (0 = padding).

    Returned metrics (float32 scalars): ``loss`` (data term), ``total_loss`` (with the
    regularizer), ``grad_norm`` (global norm of the unscaled gradient), ``finite`` (1 if the
    update was applied), ``loss_scale`` (float16 only) and the means of ``metrics_fn``.
    """

    def train_step(state: TrainState, batch):
        rng = jax.random.fold_in(state.rng, state.step)
        if axis_name is not None:
            rng = jax.random.fold_in(rng, jax.lax.axis_index(axis_name))
        aug_rng, dropout_rng = jax.random.split(rng)
        x = preprocess_fn(batch, aug_rng, train=True)
        first = jax.tree.leaves(batch)[0]
        weight = batch.get("mask", jnp.ones(first.shape[:1], jnp.float32)).astype(jnp.float32)
        has_bn = bool(state.batch_stats)

        def objective(params):
            variables = {"params": params}
            if has_bn:
                variables["batch_stats"] = state.batch_stats
            outputs, updated = state.apply_fn(
                variables, x, train=True, rngs={"dropout": dropout_rng},
                mutable=["batch_stats"] if has_bn else [])
            loss = _weighted_mean(loss_fn(outputs, batch), weight)
            total = loss + regularizer(params) if regularizer is not None else loss
            scaled = state.loss_scale.scale_loss(total) if state.loss_scale is not None else total
            return scaled, (loss, total, outputs, updated)

        grads, (loss, total, outputs, updated) = jax.grad(objective, has_aux=True)(state.params)
        metrics = {"loss": loss, "total_loss": total}
        if metrics_fn is not None:
            metrics.update({k: _weighted_mean(v.astype(jnp.float32), weight)
                            for k, v in metrics_fn(outputs, batch).items()})
        if axis_name is not None:
            grads = jax.lax.pmean(grads, axis_name)
            metrics = jax.lax.pmean(metrics, axis_name)
        if state.loss_scale is not None:
            grads = state.loss_scale.unscale(grads)
        finite = all_finite(grads)

        updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
        if state.plateau_state is not None:
            updates = optax.tree_utils.tree_scale(state.plateau_state.scale, updates)
        params = optax.apply_updates(state.params, updates)
        batch_stats = updated["batch_stats"] if has_bn else state.batch_stats
        new = state.replace(
            step=state.step + 1,
            params=_select(finite, params, state.params),
            opt_state=_select(finite, opt_state, state.opt_state),
            batch_stats=_select(finite, batch_stats, state.batch_stats),
            skipped_steps=state.skipped_steps + (~finite).astype(jnp.int32),
        )
        if state.ema_params is not None:
            if ema_decay is None:
                raise ValueError("the state keeps ema_params: pass ema_decay to make_train_step")
            ema = optax.incremental_update(new.params, state.ema_params, 1.0 - ema_decay)
            new = new.replace(ema_params=_select(finite, ema, state.ema_params))
        if state.loss_scale is not None:
            new = new.replace(loss_scale=state.loss_scale.adjust(finite))
            metrics["loss_scale"] = state.loss_scale.scale
        metrics["grad_norm"] = optax.global_norm(grads)
        metrics["finite"] = finite.astype(jnp.float32)
        return new, metrics

    return train_step


def make_eval_step(sums_fn: Callable, *, preprocess_fn: Callable = default_preprocess,
                   loss_fn: LossFn | None = None, use_ema: bool = False,
                   axis_name: str | None = None) -> Callable:
    """Build ``eval_step(state, batch) -> sums`` (BatchNorm in inference mode).

    Args:
      sums_fn: ``(outputs, batch, mask) -> {name: float32 []}`` masked *sums* over the batch
        (e.g. :func:`vai_jax.classification.metrics.topk_counts` on the logits), including a
        ``"count"``; ratios over a data set are then exact (sum the batches, divide by count).
      preprocess_fn: as for the train step (called with ``train=False``).
      loss_fn: optional per-example loss; adds ``"loss_sum"``.
      use_ema: evaluate ``state.ema_params`` instead of ``state.params``.
      axis_name: pmap axis to ``psum`` the sums over.
    """

    def eval_step(state: TrainState, batch):
        x = preprocess_fn(batch, state.rng, train=False)
        first = jax.tree.leaves(batch)[0]
        mask = batch.get("mask", jnp.ones(first.shape[:1], jnp.float32)).astype(jnp.float32)
        outputs = state.apply_fn(state.variables(use_ema=use_ema), x, train=False)
        sums = dict(sums_fn(outputs, batch, mask))
        if loss_fn is not None:
            sums["loss_sum"] = jnp.sum(loss_fn(outputs, batch) * mask)
        if axis_name is not None:
            sums = jax.lax.psum(sums, axis_name)
        return sums

    return eval_step
