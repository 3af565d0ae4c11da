"""What every backbone shares: the per-stage feature description (and, re-exported, the
BatchNorm factory of :mod:`vai_jax.nn.norm`)."""
from __future__ import annotations

from typing import NamedTuple

from vai_jax.nn.norm import batch_norm  # noqa: F401  (re-exported for the families)


class FeatureInfo(NamedTuple):
    """One named feature map a backbone returns: ``features[name]`` has ``channels`` channels
    and is ``stride`` times smaller than the input (up to rounding of odd sizes)."""

    name: str
    channels: int
    stride: int
