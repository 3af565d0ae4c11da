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
index under pmap). A step is skipped — it changes nothing but ``step``, ``skipped_steps``,
``skip_causes`` and the float16 loss scale: params, optimiser state, BatchNorm statistics and
EMA are kept — when the batch holds an invalid class id (``num_classes`` given), when the loss
is not finite or when a gradient is not finite; ``skip_causes`` counts which
(:data:`vai_jax.train.state.SKIP_CAUSES`) and :func:`vai_jax.train.loop.fit` reports them at the
end of a run. Labels cannot raise inside ``jit``: an id outside ``[0, num_classes)`` makes the
step's loss NaN instead, so it is never trained on.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from vai_jax._validation import check_int, check_number, invalid_labels
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


def _check_label_args(num_classes, label_key, ignore_label):
    if num_classes is not None:
        check_int(num_classes, "num_classes", ge=1)
    if not isinstance(label_key, str):
        raise TypeError(f"label_key must be a str (a key of the batch); got {label_key!r}")
    if ignore_label is not None:
        check_int(ignore_label, "ignore_label")


def _invalid_label_count(batch, weight, num_classes, label_key, ignore_label):
    """int32 []: class ids of examples with weight > 0 outside [0, num_classes) (not ignored)."""
    if label_key not in batch:
        raise KeyError(f"num_classes={num_classes} checks batch[{label_key!r}] but the batch has "
                       f"keys {sorted(batch)}; pass label_key=")
    labels = batch[label_key]
    bad = invalid_labels(labels, num_classes, ignore_label=ignore_label)
    counted = (weight > 0).reshape(weight.shape + (1,) * (labels.ndim - 1))
    return jnp.sum(bad & counted).astype(jnp.int32)


def make_train_step(loss_fn: LossFn, *, metrics_fn: MetricsFn | None = None,
                    preprocess_fn: Callable = default_preprocess,
                    regularizer: Callable | None = None, ema_decay: float | None = None,
                    axis_name: str | None = None, num_classes: int | None = None,
                    label_key: str = "label", ignore_label: int | None = None) -> Callable:
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
      num_classes: when given, ``batch[label_key]`` (integer ``[B, ...]``: class ids, per
        example, pixel or object) is checked inside the step: an id outside
        ``[0, num_classes)`` other than ``ignore_label``, in an example with ``mask > 0``, makes
        the step's ``loss`` NaN and skips the step (cause ``"invalid_labels"``).
      label_key: the batch key holding the class ids (``"label"``, ``"semantic"``,
        ``"classes"``).
      ignore_label: the documented ignore value of the labels (e.g. segmentation's 255).

    ``batch`` is a dict of arrays with leading axis ``B`` (the global batch under jit, the
    per-device batch under pmap); an optional ``"mask"`` ``[B]`` weights examples (0 = padding).

    Returned metrics (float32 scalars): ``loss`` (data term; NaN when the labels are invalid),
    ``total_loss`` (with the regularizer), ``grad_norm`` (global norm of the unscaled gradient),
    ``finite`` (1 if the update was applied), ``loss_scale`` (float16 only) and the means of
    ``metrics_fn``.
    """
    _check_label_args(num_classes, label_key, ignore_label)
    if ema_decay is not None:
        check_number(ema_decay, "ema_decay", ge=0.0, le=1.0)

    def train_step(state: TrainState, batch):
        rng = jax.random.fold_in(state.rng, state.step)
        if axis_name is not None:
            rng = jax.random.fold_in(rng, jax.lax.axis_index(axis_name))
        aug_rng, dropout_rng = jax.random.split(rng)
        x = preprocess_fn(batch, aug_rng, train=True)
        first = jax.tree.leaves(batch)[0]
        weight = batch.get("mask", jnp.ones(first.shape[:1], jnp.float32)).astype(jnp.float32)
        has_bn = bool(state.batch_stats)
        if num_classes is not None:
            n_bad = _invalid_label_count(batch, weight, num_classes, label_key, ignore_label)
            if axis_name is not None:
                n_bad = jax.lax.psum(n_bad, axis_name)
            labels_ok = n_bad == 0
        else:
            labels_ok = jnp.asarray(True)

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
        grads_finite = all_finite(grads)
        loss_finite = jnp.isfinite(metrics["total_loss"])
        finite = labels_ok & loss_finite & grads_finite
        nan = jnp.asarray(jnp.nan, jnp.float32)
        metrics["loss"] = jnp.where(labels_ok, metrics["loss"], nan)
        metrics["total_loss"] = jnp.where(labels_ok, metrics["total_loss"], nan)

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
        if state.skip_causes is not None:
            # The first cause that applies, as one-hot over SKIP_CAUSES (all zero when applied).
            causes = jnp.stack([~labels_ok, labels_ok & ~loss_finite,
                                labels_ok & loss_finite & ~grads_finite])
            new = new.replace(skip_causes=state.skip_causes + causes.astype(jnp.int32))
        if state.ema_params is not None:
            if ema_decay is None:
                raise ValueError("the state keeps ema_params: pass ema_decay to make_train_step")
            ema = optax.incremental_update(new.params, state.ema_params, 1.0 - ema_decay)
            new = new.replace(ema_params=_select(finite, ema, state.ema_params))
        if state.loss_scale is not None:
            # Backs off on overflow (non-finite loss or gradients); unchanged by bad labels.
            scale = state.loss_scale.adjust(loss_finite & grads_finite)
            new = new.replace(loss_scale=_select(labels_ok, scale, state.loss_scale))
            metrics["loss_scale"] = state.loss_scale.scale
        metrics["grad_norm"] = optax.global_norm(grads)
        metrics["finite"] = finite.astype(jnp.float32)
        return new, metrics

    return train_step


def make_eval_step(sums_fn: Callable, *, preprocess_fn: Callable = default_preprocess,
                   loss_fn: LossFn | None = None, use_ema: bool = False,
                   axis_name: str | None = None, num_classes: int | None = None,
                   label_key: str = "label", ignore_label: int | None = None) -> Callable:
    """Build ``eval_step(state, batch) -> sums`` (BatchNorm in inference mode).

    Args:
      sums_fn: ``(outputs, batch, mask) -> {name: float32 []}`` masked *sums* over the batch
        (e.g. :func:`vai_jax.classification.metrics.topk_counts` on the logits), including a
        ``"count"``; ratios over a data set are then exact (sum the batches, divide by count).
      preprocess_fn: as for the train step (called with ``train=False``).
      loss_fn: optional per-example loss; adds ``"loss_sum"``.
      use_ema: evaluate ``state.ema_params`` instead of ``state.params``.
      axis_name: pmap axis to ``psum`` the sums over.
      num_classes, label_key, ignore_label: as for :func:`make_train_step`: when
        ``num_classes`` is given the sums gain ``"invalid_labels"`` (the count of class ids of
        unmasked examples outside ``[0, num_classes)``, not ``ignore_label``) and, when it is
        not 0, every other sum of the batch is NaN, so a data set's metrics are NaN rather
        than silently wrong (:func:`vai_jax.train.loop.evaluate` reports the count).
    """
    _check_label_args(num_classes, label_key, ignore_label)

    def eval_step(state: TrainState, batch):
        x = preprocess_fn(batch, state.rng, train=False)
        first = jax.tree.leaves(batch)[0]
        mask = batch.get("mask", jnp.ones(first.shape[:1], jnp.float32)).astype(jnp.float32)
        outputs = state.apply_fn(state.variables(use_ema=use_ema), x, train=False)
        sums = dict(sums_fn(outputs, batch, mask))
        if loss_fn is not None:
            sums["loss_sum"] = jnp.sum(loss_fn(outputs, batch) * mask)
        if num_classes is not None:
            n_bad = _invalid_label_count(batch, mask, num_classes, label_key, ignore_label)
            sums = {k: jnp.where(n_bad == 0, v, jnp.nan) for k, v in sums.items()}
            sums["invalid_labels"] = n_bad.astype(jnp.float32)
        if axis_name is not None:
            sums = jax.lax.psum(sums, axis_name)
        return sums

    return eval_step
