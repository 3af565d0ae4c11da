"""What every backbone shares: the per-stage feature description and the BatchNorm factory."""
from __future__ import annotations

import functools
from typing import NamedTuple

import flax.linen as nn


class FeatureInfo(NamedTuple):
    """One named feature map a backbone returns: ``features[name]`` has ``channels`` channels
    and is ``stride`` times smaller than the input (up to rounding of odd sizes)."""

    name: str
    channels: int
    stride: int


def batch_norm(*, train: bool, dtype, param_dtype, axis_name=None, momentum: float = 0.9,
               epsilon: float = 1e-5, **kwargs):
    """A BatchNorm partial with torchvision's defaults (momentum 0.1 in PyTorch's convention is
    0.9 in Flax's; epsilon 1e-5). ``axis_name`` synchronises statistics under ``pmap``; under
    ``jit`` over a mesh the statistics are those of the global batch without it."""
    return functools.partial(
        nn.BatchNorm, use_running_average=not train, momentum=momentum, epsilon=epsilon,
        dtype=dtype, param_dtype=param_dtype, axis_name=axis_name, **kwargs)
