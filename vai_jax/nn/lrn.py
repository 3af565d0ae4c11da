"""Local response normalisation across channels (Krizhevsky et al. 2012, §3.3), PyTorch's
``nn.LocalResponseNorm`` convention (used by AlexNet and the original GoogLeNet)."""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from vai_jax._validation import check_array


def local_response_norm(x, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
    """``b_c = a_c / (k + alpha / size · Σ_{c'} a_{c'}²) ** beta`` over the channel window
    ``c' ∈ [c − size // 2, c + (size − 1) // 2]`` (channels outside ``[0, C)`` count as zero).

    Caffe's LRN (GoogLeNet: ``local_size=5, alpha=1e-4, beta=0.75``) divides ``alpha`` by
    ``size`` in the same way. ``x``: ``[..., C]`` floating; returns the same shape and dtype.
    """
    x = check_array(x, "x", min_ndim=1, kind="floating", shape_hint="[..., C]")
    if size < 1:
        raise ValueError(f"size must be >= 1; got {size}")
    c = x.shape[-1]
    sq = jnp.square(x.astype(jnp.float32))
    pad = [(0, 0)] * (x.ndim - 1) + [(size // 2, (size - 1) // 2)]
    sq = jnp.pad(sq, pad)
    window = sum(sq[..., i:i + c] for i in range(size))
    return (x / jnp.power(k + (alpha / size) * window, beta).astype(x.dtype)).astype(x.dtype)


class LocalResponseNorm(nn.Module):
    """Module form of :func:`local_response_norm` (no parameters)."""

    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0

    @nn.compact
    def __call__(self, x, *, train: bool):
        del train
        return local_response_norm(x, self.size, self.alpha, self.beta, self.k)
