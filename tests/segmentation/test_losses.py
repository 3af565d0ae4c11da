"""Per-pixel cross-entropy with ignore label and class weights, against a float64 loop."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vai_jax.segmentation.losses import (inverse_frequency_weights, pixel_cross_entropy,
                                         segmentation_loss)


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
