"""k-means weight sharing: codebook sizes, distinct values, k-means optimality, bytes."""
import numpy as np
import pytest
from tests.analysis.analysis_testing import random_variables

from vai_jax.analysis.plain_cnn import PlainCNN
from vai_jax.analysis.quantization import kmeans_1d, model_size_bytes, quantise_params


def test_kmeans_recovers_well_separated_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([-2.0, 0.5, 3.0])
    x = np.concatenate([c + 0.01 * rng.normal(size=200) for c in centres])
    codebook, idx = kmeans_1d(x, 3)
    np.testing.assert_allclose(codebook, centres, atol=0.01)
    assert np.all(idx == np.repeat([0, 1, 2], 200))
    # Lloyd's fixed point: each centroid is the mean of its members, each value is nearest
    # to its own centroid.
    y = rng.normal(size=1000)
    codebook, idx = kmeans_1d(y, 8)
    for c in range(len(codebook)):
        assert codebook[c] == pytest.approx(y[idx == c].mean(), abs=1e-5)
    nearest = np.argmin(np.abs(y[:, None] - codebook[None]), axis=1)
    assert np.all(nearest == idx)
    # Fewer distinct values than clusters: no empty clusters.
    codebook, idx = kmeans_1d(np.array([1.0, 1.0, 2.0]), 16)
    assert codebook.tolist() == [1.0, 2.0]


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_quantised_params_use_at_most_2_to_the_bits_values(bits):
    model = PlainCNN(widths=(8, 16), pool_after=(1,), num_classes=5)
    v = random_variables(model, (1, 8, 8, 3), bias_std=0.1)
    qparams, layers = quantise_params(v["params"], bits)
    assert set(layers) == {"conv1/conv/kernel", "conv2/conv/kernel", "fc/kernel"}
    for path, q in layers.items():
        assert q.codebook.size <= 2 ** bits
        node = qparams
        for part in path.split("/"):
            node = node[part]
        assert np.unique(node).size <= 2 ** bits
        np.testing.assert_array_equal(node, q.codebook[q.indices])
    # Non-kernel leaves are untouched.
    np.testing.assert_array_equal(qparams["fc"]["bias"], np.asarray(v["params"]["fc"]["bias"]))
    # Size: indices at `bits` each, float32 codebooks, everything else float32.
    n_kernel = 3 * 3 * 3 * 8 + 3 * 3 * 8 * 16 + 16 * 5
    n_total = sum(np.size(a) for a in __import__("jax").tree.leaves(v))
    sizes = model_size_bytes(v, layers)
    assert sizes["indices"] == sum(-(-bits * q.indices.size // 8) for q in layers.values())
    assert sizes["codebooks"] == 4 * sum(q.codebook.size for q in layers.values())
    assert sizes["float"] == 4 * (n_total - n_kernel)
    assert model_size_bytes(v)["total"] == 4 * n_total


def test_more_bits_means_smaller_error():
    rng = np.random.default_rng(1)
    params = {"dense": {"kernel": rng.normal(size=(64, 32)).astype(np.float32)}}
    errs = [np.abs(quantise_params(params, b)[0]["dense"]["kernel"] - params["dense"]["kernel"]
                   ).mean() for b in (1, 2, 4, 8)]
    assert errs == sorted(errs, reverse=True) and errs[-1] < 0.01


def test_bad_bits():
    params = {"dense": {"kernel": np.ones((2, 2), np.float32)}}
    for bad in (0, -3):
        with pytest.raises(ValueError, match="bits must be >= 1"):
            quantise_params(params, bad)
    with pytest.raises(TypeError, match="bits must be an int"):
        quantise_params(params, 2.5)
