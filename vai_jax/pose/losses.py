"""2D keypoint losses, per example, computed in float32.

Two conventions (as every task's ``losses.py``):

- primitives ``(predictions, targets, weights) -> [B]``: :func:`coordinate_l1`,
  :func:`coordinate_l2`, :func:`heatmap_mse`, :func:`integral_l1`, :func:`gaussian_nll_loss`
  (whose prediction is the pair ``mean, log_std``) and :func:`paf_mse`;
- train-step losses ``(outputs, batch, **options) -> [B]``
  (:data:`vai_jax.train.step.LossFn`; bind options with ``functools.partial``), reading a
  head's output dict (keys of :mod:`vai_jax.pose.heads`) and a batch with ``"keypoints"``
  ``[B, K, 3]`` (``[B, M, K, 3]`` for :func:`paf_loss`) and optional ``"weights"`` ``[B, K]``
  (default: visibility ``v > 0``): :func:`coordinate_loss`, :func:`density_loss`,
  :func:`integral_loss`, :func:`heatmap_loss`, :func:`paf_loss`.

``weights`` ``[B, K]`` are per-keypoint weights (typically visibility ``v > 0`` as 0/1, or
:func:`vai_jax.ops.heatmap_weights`). Every keypoint loss is the weighted *mean* over keypoints,
``Σ_k w_k ℓ_k / max(Σ_k w_k, 1)``, so an example whose keypoints are all invisible
(weights all 0) has loss exactly 0 and zero gradient — never NaN. Coordinates are ``(x, y)``
image pixels; all losses are returned as float32 ``[B]``.
"""
from __future__ import annotations

import jax.numpy as jnp

from vai_jax._validation import check_array, check_same_shape
from vai_jax.ops.coords import heatmap_to_image
from vai_jax.ops.keypoints import soft_argmax
from vai_jax.ops.numerics import gaussian_nll, l2_loss
from vai_jax.pose.targets import heatmap_targets, multi_instance_targets


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


# ------------------------------------------------------------------ train-step losses
def _batch_weights(batch):
    """``batch["weights"]``, or the visibility ``v > 0`` of ``batch["keypoints"]`` as 0/1."""
    if "weights" in batch:
        return batch["weights"]
    return (jnp.asarray(batch["keypoints"])[..., 2] > 0).astype(jnp.float32)


def coordinate_loss(outputs, batch):
    """:func:`coordinate_l1` of ``outputs["coords"]`` (regression or integral head) against
    ``batch["keypoints"]`` with the batch weights. Returns float32 ``[B]``."""
    return coordinate_l1(outputs["coords"], batch["keypoints"], _batch_weights(batch))


def density_loss(outputs, batch):
    """:func:`gaussian_nll_loss` of a :class:`~vai_jax.pose.heads.DensityHead`'s ``coords``
    (the mean) and ``log_std`` against ``batch["keypoints"]``. Returns float32 ``[B]``."""
    return gaussian_nll_loss(outputs["coords"], outputs["log_std"], batch["keypoints"],
                             _batch_weights(batch))


def integral_loss(outputs, batch, *, stride, beta=1.0):
    """:func:`integral_l1` of ``outputs["heatmaps"]`` (logits of stride ``stride``, soft-max
    inverse temperature ``beta``) against ``batch["keypoints"]``. Returns float32 ``[B]``."""
    return integral_l1(outputs["heatmaps"], batch["keypoints"], _batch_weights(batch),
                       stride=stride, beta=beta)


def heatmap_loss(outputs, batch, *, stride, sigma):
    """:func:`heatmap_mse` of ``outputs["heatmaps"]`` ``[B, H, W, K]`` (stride ``stride``)
    against :func:`vai_jax.pose.targets.heatmap_targets` of ``batch["keypoints"]`` (Gaussians
    of ``sigma`` heatmap cells), weighted by those targets' weights (labelled and inside the
    map; ``batch["weights"]`` is not used). Returns float32 ``[B]``."""
    heatmaps = outputs["heatmaps"]
    targets, weights = heatmap_targets(batch["keypoints"], heatmaps.shape[1:3], stride=stride,
                                       sigma=sigma)
    return heatmap_mse(heatmaps, targets, weights)


def paf_loss(outputs, batch, *, skeleton, stride, sigma, paf_sigma, paf_weight=1.0):
    """Multi-instance loss of a :class:`~vai_jax.pose.heads.PAFHead`:
    ``heatmap_mse(heatmaps) + paf_weight · paf_mse(pafs)`` against
    :func:`vai_jax.pose.targets.multi_instance_targets` of ``batch["keypoints"]``
    ``[B, M, K, 3]`` (every keypoint map weighted 1).

    Args:
      outputs: ``{"heatmaps": [B, H, W, K], "pafs": [B, H, W, L, 2]}`` of stride ``stride``.
      batch: ``{"keypoints": [B, M, K, 3], ...}``.
      skeleton: integer ``[L, 2]`` limbs. sigma, paf_sigma: in heatmap cells.
      paf_weight: weight of the field term.

    Returns:
      float32 ``[B]``.
    """
    heatmaps = outputs["heatmaps"]
    hm_targets, paf_targets = multi_instance_targets(
        batch["keypoints"], skeleton, heatmaps.shape[1:3], stride=stride, sigma=sigma,
        paf_sigma=paf_sigma)
    weights = jnp.ones(hm_targets.shape[:1] + hm_targets.shape[-1:])
    return (heatmap_mse(heatmaps, hm_targets, weights)
            + paf_weight * paf_mse(outputs["pafs"], paf_targets))


__all__ = ["coordinate_l1", "coordinate_l2", "coordinate_loss", "density_loss",
           "gaussian_nll_loss", "heatmap_loss", "heatmap_mse", "integral_l1", "integral_loss",
           "paf_loss", "paf_mse"]
