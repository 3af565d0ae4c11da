"""Colourisation losses against hand computations, and a few training steps that reduce them."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vai_jax.colourisation import (ColourisationNet, ab_squared_error, colourisation_loss,
                                   grey_input, split_lab)
from vai_jax.data.shapes import ShapesDataset
from vai_jax.ops import cross_entropy
from vai_jax.train.state import TrainState
from vai_jax.train.step import make_train_step


def test_ab_squared_error_against_numpy():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(2, 3, 4, 2)).astype(np.float32)
    t = rng.normal(size=(2, 3, 4, 2)).astype(np.float32)
    w = rng.random((2, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(ab_squared_error(p, t), ((p - t) ** 2).mean(axis=(1, 2, 3)),
                               rtol=1e-6)
    sq = ((p - t) ** 2).mean(-1)
    np.testing.assert_allclose(ab_squared_error(p, t, w),
                               (sq * w).sum((1, 2)) / w.sum((1, 2)), rtol=1e-6)
    with pytest.raises(ValueError, match="targets must have the shape of predictions"):
        ab_squared_error(p, t[:, :2])
    with pytest.raises(ValueError, match="predictions must have last dimension 2"):
        ab_squared_error(p[..., :1], t[..., :1])


def test_colourisation_loss_values():
    image = np.random.default_rng(1).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    _, ab = split_lab(image)
    batch = {"image": image, "label": np.array([1, 2])}
    np.testing.assert_allclose(colourisation_loss({"ab": ab}, batch), 0.0, atol=1e-10)
    shifted = ab + jnp.array([10.0, -20.0])
    np.testing.assert_allclose(colourisation_loss({"ab": shifted}, batch, ab_norm=10.0),
                               [(1.0 + 4.0) / 2] * 2, rtol=1e-4)
    logits = jnp.array([[0.0, 2.0, -1.0], [1.0, 0.0, 0.5]])
    got = colourisation_loss({"ab": ab, "logits": logits}, batch, classification_weight=0.5)
    np.testing.assert_allclose(got, 0.5 * cross_entropy(logits, batch["label"]), rtol=1e-5)
    # Weight 0: the head's logits are ignored.
    np.testing.assert_allclose(colourisation_loss({"ab": ab, "logits": logits}, batch), 0.0,
                               atol=1e-10)
    with pytest.raises(ValueError, match="needs a classification head"):
        colourisation_loss({"ab": ab}, batch, classification_weight=0.1)


@pytest.mark.parametrize("fusion, num_classes, weight", [(False, 0, 0.0), (True, 6, 0.1)])
def test_loss_decreases_over_a_few_steps(fusion, num_classes, weight):
    data = ShapesDataset("classification", num_examples=8, image_size=16, colour_by_class=True)
    batch = data.get_batch(range(8))
    model = ColourisationNet(low_features=(8, 8, 8), mid_features=(8,), global_features=(8,),
                             global_dims=(16, 8), fusion_features=8, decoder_features=(8, 8),
                             classifier_hidden=8, fusion=fusion, num_classes=num_classes)
    variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 1)), train=False)
    state = TrainState.create(apply_fn=model.apply, variables=variables, tx=optax.adam(1e-2),
                              rng=jax.random.PRNGKey(1))
    loss_fn = functools.partial(colourisation_loss, classification_weight=weight)
    step = jax.jit(make_train_step(loss_fn, preprocess_fn=grey_input))
    losses = []
    for _ in range(15):
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.7 * losses[0]
