"""Tests for vai_jax.pose.losses against hand-computed values and closed forms."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vai_jax.pose import losses as pl
from vai_jax.ops.keypoints import gaussian_heatmaps, soft_argmax

PRED = np.array([[[1.0, 2.0], [5.0, 5.0], [0.0, 0.0]]], np.float32)
TGT = np.array([[[2.0, 4.0, 2], [5.0, 1.0, 1], [9.0, 9.0, 0]]], np.float32)
W = np.array([[1.0, 1.0, 0.0]], np.float32)


def test_coordinate_l1_and_l2_hand_computed():
    # keypoint 0: |dx|=1, |dy|=2; keypoint 1: 0, 4; keypoint 2 weighted out.
    np.testing.assert_allclose(np.asarray(pl.coordinate_l1(PRED, TGT, W)), [(3 + 4) / 2])
    np.testing.assert_allclose(np.asarray(pl.coordinate_l2(PRED, TGT, W)),
                               [(0.5 * (1 + 4) + 0.5 * 16) / 2])
    w2 = np.array([[2.0, 1.0, 0.0]], np.float32)
    np.testing.assert_allclose(np.asarray(pl.coordinate_l1(PRED, TGT[..., :2], w2)),
                               [(2 * 3 + 4) / 3])


def test_all_invisible_gives_zero_loss_and_zero_gradient():
    w = np.zeros((1, 3), np.float32)
    for fn in (pl.coordinate_l1, pl.coordinate_l2):
        assert float(fn(PRED, TGT, w)[0]) == 0.0
        g = jax.grad(lambda p: fn(p, TGT, w).sum())(jnp.asarray(PRED))
        assert np.all(np.asarray(g) == 0)
    ls = jnp.full((1, 3, 2), -80.0)  # tiny sigma: masked keypoints must not leak inf/NaN
    val = pl.gaussian_nll_loss(PRED, ls, TGT, w)
    assert float(val[0]) == 0.0
    g = jax.grad(lambda m: pl.gaussian_nll_loss(m, ls, TGT, w).sum())(jnp.asarray(PRED))
    assert np.all(np.isfinite(np.asarray(g)))


def test_heatmap_mse_respects_weights():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(2, 3, 4, 2)).astype(np.float32)
    t = rng.normal(size=(2, 3, 4, 2)).astype(np.float32)
    w = np.array([[1.0, 0.0], [1.0, 1.0]], np.float32)
    got = np.asarray(pl.heatmap_mse(p, t, w))
    per = ((p.astype(np.float64) - t) ** 2).mean(axis=(1, 2))  # [B, K]
    np.testing.assert_allclose(got, [per[0, 0], per[1].mean()], rtol=1e-5)
    with pytest.raises(ValueError, match="weights"):
        pl.heatmap_mse(p, t, w[:, :1])


def test_integral_l1_is_l1_of_scaled_soft_argmax():
    kp = np.array([[[10.0, 6.0, 2], [3.0, 13.0, 2]]], np.float32)
    hm = jax.random.normal(jax.random.key(0), (1, 4, 5, 2))
    got = pl.integral_l1(hm, kp, np.ones((1, 2)), stride=4, beta=2.0)
    coords = np.asarray(soft_argmax(hm, beta=2.0)) * 4
    np.testing.assert_allclose(np.asarray(got), [np.abs(coords - kp[..., :2]).sum(-1).mean()],
                               rtol=1e-5)
    # Peaked logits at the target give (almost) zero loss; gradients are finite.
    target_maps = gaussian_heatmaps(np.array([[[10.0, 6.0, 2], [6.0, 10.0, 2]]]), (4, 5),
                                    sigma=0.3, stride=4)
    assert float(pl.integral_l1(target_maps * 200, np.array([[[10.0, 6.0], [6.0, 10.0]]]),
                                np.ones((1, 2)), stride=4)[0]) < 0.05
    g = jax.grad(lambda h: pl.integral_l1(h, kp, np.ones((1, 2)), stride=4).sum())(hm)
    assert np.all(np.isfinite(np.asarray(g))) and float(jnp.abs(g).sum()) > 0


def test_gaussian_nll_loss_matches_formula_and_gradient():
    rng = np.random.default_rng(1)
    mean = rng.normal(size=(2, 3, 2)).astype(np.float32)
    ls = rng.normal(size=(2, 3, 2)).astype(np.float32) * 0.3
    tgt = rng.normal(size=(2, 3, 2)).astype(np.float32)
    w = np.array([[1, 1, 1], [1, 0, 1]], np.float32)
    got = np.asarray(pl.gaussian_nll_loss(mean, ls, tgt, w))
    s = np.exp(ls.astype(np.float64))
    per = (np.log(s) + 0.5 * np.log(2 * np.pi) + (tgt - mean) ** 2 / (2 * s * s)).sum(-1)
    np.testing.assert_allclose(got, (per * w).sum(-1) / w.sum(-1), rtol=1e-5)
    # d/d log σ = 1 − (y − μ)²/σ² per coordinate: zero when σ equals the absolute error.
    ls_opt = np.log(np.abs(tgt - mean) + 0.0)
    g = jax.grad(lambda l: pl.gaussian_nll_loss(mean, l, tgt, w).sum())(jnp.asarray(ls_opt))
    np.testing.assert_allclose(np.asarray(g), 0.0, atol=1e-4)


def test_paf_mse():
    p = np.ones((1, 2, 2, 1, 2), np.float32)
    t = np.zeros((1, 2, 2, 1, 2), np.float32)
    np.testing.assert_allclose(np.asarray(pl.paf_mse(p, t)), [1.0])  # ½ (1 + 1) per cell
    w = np.zeros((1, 2, 2, 1), np.float32).copy()
    w[0, 0, 0, 0] = 1.0
    t2 = t.copy()
    t2[0, 1, 1] = 1.0
    np.testing.assert_allclose(np.asarray(pl.paf_mse(p, t2, w)), [1.0])
    assert float(pl.paf_mse(p, t, np.zeros_like(w))[0]) == 0.0


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="predictions"):
        pl.coordinate_l1(PRED[:, :2], TGT, W)
    with pytest.raises(ValueError, match="predictions"):
        pl.coordinate_l1(PRED[..., :1], TGT, W)


def test_train_step_losses_read_outputs_and_batch():
    batch = {"keypoints": TGT, "weights": W}
    out = {"coords": PRED, "log_std": np.zeros((1, 3, 2), np.float32)}
    np.testing.assert_array_equal(np.asarray(pl.coordinate_loss(out, batch)),
                                  np.asarray(pl.coordinate_l1(PRED, TGT, W)))
    np.testing.assert_array_equal(np.asarray(pl.density_loss(out, batch)),
                                  np.asarray(pl.gaussian_nll_loss(PRED, out["log_std"], TGT, W)))
    # Without "weights" the visibility v > 0 weighs the keypoints: here [1, 1, 0] == W.
    np.testing.assert_array_equal(np.asarray(pl.coordinate_loss(out, {"keypoints": TGT})),
                                  np.asarray(pl.coordinate_l1(PRED, TGT, W)))
    hm = jax.random.normal(jax.random.key(0), (1, 4, 5, 3))
    np.testing.assert_array_equal(
        np.asarray(pl.integral_loss({"heatmaps": hm}, batch, stride=4, beta=2.0)),
        np.asarray(pl.integral_l1(hm, TGT, W, stride=4, beta=2.0)))


def test_heatmap_loss_is_mse_to_gaussian_targets():
    kp = np.array([[[6.0, 2.0, 2], [30.0, 2.0, 2], [3.0, 3.0, 0]]], np.float32)  # 2nd outside
    target = gaussian_heatmaps(kp, (4, 5), sigma=1.0, stride=4)
    assert float(pl.heatmap_loss({"heatmaps": target}, {"keypoints": kp}, stride=4,
                                 sigma=1.0)[0]) == 0.0
    zeros = jnp.zeros((1, 4, 5, 3))
    got = pl.heatmap_loss({"heatmaps": zeros}, {"keypoints": kp}, stride=4, sigma=1.0)
    # Only keypoint 0 is labelled and inside the 20x16-pixel map.
    np.testing.assert_allclose(np.asarray(got), [np.mean(np.asarray(target)[0, ..., 0] ** 2)],
                               rtol=1e-6)


def test_paf_loss_is_zero_on_its_targets_and_weighs_the_fields():
    from vai_jax.pose.targets import multi_instance_targets

    skeleton = np.array([[0, 1]], np.int32)
    kp = np.array([[[[2.0, 2.0, 2], [12.0, 6.0, 2]], [[0, 0, 0], [0, 0, 0]]]], np.float32)
    hm, pafs = multi_instance_targets(kp, skeleton, (4, 8), stride=2, sigma=1.0, paf_sigma=1.0)
    opts = dict(skeleton=skeleton, stride=2, sigma=1.0, paf_sigma=1.0)
    assert float(pl.paf_loss({"heatmaps": hm, "pafs": pafs}, {"keypoints": kp}, **opts)[0]) == 0
    zero_fields = {"heatmaps": hm, "pafs": jnp.zeros_like(pafs)}
    one = pl.paf_loss(zero_fields, {"keypoints": kp}, **opts)
    three = pl.paf_loss(zero_fields, {"keypoints": kp}, paf_weight=3.0, **opts)
    np.testing.assert_allclose(np.asarray(one), np.asarray(pl.paf_mse(zero_fields["pafs"], pafs)))
    np.testing.assert_allclose(np.asarray(three), 3 * np.asarray(one), rtol=1e-6)
    assert float(one[0]) > 0
