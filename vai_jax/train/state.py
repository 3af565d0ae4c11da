"""The training state: everything a step reads and writes, as one pytree.

Modelled on Flax ``examples/imagenet``'s ``TrainState`` subclass carrying ``batch_stats``, plus
what a resumable, robust run needs: the base rng (per-step randomness is
``fold_in(rng, step)``), an optional exponential moving average of the parameters, the float16
loss scale, the reduce-on-plateau state and the count of skipped steps, by cause.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import struct

from vai_jax._validation import check_int
from vai_jax.train.precision import DynamicLossScale

# Why a train step was skipped (its update not applied), in the order of
# ``TrainState.skip_causes``; the first that applies is counted:
#  invalid_labels: the batch held a class id outside [0, num_classes) other than the ignore
#    label (make_train_step(num_classes=...) checks it inside jit);
#  nonfinite_loss: the loss was NaN/inf (NaN inputs or outputs, a target the loss function
#    turns into NaN such as an out-of-range label of cross_entropy, divergence);
#  nonfinite_gradients: the loss was finite but a gradient was not (float16 overflow).
SKIP_CAUSES = ("invalid_labels", "nonfinite_loss", "nonfinite_gradients")


class TrainState(struct.PyTreeNode):
    """Training state.

    Attributes:
      step: int32 ``[]``, number of train steps taken (micro-steps under gradient accumulation).
      params: the model's ``"params"`` collection (float32).
      batch_stats: the ``"batch_stats"`` collection, or ``{}`` for models without BatchNorm.
      opt_state: the optax optimiser state of ``tx``.
      rng: uint32 ``[2]`` raw PRNG key; step ``s`` uses ``fold_in(rng, s)``.
      skipped_steps: int32 ``[]``, steps that were not applied (see ``skip_causes``).
      skip_causes: int32 ``[len(SKIP_CAUSES)]``, the skipped steps by cause, in the order of
        :data:`SKIP_CAUSES` (``None`` in states built without it; restored as zeros from
        checkpoints written before it existed).
      ema_params: moving average of ``params`` or ``None``.
      loss_scale: :class:`DynamicLossScale` (float16 training) or ``None``.
      plateau_state: state of ``optax.contrib.reduce_on_plateau`` (its ``scale`` multiplies
        every update) or ``None``.
      apply_fn: the model's ``apply`` (static).
      tx: the optax transformation (static).
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jax.Array
    skipped_steps: jax.Array
    skip_causes: jax.Array | None = None
    ema_params: Any = None
    loss_scale: DynamicLossScale | None = None
    plateau_state: Any = None
    apply_fn: Callable = struct.field(pytree_node=False, default=None)
    tx: optax.GradientTransformation = struct.field(pytree_node=False, default=None)

    @classmethod
    def create(cls, *, apply_fn: Callable, variables, tx: optax.GradientTransformation,
               rng, ema: bool = False, loss_scale: DynamicLossScale | None = None,
               plateau: optax.GradientTransformation | None = None) -> "TrainState":
        """A fresh state at step 0.

        Args:
          apply_fn: ``model.apply``.
          variables: ``model.init(...)`` output: ``{"params": ..., ["batch_stats": ...]}``.
          tx: the optimiser (see :mod:`vai_jax.train.optim`).
          rng: a raw uint32 ``[2]`` key (``jax.random.PRNGKey(seed)``) for dropout/augmentation.
          ema: keep an exponential moving average of the parameters (decay set in the step).
          loss_scale: a :class:`DynamicLossScale` for float16 training.
          plateau: ``optax.contrib.reduce_on_plateau(...)``; its state is stored here and
            updated by the loop from a validation metric.
        """
        params = variables["params"]
        rng = jnp.asarray(rng)
        if rng.dtype != jnp.uint32 or rng.shape != (2,):
            raise TypeError(
                f"rng must be a raw key uint32 [2] (jax.random.PRNGKey(seed)); got "
                f"{rng.dtype} {rng.shape}")
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=params,
            batch_stats=variables.get("batch_stats", {}),
            opt_state=tx.init(params),
            rng=rng,
            skipped_steps=jnp.zeros((), jnp.int32),
            skip_causes=jnp.zeros((len(SKIP_CAUSES),), jnp.int32),
            ema_params=jax.tree.map(jnp.copy, params) if ema else None,
            loss_scale=loss_scale,
            plateau_state=None if plateau is None else plateau.init(params),
            apply_fn=apply_fn,
            tx=tx,
        )

    def variables(self, *, use_ema: bool = False) -> dict:
        """``{"params": ..., "batch_stats": ...}`` for ``apply_fn`` (EMA params if asked)."""
        params = self.ema_params if use_ema and self.ema_params is not None else self.params
        out = {"params": params}
        if self.batch_stats:
            out["batch_stats"] = self.batch_stats
        return out


def init_variables(model, input_shape, *, rng, dtype=jnp.float32) -> dict:
    """Initialise ``model`` on zeros of ``input_shape`` (e.g. ``[1, 32, 32, 3]``) in eval mode.

    Returns the variables dict (``params`` and, for BatchNorm models, ``batch_stats``).
    """
    if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__len__"):
        raise TypeError(f"input_shape must be a sequence of ints; got {input_shape!r}")
    input_shape = tuple(check_int(d, "input_shape", ge=1) for d in input_shape)
    x = jnp.zeros(input_shape, dtype)
    params_rng, dropout_rng = jax.random.split(jnp.asarray(rng))
    init = jax.jit(lambda r, d: model.init({"params": r, "dropout": d}, x, train=False))
    return dict(init(params_rng, dropout_rng))
