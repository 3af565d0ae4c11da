"""vai_jax.analysis.embeddings against NumPy references: ridge regression (augmented least
squares), R², symmetric-angle targets, k-NN agreement (brute force) and PCA (covariance
eigenvectors)."""
import numpy as np
import pytest

from vai_jax.analysis import embeddings as emb


def _data(n=60, d=5, k=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, d) + rng.normal(size=d)
    w = rng.normal(size=(d, k))
    y = x @ w + 0.5 + 0.1 * rng.normal(size=(n, k))
    return x, y


@pytest.mark.parametrize("n, d", [(50, 6), (8, 20)])  # primal and dual paths
@pytest.mark.parametrize("l2", [0.0, 0.3, 10.0])
def test_fit_ridge_equals_augmented_least_squares(n, d, l2):
    if l2 == 0.0 and d > n:
        pytest.skip("least squares is underdetermined")
    x, y = _data(n, d, 3, seed=n + d)
    w, b = emb.fit_ridge(x, y, l2)
    # Reference: minimise ||[x 1][w; b] − y||² + l2 ||w||² by stacking sqrt(l2)·I rows.
    a = np.vstack([np.hstack([x, np.ones((n, 1))]),
                   np.hstack([np.sqrt(l2) * np.eye(d), np.zeros((d, 1))])])
    rhs = np.vstack([y, np.zeros((d, 3))])
    ref = np.linalg.lstsq(a, rhs, rcond=None)[0]
    np.testing.assert_allclose(w, ref[:d], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(b, ref[d], rtol=1e-7, atol=1e-9)


def test_fit_ridge_one_dimensional_target_and_errors():
    x, y = _data(k=1)
    w, b = emb.fit_ridge(x, y[:, 0], 1.0)
    assert w.shape == (5, 1) and b.shape == (1,)
    with pytest.raises(ValueError, match="l2"):
        emb.fit_ridge(x, y, -1.0)
    with pytest.raises(ValueError, match="y must be"):
        emb.fit_ridge(x, y[:10], 1.0)
    with pytest.raises(ValueError, match="x"):
        emb.fit_ridge(x[0], y, 1.0)


def test_r2_score_by_hand():
    y = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 2.0], [4.0, 5.0]])
    pred = np.array([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0], [5.0, 4.0]])
    # output 0: SS_res = 1, SS_tot = 5; output 1: SS_res = 1 + 0 + 1 + 1 = 3, SS_tot = 14.
    np.testing.assert_allclose(emb.r2_score(y, pred), [1 - 1 / 5, 1 - 3 / 14])
    np.testing.assert_allclose(emb.r2_score(y[:, 0], y[:, 0]), [1.0])
    assert np.isnan(emb.r2_score(np.ones(3), np.zeros(3))[0])
    with pytest.raises(ValueError, match="one shape"):
        emb.r2_score(y, pred[:3])


def test_standardize_uses_train_statistics():
    x, _ = _data()
    a, b = emb.standardize(x[:40], x[40:])
    np.testing.assert_allclose(a.mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(a.std(0), 1.0, rtol=1e-5)
    np.testing.assert_allclose(b, (x[40:] - x[:40].mean(0)) / (x[:40].std(0) + 1e-6))
    with pytest.raises(ValueError, match="columns"):
        emb.standardize(x, x[:, :2])


def test_ridge_decode_recovers_a_linear_target_and_not_noise():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 8))
    y = np.stack([x[:, 0] - 2 * x[:, 3], rng.normal(size=400)], -1)
    res = emb.ridge_decode(x[:300], y[:300], x[300:], y[300:])
    assert res.r2_per_output[0] > 0.99 and res.r2_per_output[1] < 0.05
    assert res.r2 == pytest.approx(res.r2_per_output.mean())
    assert res.dim == 8 and res.predictions.shape == (100, 2)
    # The refit model on standardised features equals fit_ridge on them with the chosen l2.
    xtr, xte = emb.standardize(x[:300], x[300:])
    w, b = emb.fit_ridge(xtr, y[:300], res.l2)
    np.testing.assert_allclose(res.predictions, xte @ w + b, rtol=1e-10)
    with pytest.raises(ValueError, match="val_fraction"):
        emb.ridge_decode(x[:300], y[:300], x[300:], y[300:], val_fraction=1.0)
    with pytest.raises(ValueError, match="outputs"):
        emb.ridge_decode(x[:300], y[:300], x[300:], y[300:, 0])


def test_symmetric_angles_round_trip_and_error():
    order = np.array([4, 3, 5, 2, 4])
    theta = np.array([0.5, -0.7, 0.4, 1.2, -0.1])
    t = emb.symmetric_angle_targets(theta, order)
    np.testing.assert_allclose(t, np.stack([np.cos(order * theta), np.sin(order * theta)], -1))
    np.testing.assert_allclose(emb.angle_from_targets(t, order), theta, atol=1e-12)
    # A square turned by a quarter turn is the same square.
    np.testing.assert_allclose(emb.angular_error(0.1 + np.pi / 2, 0.1, 4), 0.0, atol=1e-12)
    np.testing.assert_allclose(emb.angular_error(0.3, -0.2, 4), 0.5, atol=1e-12)
    np.testing.assert_allclose(emb.angular_error(np.pi / 4, 0.0, 4), np.pi / 4, atol=1e-12)
    with pytest.raises(ValueError, match="order"):
        emb.symmetric_angle_targets(theta, 0)


def test_knn_agreement_against_brute_force():
    rng = np.random.default_rng(2)
    train_x, test_x = rng.normal(size=(70, 4)), rng.normal(size=(25, 4))
    train_y, test_y = rng.integers(0, 3, 70), rng.integers(0, 3, 25)
    for k in (1, 5, 70):
        ref = []
        for q, label in zip(test_x, test_y):
            d = ((train_x - q) ** 2).sum(1)
            ref.append((train_y[np.argsort(d, kind="stable")[:k]] == label).mean())
        got = emb.knn_agreement(train_x, train_y, test_x, test_y, k=k, chunk=7)
        assert got == pytest.approx(np.mean(ref), abs=1e-12)
    # Pure clusters agree fully.
    centres = np.array([[0.0, 0.0], [100.0, 0.0]])
    xs = np.repeat(centres, 10, 0) + rng.normal(size=(20, 2))
    ys = np.repeat([0, 1], 10)
    assert emb.knn_agreement(xs, ys, xs + 0.01, ys, k=5) == 1.0
    with pytest.raises(ValueError, match="k must"):
        emb.knn_agreement(train_x, train_y, test_x, test_y, k=71)
    with pytest.raises(ValueError, match="same D"):
        emb.knn_agreement(train_x, train_y, test_x[:, :2], test_y)


def test_pca_against_covariance_eigenvectors():
    x, _ = _data(n=80, d=6)
    res = emb.pca(x, 3)
    cov = np.cov(x, rowvar=False)
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1]
    vals, vecs = vals[order], vecs[:, order]
    for i in range(3):
        np.testing.assert_allclose(np.abs(res.components[i] @ vecs[:, i]), 1.0, atol=1e-8)
        assert res.components[i][np.abs(res.components[i]).argmax()] > 0
    np.testing.assert_allclose(res.explained_variance_ratio, vals[:3] / vals.sum(), rtol=1e-8)
    np.testing.assert_allclose(res.projected, (x - x.mean(0)) @ res.components.T, rtol=1e-10)
    np.testing.assert_allclose(res.components @ res.components.T, np.eye(3), atol=1e-10)
    np.testing.assert_allclose(res.projected.var(0, ddof=1), vals[:3], rtol=1e-8)
    with pytest.raises(ValueError, match="num_components"):
        emb.pca(x, 7)


def test_tsne_keeps_clusters_apart_and_is_deterministic():
    rng = np.random.default_rng(0)
    centres = rng.normal(0.0, 10.0, (3, 20))
    labels = np.repeat(np.arange(3), 30)
    x = centres[labels] + rng.normal(0.0, 1.0, (90, 20))
    y = emb.tsne(x, perplexity=10, seed=1)
    assert y.shape == (90, 2) and y.dtype == np.float64
    # Every point's 5 nearest neighbours in the 2-D map share its cluster.
    d = np.linalg.norm(y[:, None] - y[None], axis=-1) + np.eye(90) * 1e9
    nearest = np.argsort(d, axis=1)[:, :5]
    assert np.all(labels[nearest] == labels[:, None])
    np.testing.assert_array_equal(emb.tsne(x, perplexity=10, seed=1), y)


@pytest.mark.parametrize("kw", [dict(perplexity=0), dict(perplexity=90), dict(perplexity="5"),
                                dict(num_components=4)])
def test_tsne_bad_arguments(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        emb.tsne(np.zeros((90, 3)), **kw)
