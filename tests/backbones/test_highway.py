"""Highway networks: convolutional network and fully connected MLP forward/backward, parameter
count in closed form."""
import jax
import jax.numpy as jnp
import numpy as np

import vai_jax
from vai_jax.backbones.highway import HighwayMLP
from tests.backbones.zoo_checks import assert_forward_backward, n_params


def highway_conv_count(widths, layers, classes, k=3):
    total = 9 * 3 * widths[0] + 2 * widths[0]
    cin = widths[0]
    for i, (w, n) in enumerate(zip(widths, layers)):
        if i:
            total += 9 * cin * w + 2 * w
        # H: conv (no bias) + BN; gate: conv + bias
        total += n * (k * k * w * w + 2 * w + k * k * w * w + w)
        cin = w
    return total + cin * classes + classes


def test_param_counts():
    assert n_params(vai_jax.create_model("highway_conv", num_classes=10), hw=32) == \
        highway_conv_count((32, 64, 128), (6, 6, 6), 10) == 2_421_226
    assert n_params(vai_jax.create_model("highway_conv_deep", num_classes=10), hw=32) == \
        highway_conv_count((32, 64, 128), (16, 16, 16), 10) == 6_298_666


def test_conv_highway_forward_backward():
    model = vai_jax.create_model("highway_conv", num_classes=4, widths=(4, 8), layers_per_stage=(2, 1))
    variables = assert_forward_backward(model, jax.random.normal(jax.random.key(0), (2, 12, 10, 3)), 4)
    gate_bias = variables["params"]["stage1"]["layer1"]["gate"]["bias"]
    np.testing.assert_array_equal(gate_bias, -2.0)


def test_mlp_forward_backward_and_headless():
    model = HighwayMLP(width=8, depth=3, num_classes=5)
    x = jax.random.normal(jax.random.key(0), (4, 6, 6, 1))
    variables = jax.jit(lambda k, x: model.init(k, x, train=False))(jax.random.key(1), x)

    def loss(p):
        logits, _ = model.apply({"params": p}, x, train=True)
        return jnp.sum(logits ** 2)

    grads = jax.jit(jax.grad(loss))(variables["params"])
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    assert float(jnp.abs(grads["layer3"]["gate"]["kernel"]).sum()) > 0
    logits, feats = model.apply(variables, x, train=False)
    assert logits.shape == (4, 5) and feats["hidden"].shape == (4, 8)
    headless = HighwayMLP(width=8, depth=3, num_classes=0)
    assert headless.apply(variables, x, train=False)[0] is None
