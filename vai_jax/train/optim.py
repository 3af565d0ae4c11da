"""Optimisers and learning-rate schedules, all built from optax.

* SGD with momentum (optionally Nesterov) and coupled weight decay — the VGG recipe is
  ``make_optimizer("sgd", learning_rate=1e-2, momentum=0.9, weight_decay=5e-4)`` with
  :func:`make_plateau` dividing the rate by 10 when validation accuracy stalls, three times.
* Adam (coupled L2 decay) and AdamW (decoupled decay).
* Schedules: constant, linear warm-up + cosine, warm-up + step (piecewise constant).
* Gradient clipping by global norm, gradient accumulation (``optax.MultiSteps``).

Weight decay applies to the leaves selected by ``decay_mask`` (default: rank >= 2, i.e. conv and
dense kernels; not biases or BatchNorm scales). Per-layer L1/L2 strengths are a loss term, see
:mod:`vai_jax.train.regularization`.
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import optax

from vai_jax._validation import check_int, check_number

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "step")


def kernel_mask(params):
    """Pytree of bools: True for leaves of rank >= 2 (kernels), False otherwise."""
    def is_kernel(path, p):
        if not hasattr(p, "ndim"):
            raise TypeError(f"params must hold arrays; {jax.tree_util.keystr(path)} is "
                            f"{type(p).__name__}")
        return p.ndim >= 2
    return jax.tree_util.tree_map_with_path(is_kernel, params)


def make_schedule(kind: str, *, base_lr: float, total_steps: int, warmup_steps: int = 0,
                  boundaries: Sequence[int] = (), decay_factor: float = 0.1,
                  end_lr_fraction: float = 0.0) -> optax.Schedule:
    """A learning-rate schedule ``step -> lr`` (step counts optimiser updates).

    Args:
      kind: ``"constant"``, ``"cosine"`` (linear warm-up from 0 then cosine to
        ``end_lr_fraction * base_lr`` at ``total_steps``) or ``"step"`` (linear warm-up, then
        the rate is multiplied by ``decay_factor`` at each of ``boundaries``).
      base_lr: peak learning rate (> 0).
      total_steps: length of the run in optimiser updates.
      warmup_steps: linear warm-up length (0 for none).
      boundaries: steps (counted from the start of the run) of the ``"step"`` decays.
      decay_factor: multiplier at each boundary.
      end_lr_fraction: final rate of the cosine as a fraction of ``base_lr``.
    """
    if kind not in SCHEDULES:
        raise ValueError(f"schedule kind must be one of {SCHEDULES}; got {kind!r}")
    check_number(base_lr, "base_lr", gt=0.0)
    total_steps = check_int(total_steps, "total_steps", ge=0)
    warmup_steps = check_int(warmup_steps, "warmup_steps", ge=0)
    check_number(decay_factor, "decay_factor", gt=0.0)
    check_number(end_lr_fraction, "end_lr_fraction", ge=0.0)
    boundaries = [check_int(b, "boundaries", ge=0) for b in boundaries]
    if kind == "cosine" and warmup_steps >= max(total_steps, 1):
        raise ValueError(
            f"warmup_steps must be in [0, total_steps={total_steps}); got {warmup_steps}")
    if kind == "constant":
        main = optax.constant_schedule(base_lr)
    elif kind == "cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0, base_lr, warmup_steps=max(warmup_steps, 0), decay_steps=total_steps,
            end_value=end_lr_fraction * base_lr)
    elif kind == "step":
        main = optax.piecewise_constant_schedule(
            base_lr, {int(b) - warmup_steps: decay_factor for b in boundaries})
    else:
        raise ValueError(f"schedule kind must be one of {SCHEDULES}; got {kind!r}")
    if warmup_steps == 0:
        return main
    warm = optax.linear_schedule(0.0, base_lr, warmup_steps)
    return optax.join_schedules([warm, main], [warmup_steps])


def make_optimizer(name: str, *, learning_rate: float | optax.Schedule, momentum: float = 0.9,
                   nesterov: bool = False, b1: float = 0.9, b2: float = 0.999,
                   eps: float = 1e-8, weight_decay: float = 0.0,
                   decay_mask: Callable | None = kernel_mask,
                   clip_grad_norm: float | None = None,
                   accumulate_steps: int = 1) -> optax.GradientTransformation:
    """An optax optimiser.

    Args:
      name: ``"sgd"`` (heavy-ball momentum, ``nesterov`` for Nesterov), ``"adam"`` (weight
        decay added to the gradient, i.e. L2) or ``"adamw"`` (decoupled weight decay).
      learning_rate: a float or an optax schedule.
      momentum, nesterov: SGD parameters (``momentum=0`` is plain SGD).
      b1, b2, eps: Adam parameters.
      weight_decay: decay coefficient (``5e-4`` in the VGG recipe); 0 disables it.
      decay_mask: ``params -> pytree of bool`` selecting decayed leaves; ``None`` = all.
      clip_grad_norm: clip the gradient's global norm to this value first (``None`` = off).
      accumulate_steps: average gradients over this many calls before one update
        (``optax.MultiSteps``); 1 = no accumulation.

    Returns:
      ``optax.GradientTransformation`` (with extra args when accumulating).

    Raises:
      ValueError: an unknown ``name``; a learning rate <= 0 (or NaN/inf), ``momentum`` outside
      ``[0, 1]``, ``b1`` / ``b2`` outside ``[0, 1)``, ``eps`` <= 0, negative
      ``weight_decay``, ``clip_grad_norm`` <= 0, ``accumulate_steps`` < 1. TypeError: a
      non-numeric value for any of them (``learning_rate`` may also be a schedule: a callable).
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer name must be one of {OPTIMIZERS}; got {name!r}")
    if not callable(learning_rate):
        check_number(learning_rate, "learning_rate", gt=0.0)
    check_number(momentum, "momentum", ge=0.0, le=1.0)
    check_number(b1, "b1", ge=0.0, lt=1.0)
    check_number(b2, "b2", ge=0.0, lt=1.0)
    check_number(eps, "eps", gt=0.0)
    check_number(weight_decay, "weight_decay", ge=0.0)
    accumulate_steps = check_int(accumulate_steps, "accumulate_steps", ge=1)
    if not isinstance(nesterov, bool):
        raise TypeError(f"nesterov must be a bool; got {nesterov!r}")
    parts = []
    if clip_grad_norm is not None:
        check_number(clip_grad_norm, "clip_grad_norm", gt=0.0)
        parts.append(optax.clip_by_global_norm(clip_grad_norm))
    if name == "sgd":
        if weight_decay:
            parts.append(optax.add_decayed_weights(weight_decay, mask=decay_mask))
        parts.append(optax.sgd(learning_rate, momentum=momentum or None, nesterov=nesterov))
    elif name == "adam":
        if weight_decay:
            parts.append(optax.add_decayed_weights(weight_decay, mask=decay_mask))
        parts.append(optax.adam(learning_rate, b1=b1, b2=b2, eps=eps))
    elif name == "adamw":
        parts.append(optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps,
                                 weight_decay=weight_decay, mask=decay_mask))
    else:
        raise ValueError(f"optimizer name must be one of {OPTIMIZERS}; got {name!r}")
    tx = optax.chain(*parts) if len(parts) > 1 else parts[0]
    if accumulate_steps > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=accumulate_steps).gradient_transformation()
    return tx


def make_plateau(*, factor: float = 0.1, patience: int = 2, cooldown: int = 0,
                 max_reductions: int = 3, rtol: float = 0.0,
                 atol: float = 1e-4) -> optax.GradientTransformationExtraArgs:
    """``optax.contrib.reduce_on_plateau`` driven by a validation metric.

    The loop calls :func:`plateau_update` once per evaluation with a value to *minimise*
    (pass ``-accuracy``); ``patience`` and ``cooldown`` count evaluations. The scale is
    multiplied by ``factor`` at most ``max_reductions`` times (VGG: ÷10 three times).
    Improvement means ``value < (1 - rtol)·best - atol``: the default absolute threshold works
    for negative values (``-accuracy``); a relative one (``rtol > 0``) only for positive ones.
    """
    check_number(factor, "factor", gt=0.0, lt=1.0)
    patience = check_int(patience, "patience", ge=0)
    cooldown = check_int(cooldown, "cooldown", ge=0)
    max_reductions = check_int(max_reductions, "max_reductions", ge=0)
    check_number(rtol, "rtol", ge=0.0)
    check_number(atol, "atol", ge=0.0)
    return optax.contrib.reduce_on_plateau(
        factor=factor, patience=patience, rtol=rtol, atol=atol, cooldown=cooldown,
        accumulation_size=1, min_scale=factor**max_reductions * (1 - 1e-6))


def plateau_update(plateau: optax.GradientTransformationExtraArgs, plateau_state, value):
    """Feed one validation value (lower is better) to the plateau state; returns the new state."""
    check_number(value, "value", finite=False)
    _, new_state = plateau.update(updates={}, state=plateau_state, value=value)
    return new_state
