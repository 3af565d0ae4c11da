"""Normalisation layer factories shared by backbones and heads."""
from __future__ import annotations

import functools

import flax.linen as nn


def batch_norm(*, train: bool, dtype, param_dtype, axis_name=None, momentum: float = 0.9,
               epsilon: float = 1e-5, **kwargs):
    """A BatchNorm partial with torchvision's defaults (momentum 0.1 in PyTorch's convention is
    0.9 in Flax's; epsilon 1e-5). ``axis_name`` synchronises statistics under ``pmap``; under
    ``jit`` over a mesh the statistics are those of the global batch without it."""
    return functools.partial(
        nn.BatchNorm, use_running_average=not train, momentum=momentum, epsilon=epsilon,
        dtype=dtype, param_dtype=param_dtype, axis_name=axis_name, **kwargs)
