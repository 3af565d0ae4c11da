"""Fully connected CRF over the pixels of an image, by unrolled mean-field inference
(Krähenbühl & Koltun, 2011), differentiable end to end as in CRF-as-RNN (Zheng et al., 2015).

The energy of a labelling ``x`` is ``Σ_i −logits_i(x_i) + Σ_{i<j} μ(x_i, x_j) k(f_i, f_j)`` with
two Gaussian kernels ``k = w_s k_s + w_b k_b``:

- spatial (smoothness): ``k_s = exp(−|p_i − p_j|² / 2σ_γ²)``, positions ``p`` in pixels;
- bilateral (appearance): ``k_b = exp(−|p_i − p_j|² / 2σ_α² − |I_i − I_j|² / 2σ_β²)``, with
  the image ``I`` in intensity units of **0 … 255** (the units of the default σ_β = 13).

Mean field keeps a factorised ``Q`` and repeats ``Q ← softmax(logits − μ(Σ_k w_k Σ_{j≠i}
k(f_i, f_j) Q_j))``; each kernel's value at distance 0 is 1, so the ``j ≠ i`` sum is the
filtered ``Q`` minus ``Q`` (the grid below subtracts its own diagonal, which approximates 1).
``compatibility[l, l']`` is ``μ(l, l')``; the default Potts model ``1 − eye(C)`` penalises
neighbours that disagree.

The spatial kernel is separable and always applied exactly (two small matrix products). The
bilateral kernel has two implementations:

- ``method="exact"``: the ``N × N`` kernel (``N = H·W``) evaluated in row blocks, ``O(N²)``;
  the reference, for small images. When ``B·N²`` is at most 2²⁸ entries (1 GiB in float32,
  e.g. 16 images of 64×64) the kernel is built once and every mean-field iteration is one
  batched matrix product (its backward pass the same product, the kernel being symmetric);
  above that, the blocks are re-evaluated in every iteration. Measured on the 2-core CPU
  (shared, load average 6) at 64×64, 7 classes, 5 iterations: 0.22 s per image forward and
  0.25 s forward + backward, of which building the kernel takes 0.14 s.
- ``method="grid"``: a down-sampled bilateral grid (Paris & Durand, 2006; Chen, Paris &
  Durand, 2007) over ``(y/σ_α, x/σ_α, colour/σ_β)`` with ``grid_cells_per_sigma`` cells per σ
  (default 1.5): multilinear splatting, a separable Gaussian blur narrowed so that the blur
  plus the two linear interpolations has the kernel's variance and mass, and multilinear
  slicing. Memory is ``B · C · Π_d (r·extent_d/σ_d + 2)`` cells for ``r`` cells per σ (the
  colour extent is 255; colours are clipped to ``[0, 255]``), so it suits small ``K`` and
  large σ. Measured on a 24×20 image of four colour regions plus noise (σ_α = 30, σ_β = 13,
  random ``Q`` over 4 classes; ``tests/ops/test_dense_crf.py``): the filtered output is
  within 3.6–3.9 % of the exact filter in relative L2 norm (worst pixel 13 %) at 1.5 cells per
  σ, 12–13 % (worst pixel 47 %) at 1 cell, 2.0–2.1 % at 2 cells; after 5 mean-field
  iterations the labels agree with the exact method's on 99.6 % of pixels.

Works under ``jax.jit``, ``jax.vmap`` and ``jax.grad`` (with respect to the logits, the weights
and the compatibility; the kernels' geometry is fixed by the image and the sigmas, which are
Python floats, and no gradient flows into the image). The whole-kernel exact path has a custom
VJP, so it supports reverse-mode differentiation only (``jax.grad``, ``jax.vjp``; not
``jax.jvp`` / ``jax.jacfwd``). Computation is float32 for half-precision inputs.
"""
from __future__ import annotations

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from vai_jax._validation import check_array, check_positive, is_concrete

_HIGHEST = lax.Precision.HIGHEST
_COLOUR_RANGE = 255.0
_BLOCK_ELEMENTS = 1 << 22  # pairwise entries per block of the exact bilateral filter
_KERNEL_ELEMENTS = 1 << 28  # the exact kernel [B, N, N] is kept whole up to this many entries


def _gaussian_matrix(n: int, sigma: float, dtype):
    """``[n, n]`` with entries ``exp(−(i − j)² / 2σ²)``."""
    d = np.arange(n)[:, None] - np.arange(n)[None, :]
    return jnp.asarray(np.exp(-0.5 * (d / sigma) ** 2), dtype)


def _spatial(q, sigma):
    _, h, w, _ = q.shape
    gy, gx = _gaussian_matrix(h, sigma, q.dtype), _gaussian_matrix(w, sigma, q.dtype)
    return jnp.einsum("yY,bYXc,xX->byxc", gy, q, gx, precision=_HIGHEST)


def spatial_filter(q, sigma: float):
    """``Σ_j exp(−|p_i − p_j|² / 2σ²) q_j`` over all pixels ``j`` (self included), exactly.

    Args:
      q: floating ``[B, H, W, C]``. sigma: the kernel width in pixels, > 0.

    Returns:
      ``[B, H, W, C]`` in ``q``'s dtype, by the separable kernel ``G_H · q · G_W`` per channel.
    """
    q = check_array(q, "q", ndim=4, kind="floating", shape_hint="[B, H, W, C]")
    check_positive(sigma, "sigma")
    return _spatial(q.astype(jnp.promote_types(q.dtype, jnp.float32)), float(sigma)).astype(
        q.dtype)


def _bilateral_features(image, position_sigma: float, colour_sigma: float):
    """``[B, H·W, 2 + K]`` features ``(y, x, colour…)`` of the pixel centres, each divided by
    its sigma, so that the bilateral kernel is ``exp(−½|f_i − f_j|²)``."""
    b, h, w, k = image.shape
    yy, xx = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    pos = np.stack([yy, xx], -1).reshape(1, h * w, 2) / position_sigma
    pos = jnp.broadcast_to(jnp.asarray(pos, image.dtype), (b, h * w, 2))
    return jnp.concatenate([pos, image.reshape(b, h * w, k) / colour_sigma], axis=-1)


def _kernel_blocks(features, apply_block):
    """``apply_block(k_rows [B, block, N]) -> [B, block, …]`` over row blocks of the kernel
    ``exp(−½|f_i − f_j|²)`` of ``features [B, N, D]``; returns the rows ``[B, N, …]``."""
    b, n, d = features.shape
    block = max(1, min(n, _BLOCK_ELEMENTS // (n * d)))
    pad = -n % block
    rows = jnp.pad(features, ((0, 0), (0, pad), (0, 0))).reshape(b, -1, block, d)

    def one_block(f_rows):  # [B, block, D]
        # One [B, block, N] term per feature: ~3x faster than a [B, block, N, D] difference
        # summed over its short last axis.
        sq = sum((f_rows[:, :, None, k] - features[:, None, :, k]) ** 2 for k in range(d))
        return apply_block(jnp.exp(-0.5 * sq))

    out = lax.map(one_block, jnp.moveaxis(rows, 1, 0))  # [blocks, B, block, …]
    out = jnp.moveaxis(out, 0, 1)
    return out.reshape(b, -1, *out.shape[3:])[:, :n]


@jax.custom_vjp
def _symmetric_filter(kernel, q):
    """``kernel @ q`` per batch for a symmetric ``kernel [B, N, N]`` (no gradient flows into
    it): the cotangent of ``q`` is ``kernel @ g`` again, which spares XLA the transposed
    product (3x slower on CPU at N = 4096)."""
    return jnp.einsum("bnm,bmc->bnc", kernel, q, precision=_HIGHEST)


def _symmetric_filter_fwd(kernel, q):
    return _symmetric_filter(kernel, q), kernel


def _symmetric_filter_bwd(kernel, g):
    return None, _symmetric_filter(kernel, g)


_symmetric_filter.defvjp(_symmetric_filter_fwd, _symmetric_filter_bwd)


def _exact_bilateral(features, q):
    """``Σ_j exp(−½|f_i − f_j|²) q_j`` for ``features [B, N, D]``, ``q [B, N, C]``."""
    return _kernel_blocks(features, lambda k: jnp.einsum("brn,bnc->brc", k, q,
                                                         precision=_HIGHEST))


class _Grid:
    """Splat/blur/slice geometry of the bilateral grid for one image batch (static shapes)."""

    def __init__(self, image, position_sigma, colour_sigma, cells_per_sigma):
        b, h, w, k = image.shape
        r = float(cells_per_sigma)
        yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        pos = jnp.asarray(np.stack([yy, xx], -1).reshape(1, h * w, 2) / position_sigma,
                          image.dtype)
        colour = jnp.clip(image.reshape(b, h * w, k), 0.0, _COLOUR_RANGE) / colour_sigma
        coords = r * jnp.concatenate([jnp.broadcast_to(pos, (b, h * w, 2)), colour], -1)
        extents = [r * (h - 1) / position_sigma, r * (w - 1) / position_sigma] + \
                  [r * _COLOUR_RANGE / colour_sigma] * k
        self.dims = tuple(int(math.floor(e)) + 2 for e in extents)
        if np.prod(self.dims, dtype=np.float64) > np.iinfo(np.int32).max:
            raise ValueError(f"the bilateral grid {self.dims} is too large for image shape "
                             f"{image.shape}; use method='exact', larger sigmas or fewer cells")
        base = jnp.floor(coords)
        frac = (coords - base)[:, :, None, :]                          # [B, N, 1, D]
        corners = np.array(list(itertools.product((0, 1), repeat=len(self.dims))))  # [2^D, D]
        strides = np.cumprod((1,) + self.dims[:0:-1])[::-1]
        self.index = (base.astype(jnp.int32) @ strides.astype(np.int32))[..., None] + \
            jnp.asarray(corners @ strides, jnp.int32)                   # [B, N, 2^D]
        self.weight = jnp.prod(jnp.where(corners == 1, frac, 1.0 - frac), axis=-1)
        # One blur per axis by a Gaussian of r cells per sigma, narrowed by the variance
        # 1/6 + 1/6 (cells²) that the splatting and slicing tents add.
        blur_sigma = math.sqrt(r * r - 1.0 / 3.0)
        self.blurs = [_gaussian_matrix(n, blur_sigma, image.dtype)
                      for n in self.dims]
        # Per axis, scale the blur's mass (on the infinite lattice) to the kernel's r·√(2π).
        taps = np.exp(-0.5 * (np.arange(-50, 51) / blur_sigma) ** 2)
        self.gain = (r * math.sqrt(2.0 * math.pi) / taps.sum()) ** len(self.dims)
        # The operator's diagonal for each pixel: per axis (w0² + w1²)·g(0) + 2·w0·w1·g(1).
        f, g1 = frac[:, :, 0, :], math.exp(-0.5 / blur_sigma ** 2)
        self.self_weight = self.gain * jnp.prod(f ** 2 + (1 - f) ** 2 + 2 * f * (1 - f) * g1, -1)

    def filter(self, q):
        """Approximate ``Σ_j k_b(f_i, f_j) q_j`` (self included) for ``q [B, N, C]``."""
        b, n, c = q.shape
        cells = int(np.prod(self.dims))
        index = self.index.reshape(b, -1)
        values = (self.weight[..., None] * q[:, :, None, :]).reshape(b, -1, c)
        grid = jax.vmap(lambda v, i: jnp.zeros((cells, c), q.dtype).at[i].add(v))(values, index)
        grid = grid.reshape(b, *self.dims, c)
        for axis, blur in enumerate(self.blurs, start=1):  # zero boundaries: empty cells
            grid = jnp.moveaxis(jnp.tensordot(blur, grid, axes=(1, axis), precision=_HIGHEST),
                                0, axis)
        sliced = jnp.take_along_axis(grid.reshape(b, cells, c), index[..., None], axis=1)
        return self.gain * jnp.sum(sliced.reshape(b, n, -1, c) * self.weight[..., None], axis=2)


def _bilateral_operator(image, position_sigma, colour_sigma, method, cells_per_sigma):
    """``(apply, self_weight)``: ``apply(q [B, H, W, C])`` filters with the bilateral kernel
    (self included) and ``self_weight [B, H, W, 1]`` is the operator's diagonal (1 when
    exact)."""
    b, h, w, _ = image.shape
    image = lax.stop_gradient(image)  # the kernels' geometry is fixed
    if method == "exact":
        feats = _bilateral_features(image, position_sigma, colour_sigma)
        self_weight = jnp.ones((b, h, w, 1), image.dtype)
        if b * (h * w) ** 2 <= _KERNEL_ELEMENTS:  # build [B, N, N] once, reuse every call
            kernel = lax.stop_gradient(_kernel_blocks(feats, lambda k: k))

            def apply(q):
                return _symmetric_filter(kernel, q.reshape(b, h * w, -1)).reshape(q.shape)
        else:
            def apply(q):
                return _exact_bilateral(feats, q.reshape(b, h * w, -1)).reshape(q.shape)
    else:
        grid = _Grid(image, position_sigma, colour_sigma, cells_per_sigma)
        self_weight = grid.self_weight.reshape(b, h, w, 1)

        def apply(q):
            return grid.filter(q.reshape(b, h * w, -1)).reshape(q.shape)
    return apply, self_weight


def bilateral_filter(q, image, position_sigma: float, colour_sigma: float, *,
                     method: str = "exact", grid_cells_per_sigma: float = 1.5):
    """``Σ_j k_b(f_i, f_j) q_j`` over all pixels ``j`` (self included) with the bilateral kernel.

    Args:
      q: floating ``[B, H, W, C]``. image: ``[B, H, W, K]`` in 0 … 255.
      position_sigma, colour_sigma: the kernel widths in pixels and intensity units, > 0.
      method: ``"exact"`` or ``"grid"`` (see the module docstring for the grid's error).
      grid_cells_per_sigma: the grid's sampling, ``>= 1`` (``"grid"`` only).

    Returns:
      ``[B, H, W, C]`` in ``q``'s dtype (computed in float32 or float64).
    """
    q, image, _ = _check_pair(q, image, "q")
    check_positive(position_sigma, "position_sigma")
    check_positive(colour_sigma, "colour_sigma")
    ct = jnp.promote_types(q.dtype, jnp.float32)
    out = _bilateral_filter(q.astype(ct), jnp.asarray(image, ct), float(position_sigma),
                            float(colour_sigma), _check_method(method),
                            _check_cells(grid_cells_per_sigma))
    return out.astype(q.dtype)


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _bilateral_filter(q, image, position_sigma, colour_sigma, method, cells):
    return _bilateral_operator(image, position_sigma, colour_sigma, method, cells)[0](q)


def _check_cells(cells_per_sigma):
    if not (is_concrete(cells_per_sigma) and float(cells_per_sigma) >= 1.0):
        raise ValueError(f"grid_cells_per_sigma must be a number >= 1; got {cells_per_sigma}")
    return float(cells_per_sigma)


def _check_method(method):
    if method not in ("exact", "grid"):
        raise ValueError(f"method must be 'exact' or 'grid'; got {method!r}")
    return method


def _check_pair(logits, image, name):
    logits = check_array(logits, name, ndim=4, kind="floating", shape_hint="[B, H, W, C]")
    image = check_array(image, "image", ndim=4, kind="numeric", shape_hint="[B, H, W, K]")
    if tuple(image.shape[:3]) != tuple(logits.shape[:3]):
        raise ValueError(f"image must match {name} in batch and spatial shape (B, H, W) = "
                         f"{tuple(logits.shape[:3])}; got image shape {tuple(image.shape)}")
    if logits.shape[-1] < 1 or image.shape[-1] < 1:
        raise ValueError(f"{name} and image need at least one channel; got {tuple(logits.shape)}"
                         f" and {tuple(image.shape)}")
    return logits, image, logits.shape[-1]


def dense_crf(unary_logits, image, *, iterations: int = 5, spatial_sigma: float = 3.0,
              bilateral_sigmas=(30.0, 13.0), weights=(3.0, 5.0), compatibility=None,
              method: str = "exact", grid_cells_per_sigma: float = 1.5):
    """Mean-field inference in the fully connected CRF (Krähenbühl & Koltun, 2011).

    Args:
      unary_logits: floating ``[B, H, W, C]`` per-pixel class scores (the unary potential is
        ``−unary_logits``), e.g. a segmentation network's logits.
      image: ``[B, H, W, K]`` (usually RGB, ``K = 3``) with intensities in **0 … 255**.
      iterations: mean-field updates, ``>= 0`` (a Python int; 5 in CRF-as-RNN training).
      spatial_sigma: ``σ_γ`` of the smoothness kernel, in pixels.
      bilateral_sigmas: ``(σ_α, σ_β)`` of the appearance kernel: pixels and intensity units.
      weights: ``(w_s, w_b)`` of the two kernels: scalars (or arrays broadcastable to
        ``[B, H, W, C]``), differentiable.
      compatibility: ``[C, C]`` ``μ(l, l')``, differentiable; default Potts ``1 − eye(C)``.
      method: ``"exact"`` or ``"grid"`` for the bilateral kernel (see the module docstring).
      grid_cells_per_sigma: the grid's sampling for ``"grid"``, ``>= 1``: more cells are more
        accurate and use ``grid_cells_per_sigma ** (2 + K)`` times the memory of one.

    Returns:
      ``[B, H, W, C]`` refined logits ``unary_logits − pairwise`` of the last update, in
      ``unary_logits``' dtype: ``softmax`` of them is the mean-field ``Q``. With
      ``iterations = 0`` (or zero weights) they equal ``unary_logits``.

    Raises:
      ValueError: wrong ranks, ``image`` not matching ``B, H, W``, non-positive sigmas,
      ``iterations < 0``, a ``compatibility`` that is not ``[C, C]`` or an unknown ``method``.
      TypeError: ``iterations`` not an int. Inside ``jit`` shapes and the Python arguments are
      still checked; weights and compatibility values are used as given.
    """
    unary_logits, image, c = _check_pair(unary_logits, image, "unary_logits")
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)):
        raise TypeError(f"iterations must be a Python int; got {type(iterations).__name__}")
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0; got {iterations}")
    check_positive(spatial_sigma, "spatial_sigma")
    if len(bilateral_sigmas) != 2:
        raise ValueError(f"bilateral_sigmas must be (position_sigma, colour_sigma); got "
                         f"{bilateral_sigmas!r}")
    check_positive(bilateral_sigmas[0], "bilateral_sigmas[0] (position_sigma)")
    check_positive(bilateral_sigmas[1], "bilateral_sigmas[1] (colour_sigma)")
    if len(weights) != 2:
        raise ValueError(f"weights must be (spatial_weight, bilateral_weight); got {weights!r}")
    for i, wt in enumerate(weights):
        if is_concrete(wt) and not np.all(np.isfinite(np.asarray(wt, np.float64))):
            raise ValueError(f"weights[{i}] must be finite; got {wt}")
    method = _check_method(method)
    cells = _check_cells(grid_cells_per_sigma)
    ct = jnp.promote_types(unary_logits.dtype, jnp.float32)
    if compatibility is None:
        compatibility = 1.0 - jnp.eye(c, dtype=ct)
    else:
        compatibility = check_array(compatibility, "compatibility", ndim=2, kind="floating",
                                    shape_hint="[C, C]")
        if tuple(compatibility.shape) != (c, c):
            raise ValueError(f"compatibility must be [C, C] with C = {c}; got shape "
                             f"{tuple(compatibility.shape)}")
    if iterations == 0:
        return unary_logits
    refined = _mean_field(unary_logits.astype(ct), jnp.asarray(image, ct),
                          *(jnp.asarray(wt, ct) for wt in weights), jnp.asarray(compatibility, ct),
                          iterations=int(iterations), spatial_sigma=float(spatial_sigma),
                          position_sigma=float(bilateral_sigmas[0]),
                          colour_sigma=float(bilateral_sigmas[1]), method=method, cells=cells)
    return refined.astype(unary_logits.dtype)


@functools.partial(jax.jit, static_argnames=("iterations", "spatial_sigma", "position_sigma",
                                              "colour_sigma", "method", "cells"))
def _mean_field(logits, image, w_s, w_b, compat, *, iterations, spatial_sigma, position_sigma,
                colour_sigma, method, cells):
    bilateral, self_b = _bilateral_operator(image, position_sigma, colour_sigma, method, cells)

    def update(current, _):
        q = jax.nn.softmax(current, axis=-1)
        message = (w_s * (_spatial(q, spatial_sigma) - q) + w_b * (bilateral(q) - self_b * q))
        pairwise = jnp.einsum("bhwc,lc->bhwl", message, compat, precision=_HIGHEST)
        return logits - pairwise, None

    refined, _ = lax.scan(update, logits, None, length=iterations)
    return refined
