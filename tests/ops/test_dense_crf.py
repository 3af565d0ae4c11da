"""Dense CRF mean field against float64 NumPy loops, and the bilateral grid against the exact
kernel."""
import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

# `vai_jax.ops.dense_crf` is also the function re-exported by `vai_jax.ops`; take the module.
dc = importlib.import_module("vai_jax.ops.dense_crf")


def _np_kernel_sum(q, image, sigmas):
    """Σ_j exp(−Σ_d (f_i,d − f_j,d)² / 2σ_d²) q_j by a double loop over pixels, in float64.
    ``sigmas = (position_sigma, colour_sigma or None)``; None gives the spatial kernel."""
    q = np.asarray(q, np.float64)
    _, h, w, _ = q.shape
    out = np.zeros_like(q)
    pos_sigma, col_sigma = sigmas
    for b in range(q.shape[0]):
        for i in range(h * w):
            yi, xi = divmod(i, w)
            for j in range(h * w):
                yj, xj = divmod(j, w)
                e = ((yi - yj) ** 2 + (xi - xj) ** 2) / (2 * pos_sigma ** 2)
                if col_sigma is not None:
                    diff = np.asarray(image[b, yi, xi], np.float64) - image[b, yj, xj]
                    e += np.sum(diff ** 2) / (2 * col_sigma ** 2)
                out[b, yi, xi] += np.exp(-e) * q[b, yj, xj]
    return out


def _np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _np_mean_field(logits, image, iterations, spatial_sigma, bilateral_sigmas, weights, compat):
    logits = np.asarray(logits, np.float64)
    current = logits
    for _ in range(iterations):
        q = _np_softmax(current)
        m = (weights[0] * (_np_kernel_sum(q, image, (spatial_sigma, None)) - q)
             + weights[1] * (_np_kernel_sum(q, image, bilateral_sigmas) - q))
        current = logits - np.einsum("bhwc,lc->bhwl", m, compat)
    return current


def _rand(shape, seed, scale=1.0, low=None):
    rng = np.random.default_rng(seed)
    if low is not None:
        return rng.uniform(low, scale, shape).astype(np.float32)
    return rng.normal(0, scale, shape).astype(np.float32)


def _regions(seed, h=24, w=20, noise=8.0):
    """Four flat colour regions plus Gaussian noise, in 0..255, and the region labels."""
    img = np.zeros((1, h, w, 3), np.float32)
    truth = np.zeros((h, w), int)
    truth[: h // 2, w // 2:], truth[h // 2:, : w // 2], truth[h // 2:, w // 2:] = 1, 2, 3
    colours = np.array([[200, 40, 40], [40, 180, 60], [30, 60, 210], [230, 220, 90]])
    img[0] = colours[truth] + np.random.default_rng(seed).normal(0, noise, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.float32), truth


def test_filters_match_double_loop():
    q = _rand((2, 4, 5, 2), 0)
    image = _rand((2, 4, 5, 3), 1, 255.0, low=0.0)
    np.testing.assert_allclose(dc.spatial_filter(q, 1.5), _np_kernel_sum(q, image, (1.5, None)),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dc.bilateral_filter(q, image, 2.0, 60.0),
                               _np_kernel_sum(q, image, (2.0, 60.0)), rtol=1e-5, atol=1e-5)
    grey = image[..., :1]
    np.testing.assert_allclose(dc.bilateral_filter(q, grey, 3.0, 40.0),
                               _np_kernel_sum(q, grey, (3.0, 40.0)), rtol=1e-5, atol=1e-5)


def test_exact_filter_in_blocks(monkeypatch):
    monkeypatch.setattr(dc, "_BLOCK_ELEMENTS", 7 * 20 * 5)  # 7 rows a block, last one padded
    q, image = _rand((1, 4, 5, 2), 2), _rand((1, 4, 5, 3), 3, 255.0, low=0.0)
    np.testing.assert_allclose(dc.bilateral_filter(q, image, 2.0, 60.0),
                               _np_kernel_sum(q, image, (2.0, 60.0)), rtol=1e-5, atol=1e-5)


def test_mean_field_matches_numpy():
    logits = _rand((1, 3, 4, 3), 4, 2.0)
    image = _rand((1, 3, 4, 3), 5, 255.0, low=0.0)
    compat = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 0.5], [1.5, 0.3, 0.0]], np.float32)
    got = dc.dense_crf(logits, image, iterations=3, spatial_sigma=1.0,
                       bilateral_sigmas=(2.0, 80.0), weights=(0.7, 1.3), compatibility=compat)
    ref = _np_mean_field(logits, image, 3, 1.0, (2.0, 80.0), (0.7, 1.3), compat)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_zero_weights_and_zero_iterations_keep_the_unary():
    logits, image = _rand((2, 5, 6, 3), 6), _rand((2, 5, 6, 3), 7, 255.0, low=0.0)
    assert dc.dense_crf(logits, image, iterations=0) is logits
    for method in ("exact", "grid"):
        out = dc.dense_crf(logits, image, weights=(0.0, 0.0), method=method)
        np.testing.assert_allclose(jax.nn.softmax(out), _np_softmax(logits), atol=1e-6)


@pytest.mark.parametrize("method", ["exact", "grid"])
def test_crf_raises_pixel_accuracy(method):
    image, truth = _regions(0, 16, 14)
    rng = np.random.default_rng(8)
    logits = (2.0 * np.eye(4)[truth] + rng.normal(0, 1.5, truth.shape + (4,)))[None]
    before = np.mean(logits[0].argmax(-1) == truth)
    out = dc.dense_crf(logits.astype(np.float32), image, method=method)
    after = np.mean(np.asarray(out[0]).argmax(-1) == truth)
    assert before < 0.75 and after > 0.98


def _relative_error(seed, cells):
    image, _ = _regions(seed)
    q = jax.nn.softmax(jnp.asarray(_rand((1, 24, 20, 4), seed + 10, 2.0)))
    exact = dc.bilateral_filter(q, image, 30.0, 13.0)
    grid = dc.bilateral_filter(q, image, 30.0, 13.0, method="grid", grid_cells_per_sigma=cells)
    err = np.linalg.norm(np.asarray(grid - exact), axis=-1)  # per pixel
    norm = np.linalg.norm(np.asarray(exact), axis=-1)
    return np.sqrt(np.sum(err ** 2) / np.sum(norm ** 2)), np.max(err / norm)


@pytest.mark.parametrize("cells,bound", [(1.5, 0.045), (1.0, 0.15)])
def test_grid_filter_error_bound(cells, bound):
    # Measured (seeds 0-2): 1.5 cells per sigma 3.6-3.9 % (worst pixel 13 %), 1 cell per
    # sigma 12-13 % (worst pixel 47 %).
    for seed in (0, 1):
        rel, worst = _relative_error(seed, cells)
        assert rel < bound and worst < 4 * bound


def test_grid_mean_field_agrees_with_exact():
    image, truth = _regions(1, noise=30.0)
    rng = np.random.default_rng(9)
    logits = (1.0 * np.eye(4)[truth] + rng.normal(0, 1.5, truth.shape + (4,)))[None]
    logits = logits.astype(np.float32)
    exact = np.asarray(dc.dense_crf(logits, image)).argmax(-1)
    grid = np.asarray(dc.dense_crf(logits, image, method="grid")).argmax(-1)
    assert np.mean(exact == grid) > 0.98  # measured: 99.6 %
    assert np.mean(exact == logits.argmax(-1)) < 0.6  # the CRF changed many labels


def test_gradients():
    logits = jnp.asarray(_rand((1, 3, 3, 2), 10))
    image = jnp.asarray(_rand((1, 3, 3, 3), 11, 255.0, low=0.0))
    compat = jnp.asarray(1.0 - np.eye(2, dtype=np.float32))

    def f(lg, ws, wb, mu, method="exact"):
        return dc.dense_crf(lg, image, iterations=2, spatial_sigma=1.0,
                            bilateral_sigmas=(2.0, 60.0), weights=(ws, wb), compatibility=mu,
                            method=method)

    check_grads(jax.jit(f), (logits, 1.0, 2.0, compat), order=1, modes=("rev",), atol=1e-2, rtol=1e-2)
    for method in ("exact", "grid"):
        loss = lambda *a: jnp.sum(jax.nn.log_softmax(f(*a, method=method))[..., 0])  # noqa: E731
        grads = jax.grad(loss, argnums=(0, 1, 2, 3))(logits, 1.0, 2.0, compat)
        assert all(np.all(np.isfinite(g)) for g in grads)
        assert float(jnp.abs(grads[2])) > 0


def test_jit_half_precision_and_batch():
    image, _ = _regions(2, 8, 6)
    image = np.concatenate([image, image[:, ::-1]])
    logits = _rand((2, 8, 6, 3), 12)
    run = functools.partial(dc.dense_crf, iterations=3, method="grid")
    eager = run(logits, image)
    np.testing.assert_allclose(jax.jit(run)(logits, image), eager, rtol=1e-5, atol=1e-5)
    per_image = jax.vmap(lambda lg, im: run(lg[None], im[None])[0])(logits, image)
    np.testing.assert_allclose(per_image, eager, rtol=1e-5, atol=1e-5)
    half = run(jnp.asarray(logits, jnp.bfloat16), image)
    assert half.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(half, np.float32), eager, rtol=1e-2, atol=0.05)


def test_bad_inputs():
    logits, image = _rand((1, 4, 5, 2), 13), _rand((1, 4, 5, 3), 14, 255.0, low=0.0)
    cases = [
        ((logits[0], image), {}, ValueError, r"unary_logits must have rank 4"),
        ((logits, image[0]), {}, ValueError, r"image must have rank 4"),
        ((logits, image[:, :3]), {}, ValueError,
         r"image must match unary_logits in batch and spatial shape"),
        ((logits, np.concatenate([image, image])), {}, ValueError, r"\(B, H, W\) = \(1, 4, 5\)"),
        ((logits, image), {"iterations": -1}, ValueError, r"iterations must be >= 0; got -1"),
        ((logits, image), {"iterations": 2.0}, TypeError, r"iterations must be a Python int"),
        ((logits, image), {"spatial_sigma": 0.0}, ValueError, r"spatial_sigma must be finite"),
        ((logits, image), {"bilateral_sigmas": (30.0, -1.0)}, ValueError,
         r"bilateral_sigmas\[1\] \(colour_sigma\) must be finite and > 0"),
        ((logits, image), {"bilateral_sigmas": (30.0,)}, ValueError, r"bilateral_sigmas must be"),
        ((logits, image), {"weights": (1.0, np.nan)}, ValueError, r"weights\[1\] must be finite"),
        ((logits, image), {"compatibility": np.ones((3, 3), np.float32)}, ValueError,
         r"compatibility must be \[C, C\] with C = 2"),
        ((logits, image), {"method": "lattice"}, ValueError, r"method must be 'exact' or 'grid'"),
        ((logits, image), {"grid_cells_per_sigma": 0.5}, ValueError,
         r"grid_cells_per_sigma must be a number >= 1"),
        ((logits.astype(np.int32), image), {}, TypeError, r"unary_logits must have a floating"),
    ]
    for args, kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            dc.dense_crf(*args, **kwargs)
    with pytest.raises(ValueError, match=r"position_sigma must be finite and > 0"):
        dc.bilateral_filter(logits, image, -2.0, 13.0)


def test_whole_kernel_and_per_iteration_blocks_agree(monkeypatch):
    q, image = _rand((2, 4, 5, 3), 11), _rand((2, 4, 5, 3), 12, 255.0, low=0.0)
    ref = _np_kernel_sum(q, image, (3.0, 50.0))

    def filtered_and_grad():
        apply, self_weight = dc._bilateral_operator(jnp.asarray(image), 3.0, 50.0, "exact", 1.5)
        np.testing.assert_array_equal(self_weight, 1.0)
        return apply(jnp.asarray(q)), jax.grad(lambda x: jnp.sum(apply(x) ** 2))(jnp.asarray(q))

    whole, g_whole = filtered_and_grad()                # [B, N, N] built once (small here)
    monkeypatch.setattr(dc, "_KERNEL_ELEMENTS", 0)      # kernel re-evaluated on every call
    monkeypatch.setattr(dc, "_BLOCK_ELEMENTS", 7 * 20 * 5)
    blocks, g_blocks = filtered_and_grad()
    np.testing.assert_allclose(whole, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(blocks, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(g_blocks, g_whole, rtol=1e-5, atol=1e-5)
