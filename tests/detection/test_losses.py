"""Detection losses against NumPy formulas; padding (zero weight) never changes a loss."""
import jax
import jax.numpy as jnp
import numpy as np

from vai_jax.detection import losses as L


def test_smooth_l1_formula_and_gradient():
    d = np.linspace(-3, 3, 61).astype(np.float32)
    beta = 1.0 / 9
    ref = np.where(np.abs(d) < beta, 0.5 * d.astype(np.float64) ** 2 / beta, np.abs(d) - 0.5 * beta)
    np.testing.assert_allclose(np.asarray(L.smooth_l1(d, 0.0, beta=beta)), ref, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(L.smooth_l1(d, 0.0, beta=0.0)), np.abs(d), rtol=1e-6)
    g = jax.grad(lambda x: jnp.sum(L.smooth_l1(x, 0.0, beta=1.0)))(jnp.asarray(d))
    np.testing.assert_allclose(np.asarray(g), np.clip(d, -1, 1), atol=1e-6)


def test_hinge_and_softmax_match_numpy():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(2, 5, 4)).astype(np.float32)
    lab = rng.integers(0, 4, (2, 5)).astype(np.int32)
    w = (rng.uniform(size=(2, 5)) > 0.3).astype(np.float32)
    y = np.where(np.eye(4)[lab] > 0, 1.0, -1.0)
    per = np.maximum(0, 1 - y * s).sum(-1)
    ref = (per * w).sum(-1) / np.maximum(w.sum(-1), 1)
    np.testing.assert_allclose(np.asarray(L.one_vs_rest_hinge_loss(s, lab, w)), ref, rtol=1e-5)
    logp = s - np.log(np.exp(s.astype(np.float64)).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, lab[..., None], -1)[..., 0]
    np.testing.assert_allclose(np.asarray(L.sampled_softmax_loss(s, lab, w)),
                               (nll * w).sum(-1) / np.maximum(w.sum(-1), 1), rtol=1e-5)


def test_mask_loss_uses_the_rois_class_channel_only():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(1, 3, 4, 4, 3)).astype(np.float32)
    labels = np.array([[1, 2, 0]], np.int32)
    t = (rng.uniform(size=(1, 3, 4, 4)) > 0.5).astype(np.float32)
    w = np.array([[1.0, 1.0, 0.0]], np.float32)
    x = np.stack([logits[0, 0, ..., 1], logits[0, 1, ..., 2]]).astype(np.float64)
    bce = np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0) - x * t[0, :2]
    np.testing.assert_allclose(np.asarray(L.mask_loss(logits, t, w, labels=labels)), [bce.mean(axis=(1, 2)).mean()],
                               rtol=1e-5)
    logits2 = logits.copy()
    logits2[0, 0, ..., 2] += 5  # another class's channel: no effect
    logits2[0, 2] = 100.0  # unweighted RoI
    np.testing.assert_allclose(np.asarray(L.mask_loss(logits2, t, w, labels=labels)),
                               np.asarray(L.mask_loss(logits, t, w, labels=labels)), rtol=1e-6)


def _outputs(rng, b=2, a=12, r=6, c=3, s=4):
    f = lambda *sh: rng.normal(size=sh).astype(np.float32)
    return {
        "rpn_logits": f(b, a), "rpn_deltas": f(b, a, 4), "rpn_box_targets": f(b, a, 4),
        "rpn_labels": rng.integers(-1, 2, (b, a)).astype(np.int32),
        "rpn_weights": (rng.uniform(size=(b, a)) > 0.4).astype(np.float32),
        "cls_logits": f(b, r, c + 1), "box_deltas": f(b, r, c + 1, 4), "roi_box_targets": f(b, r, 4),
        "roi_labels": rng.integers(0, c + 1, (b, r)).astype(np.int32),
        "roi_weights": (rng.uniform(size=(b, r)) > 0.4).astype(np.float32),
        "mask_logits": f(b, r, s, s, c + 1), "mask_targets": rng.uniform(size=(b, r, s, s)).astype(np.float32),
    }


def test_detection_loss_ignores_padding_entries():
    rng = np.random.default_rng(2)
    o = _outputs(rng)
    base = np.asarray(L.detection_loss(o, {}))
    assert base.shape == (2,) and np.all(np.isfinite(base))
    o2 = {k: v.copy() for k, v in o.items()}
    pad_a = o["rpn_weights"] == 0
    o2["rpn_logits"][pad_a] = 1e3
    o2["rpn_deltas"][pad_a] = -7.0
    o2["rpn_box_targets"][pad_a] = np.nan  # garbage targets at padding
    pad_r = o["roi_weights"] == 0
    o2["cls_logits"][pad_r] = 50.0
    o2["box_deltas"][pad_r] = 9.0
    o2["roi_box_targets"][pad_r] = np.inf
    o2["mask_logits"][pad_r] = -40.0
    o2["roi_labels"][pad_r] = 2
    np.testing.assert_allclose(np.asarray(L.detection_loss(o2, {})), base, rtol=1e-6)
    # ... while a sampled entry does change it.
    o3 = {k: v.copy() for k, v in o.items()}
    o3["cls_logits"][~pad_r] += rng.normal(size=o3["cls_logits"][~pad_r].shape).astype(np.float32)
    assert not np.allclose(np.asarray(L.detection_loss(o3, {})), base)


def test_box_regression_only_on_foreground_and_normalised_by_samples():
    o = _outputs(np.random.default_rng(3))
    w, lab = o["roi_weights"], o["roi_labels"]
    sel = np.take_along_axis(o["box_deltas"], lab[..., None, None], -2)[..., 0, :].astype(np.float64)
    d = np.abs(sel - o["roi_box_targets"])
    sl1 = np.where(d < 1, 0.5 * d * d, d - 0.5).sum(-1)
    fg = w * (lab > 0)
    ref = (sl1 * fg).sum(-1) / np.maximum(w.sum(-1), 1)
    got = L.box_regression_loss(L.class_specific(o["box_deltas"], lab), o["roi_box_targets"], fg, beta=1.0,
                                normalizer=w.sum(-1))
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-5)


def test_weighted_class_ids_outside_the_logits_raise_or_give_nan_under_jit():
    """A RoI label >= C + 1 with weight > 0 is never trained on as a clipped class: eager
    calls raise naming it, traced ones make that image's loss NaN; at zero weight it is
    padding and changes nothing."""
    rng = np.random.default_rng(4)
    s = rng.normal(size=(2, 3, 4)).astype(np.float32)
    masks = rng.normal(size=(2, 3, 2, 2, 4)).astype(np.float32)
    t = np.zeros((2, 3, 2, 2), np.float32)
    w = np.ones((2, 3), np.float32)
    lab = np.array([[1, 2, 3], [0, 4, 1]], np.int32)
    losses = {"sampled_softmax_loss": lambda y, w: L.sampled_softmax_loss(s, y, w),
              "one_vs_rest_hinge_loss": lambda y, w: L.one_vs_rest_hinge_loss(s, y, w),
              "mask_loss": lambda y, w: L.mask_loss(masks, t, w, labels=y)}
    for name, fn in losses.items():
        with np.testing.assert_raises_regex(ValueError, r"labels \(of entries with weight > 0\) "
                                            r"must hold class ids in \[0, 4\); found 1"):
            fn(lab, w)
        traced = jax.jit(fn)
        got = np.asarray(traced(lab, w))
        assert np.isfinite(got[0]) and np.isnan(got[1]), name
        padded = w.copy()
        padded[1, 1] = 0.0
        np.testing.assert_allclose(np.asarray(traced(lab, padded)),
                                   np.asarray(fn(np.where(padded > 0, lab, 0), padded)),
                                   rtol=1e-6, err_msg=name)
