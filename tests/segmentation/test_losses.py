"""Per-pixel cross-entropy with ignore label and class weights, and the weak-supervision losses
(image-level, point, objectness; Bearman et al. 2016), against float64 loops."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vai_jax.segmentation.losses import (image_level_loss, inverse_frequency_weights,
                                         objectness_loss, pixel_cross_entropy, point_loss,
                                         segmentation_loss, weak_segmentation_loss)


def _reference(logits, labels, ignore, weights):
    """Float64, pixel by pixel."""
    logits = np.asarray(logits, np.float64)
    out = []
    for b in range(logits.shape[0]):
        num = den = 0.0
        for i in range(logits.shape[1]):
            for j in range(logits.shape[2]):
                y = int(labels[b, i, j])
                if y == ignore:
                    continue
                z = logits[b, i, j]
                ce = np.log(np.sum(np.exp(z - z.max()))) + z.max() - z[y]
                w = 1.0 if weights is None else float(weights[y])
                num += w * ce
                den += w
        out.append(num / den if den > 0 else 0.0)
    return np.array(out)


@pytest.mark.parametrize("weighted", [False, True])
def test_matches_reference_with_ignore_and_weights(weighted):
    rng = np.random.default_rng(0)
    k = 4
    logits = rng.normal(size=(3, 5, 6, k)).astype(np.float32) * 3
    labels = rng.integers(0, k, size=(3, 5, 6)).astype(np.int32)
    labels[rng.random(labels.shape) < 0.3] = 255
    labels[2] = 255  # an example with no counted pixel -> 0
    weights = np.array([0.5, 2.0, 1.0, 0.0], np.float32) if weighted else None
    got = pixel_cross_entropy(jnp.asarray(logits), jnp.asarray(labels), class_weights=weights)
    assert got.shape == (3,) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, _reference(logits, labels, 255, weights), rtol=1e-5, atol=1e-6)
    # Ignored pixels have no gradient.
    total = lambda z: pixel_cross_entropy(z, jnp.asarray(labels), class_weights=weights).sum()
    g = jax.grad(total)(jnp.asarray(logits))
    np.testing.assert_array_equal(np.asarray(g)[labels == 255], 0.0)
    # jit-able (validation skipped under tracing).
    jitted = jax.jit(lambda z, y: pixel_cross_entropy(z, y, class_weights=weights))
    np.testing.assert_allclose(jitted(logits, labels), got, rtol=1e-6)


def test_bad_input():
    logits = jnp.zeros((2, 4, 4, 3))
    with pytest.raises(ValueError, match="mask and the image"):
        pixel_cross_entropy(logits, jnp.zeros((2, 4, 5), jnp.int32))
    labels = np.zeros((2, 4, 4), np.int32)
    labels[0, 0, 0] = 3
    with pytest.raises(ValueError, match=r"\[0, 3\) or the ignore label 255.*\[3\]"):
        pixel_cross_entropy(logits, labels)
    labels[0, 0, 0] = -1
    with pytest.raises(ValueError, match="-1"):
        pixel_cross_entropy(logits, labels)
    labels[0, 0, 0] = 255  # the ignore label is fine
    pixel_cross_entropy(logits, labels)
    with pytest.raises(ValueError, match="255"):
        pixel_cross_entropy(logits, labels, ignore_label=None)
    with pytest.raises(ValueError, match="class_weights"):
        pixel_cross_entropy(logits, labels, class_weights=jnp.ones(4))
    with pytest.raises(TypeError, match="labels"):
        pixel_cross_entropy(logits, labels.astype(np.float32))


def test_inverse_frequency_weights():
    w = inverse_frequency_weights([99, 9, 0], eps=1.0)
    np.testing.assert_allclose(w / w[0], [1.0, 10.0, 100.0], rtol=1e-6)
    np.testing.assert_allclose(w.mean(), 1.0, rtol=1e-6)


def test_segmentation_loss_adds_the_aux_term():
    rng = np.random.default_rng(3)
    out = jnp.asarray(rng.normal(size=(2, 4, 5, 3)), jnp.float32)
    aux = jnp.asarray(rng.normal(size=(2, 4, 5, 3)), jnp.float32)
    labels = rng.integers(0, 3, size=(2, 4, 5)).astype(np.int32)
    labels[0, 0, :2] = 255
    batch = {"semantic": jnp.asarray(labels)}
    w = np.array([0.5, 1.0, 2.0], np.float32)
    ref = _reference(out, labels, 255, w)
    np.testing.assert_allclose(segmentation_loss({"out": out}, batch, class_weights=w), ref,
                               rtol=1e-5)
    both = segmentation_loss({"out": out, "aux": aux}, batch, class_weights=w, aux_weight=0.4)
    np.testing.assert_allclose(both, ref + 0.4 * _reference(aux, labels, 255, w), rtol=1e-5)
    with pytest.raises(TypeError, match="outputs must be a dict with 'out'"):
        segmentation_loss(out, batch)


def _softmax64(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _reference_image_level(logits, present):
    """Float64: the most confident pixel per class, then the two class means by loops."""
    s = _softmax64(logits)
    out = []
    for b in range(s.shape[0]):
        pos, neg = [], []
        for c in range(s.shape[-1]):
            top = max(s[b, i, j, c] for i in range(s.shape[1]) for j in range(s.shape[2]))
            (pos if present[b, c] else neg).append(top)
        loss = -np.mean(np.log(pos)) if pos else 0.0
        out.append(loss - (np.mean(np.log1p(-np.array(neg))) if neg else 0.0))
    return np.array(out)


def _reference_objectness(logits, prior, bg=0):
    s = _softmax64(logits)
    obj = 1.0 - s[..., bg]              # the sum of the object classes' probabilities
    p = np.asarray(prior, np.float64)
    return -np.mean(p * np.log(obj) + (1 - p) * np.log(1 - obj), axis=(1, 2))


def test_image_level_loss_vs_reference():
    rng = np.random.default_rng(5)
    logits = (rng.normal(size=(3, 4, 5, 4)) * 2).astype(np.float32)
    present = np.array([[1, 0, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]], bool)  # no absent / none
    got = jax.jit(image_level_loss)(logits, present)
    assert got.shape == (3,) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, _reference_image_level(logits, present), rtol=1e-5)
    # Only the most confident pixel of each class receives gradient.
    g = np.asarray(jax.grad(lambda z: image_level_loss(z, present).sum())(jnp.asarray(logits)))
    top = np.argmax(_softmax64(logits).reshape(3, 20, 4), axis=1)   # [B, K]
    touched = set()
    for b in range(3):
        touched |= {(b, int(p)) for p in top[b]}
    nz = {(b, p) for b, p in zip(*np.nonzero(np.abs(g.reshape(3, 20, 4)).sum(-1)))}
    assert nz == touched


@pytest.mark.parametrize("weighted", [False, True])
def test_point_loss_vs_reference(weighted):
    rng = np.random.default_rng(6)
    logits = (rng.normal(size=(2, 5, 6, 3)) * 2).astype(np.float32)
    points = np.full((2, 5, 6), 255, np.int32)
    points[0, 1, 2], points[0, 4, 5], points[0, 0, 0] = 1, 2, 0
    w = np.array([0.5, 2.0, 1.5], np.float32) if weighted else None
    got = point_loss(logits, points, class_weights=w)
    s = _softmax64(logits)
    alpha = (lambda c: 1.0) if w is None else (lambda c: float(w[c]))
    ref0 = -sum(alpha(c) * np.log(s[0, i, j, c]) for i, j, c in ((1, 2, 1), (4, 5, 2), (0, 0, 0)))
    np.testing.assert_allclose(got, [ref0, 0.0], rtol=1e-5)     # no points: 0
    g = np.asarray(jax.grad(lambda z: point_loss(z, points, class_weights=w).sum())(logits))
    np.testing.assert_array_equal(g[points == 255], 0.0)


def test_objectness_loss_vs_reference():
    rng = np.random.default_rng(7)
    logits = (rng.normal(size=(2, 4, 5, 4)) * 3).astype(np.float32)
    prior = rng.uniform(0, 1, (2, 4, 5)).astype(np.float32)
    got = jax.jit(objectness_loss)(logits, prior)
    np.testing.assert_allclose(got, _reference_objectness(logits, prior), rtol=1e-5)
    np.testing.assert_allclose(objectness_loss(logits, prior, background_class=2),
                               _reference_objectness(logits, prior, bg=2), rtol=1e-5)
    mask = np.zeros((2, 4, 5), bool)
    mask[:, :2] = True
    np.testing.assert_allclose(objectness_loss(logits, prior, mask=mask),
                               _reference_objectness(logits[:, :2], prior[:, :2]), rtol=1e-5)
    # Large logits stay finite (log-sum-exp, no log of a rounded-off probability).
    big = np.zeros((1, 1, 2, 3), np.float32)
    big[0, 0, 0, 0], big[0, 0, 1, 1] = 200.0, 200.0
    out = objectness_loss(big, np.array([[[0.0, 1.0]]], np.float32))
    assert np.isfinite(out).all() and float(out[0]) < 1e-6


def test_weak_segmentation_loss_sums_the_terms():
    rng = np.random.default_rng(8)
    logits = jnp.asarray(rng.normal(size=(2, 4, 4, 3)), jnp.float32)
    semantic = rng.integers(0, 3, (2, 4, 4)).astype(np.int32)
    points = np.full((2, 4, 4), 255, np.int32)
    points[:, 0, 0] = semantic[:, 0, 0]
    batch = {"semantic": semantic, "points": points,
             "present": np.stack([np.isin(np.arange(3), s) for s in semantic]),
             "objectness": rng.uniform(0, 1, (2, 4, 4)).astype(np.float32)}
    out = {"out": logits}
    got = weak_segmentation_loss(out, batch, terms=("image", "point", "objectness"),
                                 weights={"objectness": 0.5})
    ref = (image_level_loss(logits, batch["present"]) + point_loss(logits, points)
           + 0.5 * objectness_loss(logits, batch["objectness"]))
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    np.testing.assert_allclose(weak_segmentation_loss(out, batch, terms=("full",)),
                               segmentation_loss(out, batch), rtol=1e-6)
    with pytest.raises(ValueError, match="terms must be a non-empty subset"):
        weak_segmentation_loss(out, batch, terms=("boxes",))
    with pytest.raises(ValueError, match="weights names terms"):
        weak_segmentation_loss(out, batch, terms=("image",), weights={"point": 1.0})
    with pytest.raises(KeyError, match="points"):
        weak_segmentation_loss(out, {"present": batch["present"]}, terms=("image", "point"))


def test_weak_losses_bad_input():
    logits = np.zeros((2, 4, 4, 3), np.float32)
    with pytest.raises(ValueError, match=r"present must have shape \(B, K\) = \(2, 3\)"):
        image_level_loss(logits, np.ones((2, 4), bool))
    with pytest.raises(ValueError, match="logits must have rank 4"):
        image_level_loss(logits[0], np.ones((2, 3), bool))
    with pytest.raises(ValueError, match="point_labels must have shape"):
        point_loss(logits, np.zeros((2, 4, 5), np.int32))
    with pytest.raises(ValueError, match="point_labels must lie in"):
        point_loss(logits, np.full((2, 4, 4), 7, np.int32))
    with pytest.raises(ValueError, match="objectness must lie in"):
        objectness_loss(logits, np.full((2, 4, 4), 1.5, np.float32))
    with pytest.raises(ValueError, match="objectness must have shape"):
        objectness_loss(logits, np.zeros((2, 4, 3), np.float32))
    with pytest.raises(ValueError, match="background_class"):
        objectness_loss(logits, np.zeros((2, 4, 4), np.float32), background_class=3)
    with pytest.raises(ValueError, match="K >= 2"):
        objectness_loss(logits[..., :1], np.zeros((2, 4, 4), np.float32))
