"""Activation maximisation: a linear unit's optimum is known in closed form."""
import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest
from tests.analysis.analysis_testing import random_variables

from vai_jax.analysis.activation_max import (AscentConfig, gaussian_blur, maximise_activation,
                                             to_display, unit_objective)
from vai_jax.analysis.plain_cnn import PlainCNN


class FullImageLinear(nn.Module):
    """One 'VALID' convolution as large as the image: unit c is <kernel[..., c], x> + b."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        del train
        return nn.Conv(3, (8, 8), padding="VALID", name="lin")(x)


def test_linear_unit_converges_to_its_weight_direction():
    model = FullImageLinear()
    v = random_variables(model, (1, 8, 8, 3))
    # Normalised-gradient ascent with L2 decay and no blur/jitter has the fixed point
    # x* = lr·(1−d)/d · w / mean|w|: the image is the unit's weight pattern.
    cfg = AscentConfig(steps=400, learning_rate=0.05, l2_decay=0.05, blur_every=0, jitter=0,
                       value_range=(-100.0, 100.0))
    x, before, after = maximise_activation(model, v, "lin", [0, 2], input_shape=(8, 8, 3),
                                           config=cfg, train=False)
    w = np.asarray(v["params"]["lin"]["kernel"])
    for n, c in enumerate([0, 2]):
        expected = 0.05 * 0.95 / 0.05 * w[..., c] / np.abs(w[..., c]).mean()
        np.testing.assert_allclose(x[n], expected, rtol=1e-3, atol=1e-4)
        assert after[n] > before[n]
    assert before.tolist() == [0.0, 0.0]  # blank start, zero bias


def test_regularised_ascent_increases_a_cnn_channel():
    model = PlainCNN(widths=(4, 6), pool_after=(1,), num_classes=3)
    v = random_variables(model, (1, 16, 16, 3), bias_std=0.1)
    cfg = AscentConfig(steps=24, jitter=2, blur_every=4, init="noise")
    x, before, after = maximise_activation(model, v, "conv2", [0, 1, 5], input_shape=(16, 16, 3),
                                           config=cfg, seed=1, train=False)
    assert x.shape == (3, 16, 16, 3) and np.all(np.isfinite(x))
    assert np.all(after > before)
    assert np.all(np.abs(x) <= 3.0)  # default value_range
    d = to_display(x)
    assert d.min() >= 0 and d.max() <= 1 and d.shape == x.shape


def test_blur_and_objective():
    x = np.zeros((1, 9, 9, 1), np.float32)
    x[0, 4, 4, 0] = 1.0
    y = np.asarray(gaussian_blur(jnp.asarray(x), 1.0))
    assert y.sum() == pytest.approx(1.0, abs=1e-5) and y[0, 4, 4, 0] == y.max()
    np.testing.assert_allclose(y[0, :, :, 0], y[0, :, :, 0].T, atol=1e-7)
    np.testing.assert_array_equal(np.asarray(gaussian_blur(jnp.asarray(x), 0.0)), x)
    out = jnp.arange(2 * 3 * 3 * 2, dtype=jnp.float32).reshape(2, 3, 3, 2)
    np.testing.assert_allclose(unit_objective(out, jnp.array([1, 0]), "centre"), [9.0, 26.0])
    np.testing.assert_allclose(unit_objective(out, jnp.array([0, 1]), "mean"),
                               [out[0, ..., 0].mean(), out[1, ..., 1].mean()])
    logits = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    np.testing.assert_allclose(unit_objective(logits, jnp.array([2, 0]), "centre"), [3.0, 4.0])


def test_bad_arguments():
    model = FullImageLinear()
    v = random_variables(model, (1, 8, 8, 3))
    with pytest.raises(ValueError, match="no layer named 'conv9'.*lin"):
        maximise_activation(model, v, "conv9", [0], input_shape=(8, 8, 3), train=False)
    with pytest.raises(ValueError, match=r"channels must be in \[0, 3\)"):
        maximise_activation(model, v, "lin", [3], input_shape=(8, 8, 3), train=False)
    with pytest.raises(ValueError, match="l2_decay"):
        AscentConfig(l2_decay=1.0)
