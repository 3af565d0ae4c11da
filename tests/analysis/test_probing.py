"""Linear probes: known answers on toy features, pooling, and the per-layer pipeline."""
import jax.numpy as jnp
import numpy as np
import pytest
from tests.analysis.analysis_testing import random_variables

from vai_jax.analysis.plain_cnn import PlainCNN
from vai_jax.analysis.probing import (extract_features, pool_grid, pool_to_length, probe_layers,
                                      probe_table, train_linear_probe)


def _toy(n, d, k, seed, *, separable):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    x = rng.normal(size=(n, d)).astype(np.float32)
    if separable:
        means = np.random.default_rng(99).normal(size=(k, d)) * 3.0
        x += means[y]
    return x, y


def test_separable_features_give_full_accuracy():
    xtr, ytr = _toy(300, 16, 4, 0, separable=True)
    xte, yte = _toy(200, 16, 4, 1, separable=True)
    res = train_linear_probe(xtr, ytr, xte, yte, num_classes=4, steps=200)
    assert res.train_accuracy == 1.0 and res.test_accuracy >= 0.99 and res.dim == 16


def test_random_labels_give_chance_on_test():
    xtr, ytr = _toy(400, 8, 4, 2, separable=False)
    xte, yte = _toy(2000, 8, 4, 3, separable=False)
    res = train_linear_probe(xtr, ytr, xte, yte, num_classes=4, steps=200)
    # 2000 test examples: the std of a chance accuracy is ~0.01.
    assert abs(res.test_accuracy - 0.25) < 0.05


def test_pooling_to_fixed_length():
    assert pool_grid(64, 8, 8, 1024) == 4
    assert pool_grid(512, 8, 8, 1024) == 1
    assert pool_grid(4, 3, 5, 1024) == 3  # clipped to the map
    x = jnp.arange(2 * 4 * 4 * 2, dtype=jnp.float32).reshape(2, 4, 4, 2)
    out = pool_to_length(x, 8)  # g = 2: 2x2 average pooling
    ref = np.asarray(x).reshape(2, 2, 2, 2, 2, 2).mean(axis=(2, 4)).reshape(2, -1)
    np.testing.assert_allclose(np.asarray(out), ref)


def test_probe_layers_on_a_network():
    model = PlainCNN(widths=(4, 8), pool_after=(1,), num_classes=2)
    v = random_variables(model, (1, 8, 8, 3))
    rng = np.random.default_rng(0)
    # Class 1 images are bright in their left half: linearly decodable from any layer.
    y = rng.integers(0, 2, 96)
    x = rng.normal(size=(96, 8, 8, 3)).astype(np.float32) * 0.3
    x[y == 1, :, :4] += 2.0
    res = probe_layers(model, v, ["conv1", "conv2"], x[:64], y[:64], x[64:], y[64:],
                       num_classes=2, target_dim=64, steps=150, batch_size=40, train=False)
    assert set(res) == {"conv1", "conv2"}
    assert res["conv1"].dim == 4 * 4 * 4 and res["conv2"].dim == 8 * 3 * 3
    assert res["conv1"].test_accuracy >= 0.9 and res["conv2"].test_accuracy >= 0.9
    table = probe_table({"random": res})
    assert table.splitlines()[0] == "| network | conv1 | conv2 |"
    assert "| feature dim | 64 | 72 |" in table
    feats = extract_features(model, v, x[:5], ["conv2"], target_dim=64, train=False)
    assert feats["conv2"].shape == (5, 72)
    with pytest.raises(ValueError, match="no layer named 'stage9'"):
        extract_features(model, v, x[:5], ["stage9"], train=False)


def test_probe_bad_labels():
    x = np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError, match=r"train_y must be in \[0, 3\)"):
        train_linear_probe(x, [0, 1, 2, 3], x, [0, 0, 0, 0], num_classes=3)
