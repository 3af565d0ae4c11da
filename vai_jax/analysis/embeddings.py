"""What an embedding encodes: linear (ridge) decoding of continuous factors, nearest-neighbour
label agreement, and 2-D projections (principal components, t-SNE).

The questions follow the "manifold" view of deep features: if a network's representation
organises images by their factors of variation (a rotation moves along one direction, a change
of scale along another), those factors are linearly decodable from it and images close in it
share their class, whereas in pixel space neither need hold. Class decodability by a linear
softmax probe is :func:`vai_jax.analysis.probing.train_linear_probe`.

Everything here is NumPy in float64 (closed forms, no training loop), deterministic, and takes
features ``[N, D]`` such as :func:`vai_jax.analysis.probing.extract_features` returns.

Angles of objects with ``k``-fold rotational symmetry (a square: ``k = 4``) are only defined
modulo ``2π / k``; :func:`symmetric_angle_targets` encodes them as ``(cos kθ, sin kθ)``, a
continuous target that ignores the symmetry, and :func:`angle_from_targets` /
:func:`angular_error` map back.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from vai_jax._validation import check_array


def _matrix(x, name: str) -> np.ndarray:
    x = check_array(x, name, ndim=2, kind="floating", shape_hint="[N, D]")
    return np.asarray(x, np.float64)


def _targets(y, n: int, name: str) -> np.ndarray:
    y = np.asarray(y, np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] != n:
        raise ValueError(f"{name} must be [N] or [N, K] with N = {n}; got shape {y.shape}")
    return y


def standardize(train_x, *others, eps: float = 1e-6) -> tuple[np.ndarray, ...]:
    """``(x − mean) / (std + eps)`` with the per-dimension statistics of ``train_x [N, D]``,
    applied to ``train_x`` and to every array of ``others`` (``[M, D]``); float64."""
    train = _matrix(train_x, "train_x")
    mean, std = train.mean(0), train.std(0) + eps
    out = [(train - mean) / std]
    for i, x in enumerate(others):
        x = _matrix(x, f"others[{i}]")
        if x.shape[1] != train.shape[1]:
            raise ValueError(f"others[{i}] must have D = {train.shape[1]} columns; got "
                             f"{x.shape[1]}")
        out.append((x - mean) / std)
    return tuple(out)


def fit_ridge(x, y, l2: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression with an unpenalised intercept.

    Minimises ``||y − x·w − b||² + l2·||w||²`` in closed form (the primal normal equations when
    ``D <= N``, the dual ``w = xcᵀ (xc xcᵀ + l2·I)⁻¹ yc`` otherwise; ``xc``, ``yc`` centred).

    Args:
      x: floating ``[N, D]``.
      y: ``[N]`` or ``[N, K]`` targets.
      l2: ``>= 0``; 0 is ordinary least squares and needs a full-rank system.

    Returns:
      ``(w [D, K], b [K])`` float64; predict with ``x @ w + b``.
    """
    return _ridge_path(x, y)(l2)


def _ridge_path(x, y):
    """``l2 -> (w, b)`` for one data set: the centred Gram matrix is computed once."""
    x = _matrix(x, "x")
    y = _targets(y, x.shape[0], "y")
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    n, d = xc.shape
    primal = d <= n
    gram = xc.T @ xc if primal else xc @ xc.T
    rhs = xc.T @ yc if primal else yc

    def solve(l2):
        if not np.isfinite(l2) or l2 < 0:
            raise ValueError(f"l2 must be a finite number >= 0; got {l2!r}")
        z = np.linalg.solve(gram + l2 * np.eye(gram.shape[0]), rhs)
        w = z if primal else xc.T @ z
        return w, my - mx @ w

    return solve


def r2_score(y, pred) -> np.ndarray:
    """Coefficient of determination per output, ``1 − SS_res / SS_tot``: float64 ``[K]`` for
    ``y``, ``pred`` of shape ``[N]`` or ``[N, K]`` (1 is perfect, 0 is the mean's score,
    negative is worse than predicting the mean). A constant target gives NaN."""
    y = np.asarray(y, np.float64)
    pred = np.asarray(pred, np.float64)
    if y.shape != pred.shape:
        raise ValueError(f"y and pred must have one shape; got {y.shape} and {pred.shape}")
    y = _targets(y, y.shape[0], "y")
    pred = _targets(pred, y.shape[0], "pred")
    ss_res = ((y - pred) ** 2).sum(0)
    ss_tot = ((y - y.mean(0)) ** 2).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), np.nan)


@dataclasses.dataclass(frozen=True)
class RidgeResult:
    """A ridge decoder's test ``r2`` (mean over outputs), per-output ``r2_per_output``, the
    chosen ``l2``, the feature length ``dim`` and the test ``predictions [M, K]``."""

    r2: float
    r2_per_output: np.ndarray
    l2: float
    dim: int
    predictions: np.ndarray


def ridge_decode(train_x, train_y, test_x, test_y, *,
                 l2s: Sequence[float] = (1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3, 1e4),
                 val_fraction: float = 0.2, seed: int = 0) -> RidgeResult:
    """How well a linear map decodes ``y`` from features: standardise with the training
    statistics, choose ``l2`` among ``l2s`` by the mean R² on a random ``val_fraction`` of the
    training set, refit on the whole training set and score the test set.

    Args:
      train_x: ``[N, D]``; train_y: ``[N]`` or ``[N, K]``.
      test_x: ``[M, D]``; test_y: ``[M]`` or ``[M, K]``.
      l2s: candidate penalties (on standardised features), each ``>= 0``.
      val_fraction: in ``(0, 1)``; seed: the validation split's seed.
    """
    train_x, test_x = _matrix(train_x, "train_x"), _matrix(test_x, "test_x")
    train_y = _targets(train_y, train_x.shape[0], "train_y")
    test_y = _targets(test_y, test_x.shape[0], "test_y")
    if train_y.shape[1] != test_y.shape[1]:
        raise ValueError(f"train_y and test_y must have as many outputs; got "
                         f"{train_y.shape[1]} and {test_y.shape[1]}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1); got {val_fraction}")
    if not len(l2s):
        raise ValueError("l2s must not be empty")
    n = train_x.shape[0]
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(val_fraction * n)))
    val, fit = perm[:n_val], perm[n_val:]
    if len(fit) < 2:
        raise ValueError(f"train_x has too few rows ({n}) for a validation split")
    xf, xv = standardize(train_x[fit], train_x[val])
    path = _ridge_path(xf, train_y[fit])
    scores = []
    for l2 in l2s:
        w, b = path(float(l2))
        scores.append(np.nanmean(r2_score(train_y[val], xv @ w + b)))
    best = float(l2s[int(np.nanargmax(scores))])
    xtr, xte = standardize(train_x, test_x)
    w, b = fit_ridge(xtr, train_y, best)
    pred = xte @ w + b
    per = r2_score(test_y, pred)
    return RidgeResult(float(np.mean(per)), per, best, train_x.shape[1], pred)


def symmetric_angle_targets(angle, order) -> np.ndarray:
    """``(cos(k·θ), sin(k·θ))`` float64 ``[N, 2]`` for angles ``θ [N]`` (radians) of objects
    with ``k``-fold rotational symmetry (``order``: an int or ``[N]`` ints >= 1)."""
    angle = np.asarray(angle, np.float64)
    order = np.broadcast_to(np.asarray(order), angle.shape)
    if (order < 1).any():
        raise ValueError(f"order must be >= 1; got minimum {order.min()}")
    a = order * angle
    return np.stack([np.cos(a), np.sin(a)], -1)


def angle_from_targets(targets, order) -> np.ndarray:
    """Inverse of :func:`symmetric_angle_targets`: ``atan2(s, c) / k`` in ``(−π/k, π/k]``."""
    targets = np.asarray(targets, np.float64)
    if targets.ndim < 1 or targets.shape[-1] != 2:
        raise ValueError(f"targets must be [..., 2] (cos, sin); got shape {targets.shape}")
    return np.arctan2(targets[..., 1], targets[..., 0]) / np.asarray(order, np.float64)


def angular_error(pred, true, order) -> np.ndarray:
    """``|θ̂ − θ|`` modulo the symmetry ``2π / k``: in ``[0, π / k]`` radians."""
    k = np.asarray(order, np.float64)
    d = k * (np.asarray(pred, np.float64) - np.asarray(true, np.float64))
    return np.abs(np.angle(np.exp(1j * d))) / k


def knn_agreement(train_x, train_y, test_x, test_y, *, k: int = 10,
                  chunk: int = 512) -> float:
    """Mean fraction of each test point's ``k`` nearest training points (Euclidean) that share
    its label: 1 when neighbourhoods are pure, about ``Σ_c p_c²`` for unrelated features.

    Args:
      train_x: ``[N, D]``; train_y: ``[N]`` labels (any comparable values).
      test_x: ``[M, D]``; test_y: ``[M]``.
      k: ``1 <= k <= N``. Ties in distance go to the lower training index.
      chunk: test rows per distance block (memory ``chunk × N``).
    """
    train_x, test_x = _matrix(train_x, "train_x"), _matrix(test_x, "test_x")
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    if train_y.shape != (train_x.shape[0],) or test_y.shape != (test_x.shape[0],):
        raise ValueError(f"train_y and test_y must be [N] and [M]; got {train_y.shape} for "
                         f"train_x {train_x.shape} and {test_y.shape} for test_x "
                         f"{test_x.shape}")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train_x and test_x must have the same D; got {train_x.shape[1]} and "
                         f"{test_x.shape[1]}")
    if not 1 <= k <= train_x.shape[0]:
        raise ValueError(f"k must lie in [1, {train_x.shape[0]}]; got {k}")
    sq_train = (train_x ** 2).sum(1)
    agree = []
    for s in range(0, test_x.shape[0], chunk):
        q = test_x[s:s + chunk]
        d2 = (q ** 2).sum(1)[:, None] + sq_train[None, :] - 2.0 * q @ train_x.T
        nearest = np.argsort(d2, axis=1, kind="stable")[:, :k]
        agree.append((train_y[nearest] == test_y[s:s + chunk, None]).mean(1))
    return float(np.concatenate(agree).mean()) if agree else float("nan")


@dataclasses.dataclass(frozen=True)
class PCAResult:
    """``projected [N, k]`` scores, ``components [k, D]`` (orthonormal rows),
    ``explained_variance_ratio [k]`` and the ``mean [D]`` that was subtracted."""

    projected: np.ndarray
    components: np.ndarray
    explained_variance_ratio: np.ndarray
    mean: np.ndarray


def pca(x, num_components: int = 2) -> PCAResult:
    """Principal components of ``x [N, D]`` by the SVD of the centred data (float64). Each
    component's sign is fixed so that its largest-magnitude loading is positive."""
    x = _matrix(x, "x")
    n, d = x.shape
    if not 1 <= num_components <= min(n, d):
        raise ValueError(f"num_components must lie in [1, min(N, D) = {min(n, d)}]; got "
                         f"{num_components}")
    mean = x.mean(0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    comps = vt[:num_components]
    flip = np.sign(comps[np.arange(num_components), np.abs(comps).argmax(1)])
    comps = comps * flip[:, None]
    var = s ** 2
    total = var.sum()
    ratio = var[:num_components] / total if total > 0 else np.zeros(num_components)
    return PCAResult((x - mean) @ comps.T, comps, ratio, mean)


def tsne(x, *, perplexity: float = 30.0, seed: int = 0, num_components: int = 2) -> np.ndarray:
    """t-SNE embedding (van der Maaten & Hinton, 2008) of ``x [N, D]`` by scikit-learn's
    ``TSNE`` (Barnes-Hut gradients, PCA initialisation), returned as
    ``[N, num_components]`` float64. Distances in the result are only meaningful locally:
    neighbourhoods are kept, the sizes of and gaps between clusters are not.

    Args:
      perplexity: the effective number of neighbours, ``0 < perplexity < N``.
      seed: the optimiser's random state (the result is deterministic for a seed).
      num_components: 2 or 3 (Barnes-Hut).
    """
    from sklearn.manifold import TSNE

    x = _matrix(x, "x")
    n = x.shape[0]
    if isinstance(perplexity, bool) or not isinstance(perplexity, (int, float)) or not (
            0 < perplexity < n):
        raise ValueError(f"perplexity must be a number in (0, N = {n}); got {perplexity!r}")
    if num_components not in (2, 3):
        raise ValueError(f"num_components must be 2 or 3; got {num_components!r}")
    return TSNE(num_components, perplexity=float(perplexity), init="pca",
                random_state=int(seed)).fit_transform(x).astype(np.float64)
