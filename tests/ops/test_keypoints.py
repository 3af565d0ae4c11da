"""Tests for vai_jax.ops.keypoints against float64 NumPy loop references and closed forms."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from vai_jax.ops import keypoints as kpo


def _ref_soft_argmax(hm, beta):
    """float64 loop reference: hm [H, W, K] -> [K, 2]."""
    hm = np.asarray(hm, np.float64)
    height, width, num = hm.shape
    out = np.zeros((num, 2))
    for k in range(num):
        z = beta * hm[:, :, k]
        z = z - z.max()
        e = np.exp(z)
        p = e / e.sum()
        for i in range(height):
            for j in range(width):
                out[k, 0] += (j + 0.5) * p[i, j]
                out[k, 1] += (i + 0.5) * p[i, j]
    return out


def test_spatial_softmax_normalised_and_matches_numpy():
    hm = jax.random.normal(jax.random.key(0), (2, 5, 7, 3)) * 3
    p = kpo.spatial_softmax(hm, beta=2.0)
    chex.assert_shape(p, (2, 5, 7, 3))
    np.testing.assert_allclose(np.asarray(p).sum(axis=(1, 2)), 1.0, rtol=1e-5)
    ref = np.exp(2.0 * np.asarray(hm, np.float64))
    ref /= ref.sum(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(np.asarray(p), ref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("beta", [0.3, 1.0, 5.0])
def test_soft_argmax_matches_loop_reference_any_leading_dims(beta):
    hm = jax.random.normal(jax.random.key(1), (2, 3, 6, 5, 4))
    out = kpo.soft_argmax(hm, beta=beta)
    chex.assert_shape(out, (2, 3, 4, 2))
    for a in range(2):
        for b in range(3):
            np.testing.assert_allclose(np.asarray(out[a, b]), _ref_soft_argmax(hm[a, b], beta),
                                       rtol=1e-5, atol=1e-5)
    chex.assert_trees_all_close(jax.jit(lambda h: kpo.soft_argmax(h, beta=beta))(hm), out,
                                rtol=1e-6, atol=1e-6)


def test_soft_argmax_peak_at_cell_centre():
    hm = jnp.full((1, 6, 8, 1), -1e4).at[0, 2, 5, 0].set(1e4)  # row 2, column 5
    np.testing.assert_allclose(np.asarray(kpo.soft_argmax(hm))[0, 0], [5.5, 2.5])


@pytest.mark.parametrize("beta", [0.5, 2.0])
def test_soft_argmax_jacobian_closed_form(beta):
    hm = jax.random.normal(jax.random.key(2), (4, 5, 2))
    jac = jax.jit(jax.jacobian(lambda h: kpo.soft_argmax(h, beta=beta)))(hm)  # [K, 2, H, W, K']
    p = np.asarray(kpo.spatial_softmax(hm, beta=beta), np.float64)
    coords = np.asarray(kpo.soft_argmax(hm, beta=beta), np.float64)
    expected = np.zeros((2, 2, 4, 5, 2))
    for k in range(2):
        for i in range(4):
            for j in range(5):
                grid = (j + 0.5, i + 0.5)
                for c in range(2):
                    expected[k, c, i, j, k] = beta * p[i, j, k] * (grid[c] - coords[k, c])
    chex.assert_trees_all_close(np.asarray(jac, np.float64), expected, atol=1e-5, rtol=1e-4)


def test_soft_argmax_check_grads():
    hm = jax.random.normal(jax.random.key(3), (1, 3, 4, 2))
    # Under jit: each derivative is one compiled program, not one per operation.
    check_grads(jax.jit(lambda h: kpo.soft_argmax(h, beta=1.5)), (hm,), order=2,
                modes=("fwd", "rev"), atol=2e-2, rtol=2e-2, eps=1e-2)
    check_grads(jax.jit(lambda b: kpo.soft_argmax(hm, beta=b)), (1.5,), order=1, modes=("rev",),
                atol=2e-2, rtol=2e-2, eps=1e-2)


def test_soft_argmax_extreme_logits_and_bfloat16():
    hm = jnp.full((3, 4, 1), -1e4).at[1, 2, 0].set(1e4)
    out = kpo.soft_argmax(hm)
    np.testing.assert_allclose(np.asarray(out)[0], [2.5, 1.5])
    grad = jax.jit(jax.grad(lambda h: kpo.soft_argmax(h).sum()))(hm)
    assert np.all(np.isfinite(np.asarray(grad)))
    hb = jax.random.normal(jax.random.key(4), (2, 5, 6, 3)).astype(jnp.bfloat16) * 100
    outb = kpo.soft_argmax(hb)
    assert outb.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(outb)))
    np.testing.assert_allclose(np.asarray(outb), np.stack(
        [_ref_soft_argmax(np.asarray(hb[b], np.float32), 1.0) for b in range(2)]), atol=1e-4)
    gb = jax.jit(jax.grad(lambda h: kpo.soft_argmax(h).sum()))(hb)
    assert np.all(np.isfinite(np.asarray(gb, np.float32)))


def test_two_maxima_pull_soft_argmax_to_midpoint():
    # The failure mode of the expectation: two equal peaks give their midpoint, a location
    # where the map itself is low.
    hm = jnp.zeros((1, 9, 15, 1)).at[0, 2, 2, 0].set(20.0).at[0, 6, 12, 0].set(20.0)
    out = np.asarray(kpo.soft_argmax(hm))[0, 0]
    np.testing.assert_allclose(out, [(2.5 + 12.5) / 2, (2.5 + 6.5) / 2], atol=1e-4)
    # arg-max picks one of the two peaks instead.
    am, _ = kpo.heatmap_argmax(hm, refine=None)
    assert tuple(np.asarray(am)[0, 0]) in {(2.5, 2.5), (12.5, 6.5)}


@pytest.mark.parametrize("beta", [1e30, 3.4e38, 1e39, 1e300])
def test_soft_argmax_huge_beta_is_the_argmax(beta):
    """A beta past float32's range (1e39) is capped instead of overflowing to inf (0 * inf = NaN)."""
    hm = jax.random.normal(jax.random.key(5), (2, 5, 7, 3)) * 3
    hm = hm.at[1, 0, 0, 2].set(hm[1, 0, 1, 2])  # ties elsewhere do not matter
    out = np.asarray(kpo.soft_argmax(hm, beta=beta))
    want = np.asarray(kpo.heatmap_argmax(hm, refine=None)[0])
    np.testing.assert_array_equal(out, want)
    grad = jax.jit(jax.grad(lambda h: kpo.soft_argmax(h, beta=beta).sum()))(hm)
    assert np.all(np.isfinite(np.asarray(grad)))
    # Under jit beta is not checked: inf (or an overflowed float32) gives the arg-max too.
    traced = jax.jit(lambda h, b: kpo.soft_argmax(h, beta=b))(hm, jnp.float32(jnp.inf))
    np.testing.assert_array_equal(np.asarray(traced), want)


def test_soft_argmax_huge_beta_tied_maxima_give_their_midpoint():
    hm = jnp.zeros((4, 6, 1)).at[1, 1, 0].set(2.0).at[3, 5, 0].set(2.0)
    np.testing.assert_array_equal(np.asarray(kpo.soft_argmax(hm, beta=1e39))[0], [3.5, 2.5])


@pytest.mark.parametrize("bad", [np.zeros((4, 4)), np.zeros((4,))])
def test_wrong_rank_raises(bad):
    with pytest.raises(ValueError, match="heatmaps"):
        kpo.soft_argmax(bad.astype(np.float32))
    with pytest.raises(ValueError, match="heatmaps"):
        kpo.heatmap_argmax(bad.astype(np.float32))


@pytest.mark.parametrize("beta", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_beta_raises(beta):
    with pytest.raises(ValueError, match="beta"):
        kpo.soft_argmax(jnp.zeros((3, 3, 1)), beta=beta)


def test_non_finite_and_integer_heatmaps_raise():
    with pytest.raises(ValueError, match="finite"):
        kpo.soft_argmax(jnp.zeros((3, 3, 1)).at[0, 0, 0].set(jnp.nan))
    with pytest.raises(TypeError, match="heatmaps"):
        kpo.spatial_softmax(np.zeros((3, 3, 1), np.int32))


def _ref_gaussian(kp, shape, sigma, stride):
    height, width = shape
    out = np.zeros((height, width, len(kp)))
    for k, (x, y, v) in enumerate(np.asarray(kp, np.float64)):
        if v <= 0 or not (0 <= x < width * stride and 0 <= y < height * stride):
            continue
        for i in range(height):
            for j in range(width):
                dx, dy = j + 0.5 - x / stride, i + 0.5 - y / stride
                out[i, j, k] = np.exp(-(dx * dx + dy * dy) / (2 * sigma * sigma))
    return out


def test_gaussian_heatmaps_match_loop_reference_with_visibility():
    kp = np.array([[[10.3, 20.7, 2], [30.1, 5.2, 1], [3, 3, 0], [-2.0, 5.0, 2], [31.9, 12, 2]],
                   [[1.0, 1.0, 2], [0, 0, 0], [16, 16, 2], [40, 5, 2], [5, 31.99, 1]]], np.float32)
    hm = kpo.gaussian_heatmaps(kp, (8, 8), sigma=1.3, stride=4)
    chex.assert_shape(hm, (2, 8, 8, 5))
    for b in range(2):
        np.testing.assert_allclose(np.asarray(hm[b]), _ref_gaussian(kp[b], (8, 8), 1.3, 4),
                                   atol=1e-6)
    w = np.asarray(kpo.heatmap_weights(kp, (8, 8), stride=4))
    np.testing.assert_array_equal(w, [[1, 1, 0, 0, 1], [1, 0, 1, 0, 1]])
    for b, k in zip(*np.nonzero(w == 0)):  # invisible / outside: all-zero maps
        assert np.all(np.asarray(hm)[b, :, :, k] == 0)


def test_gaussian_heatmap_peak_at_keypoint_over_stride():
    # A keypoint exactly on a cell centre gives value 1 there.
    hm = kpo.gaussian_heatmaps(np.array([[4 * 5.5, 4 * 2.5, 2.0]]), (6, 8), sigma=1.0, stride=4)
    assert float(hm[2, 5, 0]) == pytest.approx(1.0)
    assert float(jnp.max(hm)) == pytest.approx(1.0)


def test_gaussian_heatmaps_bad_input():
    with pytest.raises(ValueError, match="keypoints"):
        kpo.gaussian_heatmaps(np.zeros((3, 2)), (4, 4), sigma=1.0, stride=1)
    with pytest.raises(ValueError, match="sigma"):
        kpo.gaussian_heatmaps(np.zeros((3, 3)), (4, 4), sigma=0.0, stride=1)
    with pytest.raises(ValueError, match="stride"):
        kpo.gaussian_heatmaps(np.zeros((3, 3)), (4, 4), sigma=1.0, stride=-2)
    with pytest.raises(ValueError, match="keypoints"):
        kpo.gaussian_heatmaps(np.full((3, 3), np.nan), (4, 4), sigma=1.0, stride=1)


def test_all_invisible_keypoints_give_zero_maps_and_weights():
    kp = np.array([[5.0, 5.0, 0.0], [7.0, 2.0, 0.0]])
    hm = kpo.gaussian_heatmaps(kp, (4, 4), sigma=1.0, stride=2)
    assert np.all(np.asarray(hm) == 0)
    assert np.all(np.asarray(kpo.heatmap_weights(kp, (4, 4), stride=2)) == 0)
    coords, conf = kpo.heatmap_argmax(hm)  # documented: confidence 0, no NaN
    assert np.all(np.isfinite(np.asarray(coords))) and np.all(np.asarray(conf) == 0)


def test_heatmap_argmax_plain_matches_numpy_argmax():
    hm = jax.random.normal(jax.random.key(5), (3, 6, 7, 4))
    coords, conf = kpo.heatmap_argmax(hm, refine=None)
    h = np.asarray(hm)
    for b in range(3):
        for k in range(4):
            i, j = np.unravel_index(np.argmax(h[b, :, :, k]), (6, 7))
            np.testing.assert_allclose(np.asarray(coords[b, k]), [j + 0.5, i + 0.5])
            assert float(conf[b, k]) == pytest.approx(h[b, i, j, k])


def test_subpixel_refinement_beats_plain_argmax():
    rng = np.random.default_rng(0)
    n = 64
    centres = rng.uniform(3.0, 13.0, size=(n, 2))  # heatmap frame, away from the border
    kp = np.concatenate([centres, np.full((n, 1), 2.0)], -1)[:, None, :]  # [n, 1, 3]
    hm = kpo.gaussian_heatmaps(kp, (16, 16), sigma=1.5, stride=1)
    err = {}
    for mode in (None, "quarter", "taylor"):
        coords, _ = kpo.heatmap_argmax(hm, refine=mode)
        err[mode] = np.linalg.norm(np.asarray(coords)[:, 0] - centres, axis=-1)
    assert np.all(err[None] <= np.sqrt(0.5) + 1e-6)  # within the arg-max cell
    assert err["quarter"].mean() < err[None].mean()
    assert err["taylor"].max() < 1e-3  # log of a Gaussian is quadratic: Taylor is exact
    assert err["taylor"].mean() < 0.1 * err[None].mean()


def test_heatmap_argmax_bad_refine():
    with pytest.raises(ValueError, match="refine"):
        kpo.heatmap_argmax(jnp.zeros((3, 3, 1)), refine="cubic")


def test_heatmap_peaks_finds_local_maxima():
    kp = np.array([[[3.5, 2.5, 2]], [[12.5, 9.5, 2]]], np.float32)
    hm = jnp.max(kpo.gaussian_heatmaps(kp, (12, 16), sigma=1.0, stride=1), axis=0)
    coords, scores, valid = kpo.heatmap_peaks(hm[None], max_peaks=4, threshold=0.1)
    chex.assert_shape(coords, (1, 1, 4, 2))
    np.testing.assert_array_equal(np.asarray(valid)[0, 0], [True, True, False, False])
    found = {tuple(c) for c in np.asarray(coords)[0, 0, :2]}
    assert found == {(3.5, 2.5), (12.5, 9.5)}
    assert np.all(np.isneginf(np.asarray(scores)[0, 0, 2:]))


def test_bins_encode_matches_loop_and_round_trips():
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, [64, 48], size=(5, 3, 2)).astype(np.float32)
    labels = np.asarray(kpo.encode_bins(pts, num_bins=16, extent=(64, 48)))
    for idx in np.ndindex(5, 3):
        for axis, (e, v) in enumerate(zip((64, 48), pts[idx])):
            w = e / 16
            b = 0
            while b < 15 and v >= (b + 1) * w:
                b += 1
            assert labels[idx + (axis,)] == b
    logits = jax.nn.one_hot(labels, 16) * 10.0  # [5, 3, 2, 16]
    dec = np.asarray(kpo.decode_bins(logits, extent=(64, 48)))
    assert np.all(np.abs(dec - pts) <= np.array([64, 48]) / 32 + 1e-5)
    np.testing.assert_allclose(dec, (labels + 0.5) * np.array([64, 48]) / 16, rtol=1e-6)


def test_bins_expectation_and_clipping():
    logits = jnp.zeros((2, 4)).at[0, 1].set(50.0).at[0, 2].set(50.0).at[1, 3].set(50.0)
    dec = np.asarray(kpo.decode_bins(logits, extent=8.0, expectation=True))
    np.testing.assert_allclose(dec, [(3.0 + 5.0) / 2, 7.0], atol=1e-4)  # midpoint of two bins
    out = np.asarray(kpo.encode_bins(np.array([[-3.0, 100.0]]), num_bins=4, extent=8))
    np.testing.assert_array_equal(out, [[0, 3]])  # documented: clipped to first/last bin
    with pytest.raises(ValueError, match="extent"):
        kpo.encode_bins(np.zeros((1, 2)), num_bins=4, extent=0)
    with pytest.raises(ValueError, match="logits"):
        kpo.decode_bins(jnp.zeros((3, 4)), extent=8)
