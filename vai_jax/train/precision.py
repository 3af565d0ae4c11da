"""Mixed precision: compute dtypes by name and dynamic loss scaling for float16.

Parameters and optimiser state always stay float32; only the model's ``dtype`` (its compute
dtype) changes. bfloat16 has float32's exponent range and needs no loss scaling; float16 does:
the loss is multiplied by ``scale`` before differentiation so that small gradients do not
underflow, the gradients are divided by it afterwards, and the scale adapts — halved (and the
step skipped by the train step) when gradients overflow, doubled after ``period`` finite steps.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from vai_jax._validation import check_int, check_number

PRECISIONS = ("float32", "bfloat16", "float16")


def compute_dtype(precision: str):
    """``"float32" | "bfloat16" | "float16"`` -> the jnp dtype for a model's ``dtype``."""
    if precision == "float32":
        return jnp.float32
    if precision == "bfloat16":
        return jnp.bfloat16
    if precision == "float16":
        return jnp.float16
    raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}")


def needs_loss_scale(precision: str) -> bool:
    """True for float16 (too narrow an exponent range for unscaled gradients)."""
    compute_dtype(precision)
    return precision == "float16"


class DynamicLossScale(struct.PyTreeNode):
    """Dynamic loss scale state (a pytree; lives in ``TrainState.loss_scale``).

    Attributes:
      scale: float32 ``[]``, the current multiplier.
      good_steps: int32 ``[]``, consecutive finite steps since the last change.
      period: finite steps after which the scale is multiplied by ``factor`` (static).
      factor: growth/backoff factor (static).
      min_scale: lower bound of the scale (static).
    """

    scale: jax.Array
    good_steps: jax.Array
    period: int = struct.field(pytree_node=False, default=2000)
    factor: float = struct.field(pytree_node=False, default=2.0)
    min_scale: float = struct.field(pytree_node=False, default=1.0)

    @classmethod
    def create(cls, initial_scale: float = 2.0**15, *, period: int = 2000, factor: float = 2.0,
               min_scale: float = 1.0) -> "DynamicLossScale":
        """The state at ``initial_scale`` (> 0); ``period`` an int >= 1, ``factor`` > 1,
        ``min_scale`` > 0 (ValueError / TypeError naming the argument otherwise)."""
        check_number(initial_scale, "initial_scale", gt=0.0)
        check_int(period, "period", ge=1)
        check_number(factor, "factor", gt=1.0)
        check_number(min_scale, "min_scale", gt=0.0)
        return cls(scale=jnp.asarray(initial_scale, jnp.float32),
                   good_steps=jnp.zeros((), jnp.int32), period=period, factor=factor,
                   min_scale=min_scale)

    def scale_loss(self, loss):
        """``loss * scale`` in float32."""
        return loss.astype(jnp.float32) * self.scale

    def unscale(self, grads):
        """Gradients of the scaled loss -> float32 gradients of the loss."""
        inv = 1.0 / self.scale
        return jax.tree.map(lambda g: g.astype(jnp.float32) * inv, grads)

    def adjust(self, grads_finite) -> "DynamicLossScale":
        """The next state given whether this step's gradients were all finite (bool ``[]``)."""
        grow = grads_finite & (self.good_steps + 1 >= self.period)
        scale = jnp.where(grads_finite, jnp.where(grow, self.scale * self.factor, self.scale),
                          jnp.maximum(self.scale / self.factor, self.min_scale))
        good = jnp.where(grads_finite & ~grow, self.good_steps + 1, 0)
        return self.replace(scale=scale.astype(jnp.float32), good_steps=good.astype(jnp.int32))


def all_finite(tree) -> jax.Array:
    """bool ``[]``: every element of every floating leaf of ``tree`` is finite (TypeError
    naming a leaf that is not an array or number)."""
    for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if not (hasattr(x, "dtype") or isinstance(x, (int, float, complex, bool))):
            raise TypeError(f"tree must hold arrays; {jax.tree_util.keystr(path)} is "
                            f"{type(x).__name__}")
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)
