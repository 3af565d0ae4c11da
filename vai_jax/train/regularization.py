"""L1/L2 weight penalties with per-layer strengths, added to the training loss.

Layers are selected by regular expressions on the parameter path (``"stage1/block1/conv1/
kernel"``, keys joined with ``/``). By default only kernels (rank >= 2) are penalised.
"""
from __future__ import annotations

import re
from typing import Callable, Mapping

import jax
import jax.numpy as jnp


def param_path(path) -> str:
    """A ``jax.tree_util`` key path as ``"a/b/kernel"``."""
    if isinstance(path, (str, bytes)) or not hasattr(path, "__iter__"):
        raise TypeError(f"path must be a jax.tree_util key path (a tuple of keys); got "
                        f"{type(path).__name__} {path!r}")
    return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))))
                    for k in path)


def make_weight_penalty(*, l1: float = 0.0, l2: float = 0.0,
                        per_layer: Mapping[str, tuple[float, float]] | None = None,
                        include: Callable = lambda path, p: p.ndim >= 2) -> Callable:
    """Build ``penalty(params) -> float32 []`` = ``Σ l1_i·|w|₁ + ½·l2_i·‖w‖²`` over leaves.

    Args:
      l1, l2: default strengths for included leaves.
      per_layer: ``{regex: (l1, l2)}``; the first pattern that ``re.search``-matches a leaf's
        path overrides the defaults for that leaf (use it for per-layer strengths).
      include: ``(path_str, leaf) -> bool``; leaves not included are never penalised.

    The ``½`` makes the L2 gradient ``l2·w``, i.e. the same as weight decay ``l2`` under SGD.
    """
    for name, value in (("l1", l1), ("l2", l2)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0; got {value}")
    rules = [(re.compile(k), tuple(map(float, v))) for k, v in (per_layer or {}).items()]

    def strengths(path: str):
        for pattern, value in rules:
            if pattern.search(path):
                return value
        return (float(l1), float(l2))

    def penalty(params):
        total = jnp.zeros((), jnp.float32)
        for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
            name = param_path(path)
            if not include(name, leaf):
                continue
            a, b = strengths(name)
            w = leaf.astype(jnp.float32)
            if a:
                total = total + a * jnp.sum(jnp.abs(w))
            if b:
                total = total + 0.5 * b * jnp.sum(w * w)
        return total

    return penalty
