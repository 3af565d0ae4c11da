"""2D keypoint losses: pure functions ``(predictions, targets, weights) -> per-example loss [B]``.

``weights`` ``[B, K]`` are per-keypoint weights (typically visibility ``v > 0`` as 0/1, or
:func:`vai_jax.ops.heatmap_weights`). Every loss is the weighted *mean* over keypoints,
``Σ_k w_k ℓ_k / max(Σ_k w_k, 1)``, so an example whose keypoints are all invisible
(weights all 0) has loss exactly 0 and zero gradient — never NaN. Coordinates are ``(x, y)``
image pixels; all losses are computed in float32 and returned as float32 ``[B]``.
"""
from __future__ import annotations

import jax.numpy as jnp

from vai_jax._validation import check_array, check_same_shape
from vai_jax.ops.coords import heatmap_to_image
from vai_jax.ops.keypoints import soft_argmax
from vai_jax.ops.numerics import gaussian_nll, l2_loss


def _coords(x, name):
    x = check_array(x, name, min_ndim=2, kind="numeric", shape_hint="[B, K, 2] (or [B, K, 3])")
    if x.shape[-1] not in (2, 3):
        raise ValueError(f"{name} must have last dimension 2 (x, y) or 3 (x, y, v); got shape "
                         f"{tuple(x.shape)}")
    return x[..., :2].astype(jnp.float32)


def _weights(weights, shape, name="weights"):
    weights = check_array(weights, name, kind="numeric", shape_hint="[B, K]")
    if tuple(weights.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}; got {tuple(weights.shape)}")
    return weights.astype(jnp.float32)


def _weighted_mean(per_kp, weights):
    """``[..., K]`` per-keypoint losses → ``[...]`` weighted mean (0 when all weights are 0)."""
    per_kp = jnp.where(weights > 0, per_kp, 0.0)  # masked entries cannot leak inf/NaN
    return jnp.sum(per_kp * weights, axis=-1) / jnp.maximum(jnp.sum(weights, axis=-1), 1.0)


def _pair(predictions, targets, weights):
    p = _coords(predictions, "predictions")
    t = _coords(targets, "targets")
    check_same_shape(p, t, "predictions[..., :2]", "targets[..., :2]")
    return p, t, _weights(weights, p.shape[:-1])


def coordinate_l1(predictions, targets, weights):
    """``|Δx| + |Δy|`` per keypoint, weighted mean over keypoints.

    Args:
      predictions: ``[B, K, 2]`` image pixels.
      targets: ``[B, K, 2]`` or keypoints ``[B, K, 3]`` (visibility column ignored here).
      weights: ``[B, K]``.

    Returns:
      float32 ``[B]``.
    """
    p, t, w = _pair(predictions, targets, weights)
    return _weighted_mean(jnp.sum(jnp.abs(p - t), axis=-1), w)


def coordinate_l2(predictions, targets, weights):
    """``½ (Δx² + Δy²)`` per keypoint (:func:`vai_jax.ops.l2_loss`), weighted mean.

    Shapes as :func:`coordinate_l1`; returns float32 ``[B]``.
    """
    p, t, w = _pair(predictions, targets, weights)
    return _weighted_mean(jnp.sum(l2_loss(p, t), axis=-1), w)


def heatmap_mse(predictions, targets, weights):
    """Heatmap regression loss: per keypoint the mean over cells of ``(H − T)²``, weighted mean
    over keypoints.

    Args:
      predictions, targets: ``[B, H, W, K]`` (e.g. :func:`vai_jax.ops.gaussian_heatmaps`).
      weights: ``[B, K]`` visibility weights (:func:`vai_jax.ops.heatmap_weights`).

    Returns:
      float32 ``[B]``.
    """
    p = check_array(predictions, "predictions", ndim=4, kind="floating",
                    shape_hint="[B, H, W, K]")
    t = check_array(targets, "targets", ndim=4, kind="numeric", shape_hint="[B, H, W, K]")
    check_same_shape(p, t, "predictions", "targets")
    w = _weights(weights, (p.shape[0], p.shape[-1]))
    d = p.astype(jnp.float32) - t.astype(jnp.float32)
    return _weighted_mean(jnp.mean(d * d, axis=(1, 2)), w)


def integral_l1(heatmaps, targets, weights, *, stride, beta=1.0):
    """Integral-regression loss: :func:`coordinate_l1` of ``stride · soft_argmax(heatmaps)``.

    Args:
      heatmaps: logits ``[B, H, W, K]`` on a grid of stride ``stride``.
      targets: ``[B, K, 2]`` or ``[B, K, 3]`` image pixels.
      weights: ``[B, K]``.
      stride: image pixels per heatmap cell. beta: soft-max inverse temperature (> 0).

    Returns:
      float32 ``[B]``.
    """
    heatmaps = check_array(heatmaps, "heatmaps", ndim=4, kind="floating",
                           shape_hint="[B, H, W, K]")
    coords = heatmap_to_image(soft_argmax(heatmaps, beta=beta), stride)
    return coordinate_l1(coords, targets, weights)


def gaussian_nll_loss(mean, log_std, targets, weights):
    """Density-network loss: the negative log-likelihood of the target under independent
    Gaussians ``N(mean, exp(log_std)²)`` per coordinate (:func:`vai_jax.ops.gaussian_nll`),
    summed over ``(x, y)``, weighted mean over keypoints.

    Args:
      mean, log_std: ``[B, K, 2]`` (``log_std`` = log σ in image pixels).
      targets: ``[B, K, 2]`` or ``[B, K, 3]``.
      weights: ``[B, K]``.

    Returns:
      float32 ``[B]`` (includes the constant ``log √(2π)`` per coordinate).
    """
    m, t, w = _pair(mean, targets, weights)
    ls = check_array(log_std, "log_std", kind="floating", shape_hint="[B, K, 2]")
    check_same_shape(m, ls, "mean", "log_std")
    nll = gaussian_nll(t, m, ls.astype(jnp.float32))
    return _weighted_mean(jnp.sum(nll, axis=-1), w)


def paf_mse(predictions, targets, weights=None):
    """Part-affinity-field loss: mean over cells, limbs and components of ``(F − T)²``.

    Args:
      predictions, targets: ``[B, H, W, L, 2]`` (:func:`vai_jax.pose.paf.part_affinity_fields`).
      weights: optional ``[B, H, W, L]`` per-cell weights (e.g. 0 where a person is unlabelled,
        Cao et al.'s mask); the mean is then over weighted cells (0 when all are 0).

    Returns:
      float32 ``[B]``.
    """
    p = check_array(predictions, "predictions", ndim=5, last_dim=2, kind="floating",
                    shape_hint="[B, H, W, L, 2]")
    t = check_array(targets, "targets", ndim=5, last_dim=2, kind="numeric",
                    shape_hint="[B, H, W, L, 2]")
    check_same_shape(p, t, "predictions", "targets")
    d = p.astype(jnp.float32) - t.astype(jnp.float32)
    per_cell = jnp.sum(d * d, axis=-1) / 2.0
    if weights is None:
        return jnp.mean(per_cell, axis=(1, 2, 3))
    w = _weights(weights, p.shape[:-1])
    flat = (per_cell * w).reshape(p.shape[0], -1)
    return jnp.sum(flat, -1) / jnp.maximum(jnp.sum(w.reshape(p.shape[0], -1), -1), 1.0)


__all__ = ["coordinate_l1", "coordinate_l2", "gaussian_nll_loss", "heatmap_mse", "integral_l1",
           "paf_mse"]
