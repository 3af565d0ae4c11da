"""Numerically stable log-sum-exp, softmax, cross-entropy and the Gaussian negative
log-likelihood, each with the analytic gradient the tests check.

All functions compute in float32 (or float64 when given float64) and return the input's dtype:
bfloat16/float16 inputs are upcast internally, so ``exp`` never overflows in half precision.
``where`` masks (broadcastable to ``x``) exclude entries: an excluded entry contributes nothing
to the value and receives exactly zero gradient.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax

from vai_jax._validation import (check_array, check_axes, check_axis, check_labels,
                                 check_number, invalid_labels)

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _compute_dtype(dtype):
    return jnp.float64 if dtype == jnp.float64 else jnp.float32


def _prepare(x, name, where):
    """Validate a floating input, upcast it, and replace excluded entries by -inf."""
    x = check_array(x, name, kind="floating")
    xc = x.astype(_compute_dtype(x.dtype))
    if where is not None:
        where = jnp.asarray(where)
        if where.dtype != jnp.bool_:
            raise TypeError(f"where must be a boolean mask; got dtype {where.dtype}")
        try:
            jnp.broadcast_shapes(where.shape, x.shape)
        except ValueError:
            raise ValueError(
                f"where must broadcast to {name}'s shape {tuple(x.shape)}; got {tuple(where.shape)}"
            ) from None
        xc = jnp.where(where, xc, -jnp.inf)
    return x, xc


def _shift(x, axis):
    """The max over ``axis`` (kept), replaced by 0 where it is not finite, without gradient."""
    m = jnp.max(x, axis=axis, keepdims=True)
    return lax.stop_gradient(jnp.where(jnp.isfinite(m), m, 0.0))


def _safe_softmax(x, axis):
    """exp-normalise; an all ``-inf`` slice gives zeros (not NaN), with finite derivatives."""
    e = jnp.exp(x - _shift(x, axis))
    s = jnp.sum(e, axis=axis, keepdims=True)
    return e / jnp.where(s > 0, s, 1.0)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _logsumexp_kept(x, axis):
    m = _shift(x, axis)
    return jnp.log(jnp.sum(jnp.exp(x - m), axis=axis, keepdims=True)) + m


@_logsumexp_kept.defjvp
def _logsumexp_kept_jvp(axis, primals, tangents):
    (x,), (t,) = primals, tangents
    p = _safe_softmax(x, axis)
    # p is exactly 0 on -inf entries; zero their tangents too so inf·0 cannot appear.
    t = jnp.where(p > 0, t, 0.0)
    return _logsumexp_kept(x, axis), jnp.sum(p * t, axis=axis, keepdims=True)


def logsumexp(x, axis=-1, keepdims: bool = False, where=None):
    """``log Σ exp(x)`` over ``axis`` with the max-shift trick.

    Args:
      x: floating array ``[...]``.
      axis: int or tuple of ints.
      keepdims: keep reduced axes with size 1.
      where: optional boolean mask broadcastable to ``x``; False entries are excluded.

    Returns:
      Array of ``x``'s dtype. A slice with no finite entry (all ``-inf`` or all excluded)
      gives ``-inf``. The gradient is ``softmax(x)`` over the slice: zero, finite, for an all
      ``-inf`` slice and exactly zero on excluded entries (a custom JVP, so it is also correct
      to second order).
    """
    x, xc = _prepare(x, "x", where)
    axes = check_axes(axis, x.ndim)
    out = _logsumexp_kept(xc, axes)
    if not keepdims:
        out = jnp.squeeze(out, axis=axes)
    return out.astype(x.dtype)


def softmax(x, axis=-1, where=None):
    """``exp(x − max) / Σ exp(x − max)`` over ``axis`` (exp-normalise trick).

    Excluded entries (``where`` False) and ``-inf`` entries get probability 0; a slice with no
    finite entry gives all zeros. Returns ``x``'s shape and dtype.
    """
    x, xc = _prepare(x, "x", where)
    axes = check_axes(axis, x.ndim)
    return _safe_softmax(xc, axes).astype(x.dtype)


def log_softmax(x, axis=-1, where=None):
    """``x − logsumexp(x)`` over ``axis``; excluded and ``-inf`` entries give ``-inf``.

    Its gradient (vector–Jacobian with cotangent ``g``) is ``g − softmax(x)·Σg``; excluded
    entries get exactly zero.
    """
    x, xc = _prepare(x, "x", where)
    axes = check_axes(axis, x.ndim)
    out = xc - _logsumexp_kept(xc, axes)
    return jnp.where(xc == -jnp.inf, -jnp.inf, out).astype(x.dtype)


def cross_entropy(logits, labels, *, axis: int = -1, label_smoothing: float = 0.0):
    """Per-example cross-entropy ``−Σ_c t_c log_softmax(logits)_c``.

    Args:
      logits: floating ``[..., C, ...]`` with classes along ``axis``.
      labels: either integer class ids with ``logits``' shape minus ``axis`` (values in
        ``[0, C)``; negative-log-likelihood of the true class), or floating targets of
        ``logits``' shape (a distribution over classes; soft cross-entropy).
      axis: the class axis.
      label_smoothing: ``ε`` in ``[0, 1)``; the target becomes ``(1 − ε)·t + ε / C``.

    Returns:
      Loss of ``logits``' shape without ``axis``, in ``logits``' dtype. Its gradient with
      respect to ``logits`` is ``softmax(logits) − target``. A ``-inf`` logit on a class with
      zero target weight contributes nothing: value and gradient stay finite (with label
      smoothing every class has positive weight, so such a logit makes the loss ``+inf``).

    Raises:
      ValueError: eager integer labels outside ``[0, C)``; shapes that do not match.
      TypeError: ``label_smoothing`` not a real number, non-numeric labels.

    Under ``jit`` an integer label outside ``[0, C)`` makes that example's loss NaN (its gradient
    stays zero and finite): a train step over it is skipped and counted, never trained on.
    """
    logits = check_array(logits, "logits", kind="floating", min_ndim=1)
    axis = check_axis(axis, logits.ndim)
    num_classes = logits.shape[axis]
    check_number(label_smoothing, "label_smoothing", ge=0.0, lt=1.0)
    bad = None
    labels = check_array(labels, "labels", kind="numeric")
    lsm = log_softmax(logits.astype(_compute_dtype(logits.dtype)), axis=axis)
    if jnp.issubdtype(labels.dtype, jnp.integer):
        want = logits.shape[:axis] + logits.shape[axis + 1:]
        if tuple(labels.shape) != want:
            raise ValueError(
                f"integer labels must have shape {want} (logits {tuple(logits.shape)} without "
                f"axis {axis}); got {tuple(labels.shape)}")
        check_labels(labels, num_classes)
        bad = invalid_labels(labels, num_classes)
        classes = lax.broadcasted_iota(jnp.int32, lsm.shape, axis)
        target = (classes == jnp.expand_dims(labels, axis)).astype(lsm.dtype)
    else:
        if tuple(labels.shape) != tuple(logits.shape):
            raise ValueError(
                f"floating targets must have logits' shape {tuple(logits.shape)}; got "
                f"{tuple(labels.shape)}")
        target = labels.astype(lsm.dtype)
    if label_smoothing:
        target = (1.0 - label_smoothing) * target + label_smoothing / num_classes
    loss = -jnp.sum(jnp.where(target != 0, target * lsm, 0.0), axis=axis)
    if bad is not None:
        loss = jnp.where(bad, jnp.nan, loss)
    return loss.astype(logits.dtype)


def nll(log_probs, labels, *, axis: int = -1):
    """Negative log-likelihood ``−log_probs[label]`` per example.

    Args:
      log_probs: floating ``[..., C]`` log-probabilities (e.g. from :func:`log_softmax`).
      labels: integer ``[...]`` in ``[0, C)``.

    Returns:
      ``[...]`` in ``log_probs``' dtype; gradient ``−onehot(label)``. Eager labels outside
      ``[0, C)`` raise ValueError; under ``jit`` they give NaN (gradient zero).
    """
    log_probs = check_array(log_probs, "log_probs", kind="floating", min_ndim=1)
    axis = check_axis(axis, log_probs.ndim)
    labels = check_array(labels, "labels", kind="integer")
    want = log_probs.shape[:axis] + log_probs.shape[axis + 1:]
    if tuple(labels.shape) != want:
        raise ValueError(f"labels must have shape {want}; got {tuple(labels.shape)}")
    check_labels(labels, log_probs.shape[axis])
    bad = invalid_labels(labels, log_probs.shape[axis])
    safe = jnp.where(bad, 0, labels)
    picked = jnp.take_along_axis(log_probs, jnp.expand_dims(safe, axis), axis=axis)
    return jnp.where(bad, jnp.nan, -jnp.squeeze(picked, axis)).astype(log_probs.dtype)


def l2_loss(predictions, targets=None):
    """``½ (predictions − targets)²`` per element (``targets`` defaults to 0).

    Gradient with respect to ``predictions``: ``predictions − targets``.
    """
    predictions = check_array(predictions, "predictions", kind="floating")
    if targets is None:
        diff = predictions
    else:
        targets = check_array(targets, "targets", kind="numeric")
        try:
            jnp.broadcast_shapes(predictions.shape, targets.shape)
        except ValueError:
            raise ValueError(
                f"targets {tuple(targets.shape)} must broadcast to predictions "
                f"{tuple(predictions.shape)}") from None
        diff = predictions - targets.astype(predictions.dtype)
    d = diff.astype(_compute_dtype(predictions.dtype))
    return (0.5 * d * d).astype(predictions.dtype)


def gaussian_nll(target, mean, log_std):
    """Negative log-likelihood of ``target`` under ``N(mean, exp(log_std)²)``, per element:
    ``log σ + ½ log 2π + (y − μ)² / (2σ²)`` — the density-network loss.

    Args:
      target, mean, log_std: floating arrays broadcastable to one shape (``log_std`` is the
        log of the standard deviation, so any real value is a valid σ > 0).

    Returns:
      The broadcast shape, in ``mean``'s dtype. Gradients: ``∂/∂μ = (μ − y)/σ²`` and
      ``∂/∂log σ = 1 − (y − μ)²/σ²``.
    """
    mean = check_array(mean, "mean", kind="floating")
    log_std = check_array(log_std, "log_std", kind="floating")
    target = check_array(target, "target", kind="numeric")
    try:
        jnp.broadcast_shapes(target.shape, mean.shape, log_std.shape)
    except ValueError:
        raise ValueError(
            f"target {tuple(target.shape)}, mean {tuple(mean.shape)} and log_std "
            f"{tuple(log_std.shape)} must broadcast to one shape") from None
    ct = _compute_dtype(mean.dtype)
    y, mu, ls = target.astype(ct), mean.astype(ct), log_std.astype(ct)
    z = (y - mu) * jnp.exp(-ls)
    return (ls + _HALF_LOG_2PI + 0.5 * z * z).astype(mean.dtype)
