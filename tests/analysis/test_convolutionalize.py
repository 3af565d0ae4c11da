"""Convolutionalisation: same logits at the training resolution, a class map of the right
size on larger inputs, each cell = the classifier on the matching window."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vai_jax.analysis.convolutionalize import (FullyConvolutional, convolutionalize,
                                               dense_to_conv_kernel, nest_backbone)

NUM_CLASSES = 3


class _Features(nn.Module):
    """VALID convs and pools (no padding), so a window of the input maps to a cell exactly."""

    @nn.compact
    def __call__(self, x, *, train):
        x = nn.relu(nn.Conv(4, (3, 3), padding="VALID", name="conv1")(x))
        x = nn.max_pool(x, (2, 2), (2, 2))
        x = nn.relu(nn.Conv(6, (3, 3), padding="VALID", name="conv2")(x))
        x = nn.max_pool(x, (2, 2), (2, 2))
        return None, {"pool2": x}


class _Classifier(nn.Module):
    """Training input 22x22 -> pool2 grid 4x4 -> flatten -> fc1 -> fc2."""

    @nn.compact
    def __call__(self, x, *, train):
        _, f = _Features()(x, train=train)
        y = f["pool2"].reshape(x.shape[0], -1)
        y = nn.relu(nn.Dense(8, name="fc1")(y))
        return nn.Dense(NUM_CLASSES, name="fc2")(y)


def _trained_classifier():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(16, 22, 22, 3)), jnp.float32)
    y = jnp.asarray(rng.integers(0, NUM_CLASSES, 16))
    model = _Classifier()
    params = model.init(jax.random.PRNGKey(0), x, train=False)["params"]
    # The classifier's params keep `_Features_0`; rename for the backbone below.
    tx = optax.sgd(0.1)
    opt = tx.init(params)

    @jax.jit
    def step(params, opt):
        loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(
            model.apply({"params": p}, x, train=True), y).mean()
        g = jax.grad(loss)(params)
        u, opt = tx.update(g, opt)
        return optax.apply_updates(params, u), opt

    for _ in range(3):
        params, opt = step(params, opt)
    return model, params


def test_same_logits_at_training_size_and_map_on_larger_inputs():
    model, params = _trained_classifier()
    fcn = FullyConvolutional(_Features(), "pool2", widths=(8, NUM_CLASSES), grid=(4, 4),
                             layer_names=("fc1", "fc2"))
    conv_params = convolutionalize(params, grid=(4, 4), channels=6, layer_names=("fc1", "fc2"))
    conv_params["backbone"] = conv_params["backbone"].pop("_Features_0")
    expected = jax.tree.map(jnp.shape, fcn.init(jax.random.PRNGKey(0), jnp.zeros((1, 22, 22, 3)),
                                                train=False)["params"])
    assert jax.tree.map(jnp.shape, conv_params) == expected

    x = jax.random.normal(jax.random.PRNGKey(1), (2, 22, 22, 3))
    logits = model.apply({"params": params}, x, train=False)
    heat = fcn.apply({"params": conv_params}, x, train=False)
    assert heat.shape == (2, 1, 1, NUM_CLASSES)
    np.testing.assert_allclose(heat[:, 0, 0], logits, rtol=1e-5, atol=1e-5)

    # Larger input: 22 + 4*2 rows, 22 + 4*3 columns -> 3 x 4 cells (total stride 4); cell (i, j)
    # is the classifier on the 22x22 window at (4i, 4j).
    big = jax.random.normal(jax.random.PRNGKey(2), (1, 30, 34, 3))
    heat = fcn.apply({"params": conv_params}, big, train=False)
    assert heat.shape == (1, 3, 4, NUM_CLASSES)
    for i in range(3):
        for j in range(4):
            window = big[:, 4 * i:4 * i + 22, 4 * j:4 * j + 22]
            np.testing.assert_allclose(heat[:, i, j], model.apply({"params": params}, window,
                                                                  train=False),
                                       rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="too small"):
        fcn.apply({"params": conv_params}, jnp.zeros((1, 18, 22, 3)), train=False)


def test_vgg_classifier_convolutionalised():
    vgg = pytest.importorskip("vai_jax.backbones.vgg")
    widths, hidden = (4, 4, 8, 8, 8), 16
    clf = vgg.VGG(config=vgg.CONFIGS["A"], widths=widths, hidden=hidden,
                  num_classes=NUM_CLASSES, pool_size=2, batch_norm=True)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 64, 64, 3))  # stage5: 2x2 = pool_size
    variables = clf.init(jax.random.PRNGKey(1), x, train=False)
    logits, _ = clf.apply(variables, x, train=False)
    fcn = FullyConvolutional(
        vgg.VGG(config=vgg.CONFIGS["A"], widths=widths, num_classes=0, batch_norm=True),
        "stage5", widths=(hidden, hidden, NUM_CLASSES), grid=(2, 2))
    conv = {"params": convolutionalize(variables["params"], grid=(2, 2), channels=widths[-1]),
            "batch_stats": nest_backbone(variables["batch_stats"])}
    np.testing.assert_allclose(fcn.apply(conv, x, train=False)[:, 0, 0], logits,
                               rtol=1e-4, atol=1e-4)
    assert fcn.apply(conv, jnp.zeros((1, 96, 128, 3)), train=False).shape == (1, 2, 3, NUM_CLASSES)


def test_dense_to_conv_kernel_layout_and_errors():
    rng = np.random.default_rng(0)
    feat = rng.normal(size=(2, 3, 5)).astype(np.float32)
    kernel = rng.normal(size=(30, 4)).astype(np.float32)
    conv = dense_to_conv_kernel(kernel, (2, 3), 5)
    np.testing.assert_allclose(np.einsum("hwc,hwcn->n", feat, conv), feat.reshape(-1) @ kernel,
                               rtol=1e-5)
    with pytest.raises(ValueError, match="30 rows"):
        dense_to_conv_kernel(np.zeros((31, 4)), (2, 3), 5)
    with pytest.raises(ValueError, match="no dense layer"):
        convolutionalize({"conv": {}}, grid=(1, 1), channels=1, layer_names=("fc",))
