"""Dense block / transition channel bookkeeping and highway layers against their definition."""
import jax
import jax.numpy as jnp
import numpy as np

from vai_jax.nn import DenseBlock, HighwayConv, HighwayDense, Transition, highway_combine


def test_dense_block_channels_and_passthrough():
    x = jax.random.normal(jax.random.key(0), (2, 5, 5, 6))
    block = DenseBlock(num_layers=3, growth_rate=4, bn_size=2)
    variables = block.init(jax.random.key(1), x, train=False)
    y, _ = block.apply(variables, x, train=True, mutable=["batch_stats"])
    assert y.shape == (2, 5, 5, 6 + 3 * 4)
    np.testing.assert_array_equal(y[..., :6], x)  # the input is concatenated unchanged
    # layer j reads in + (j-1)*k channels; its 1x1 conv widens to bn_size*k
    assert variables["params"]["layer3"]["conv1"]["kernel"].shape == (1, 1, 6 + 2 * 4, 8)
    assert variables["params"]["layer3"]["conv2"]["kernel"].shape == (3, 3, 8, 4)


def test_transition_halves():
    x = jax.random.normal(jax.random.key(0), (1, 7, 6, 10))
    tr = Transition(features=5)
    variables = tr.init(jax.random.key(1), x, train=False)
    assert tr.apply(variables, x, train=False).shape == (1, 3, 3, 5)


def test_highway_gate_closed_returns_input_open_returns_transform():
    x = jax.random.normal(jax.random.key(0), (3, 6))
    closed = HighwayDense(transform_bias=-1e4)
    variables = closed.init(jax.random.key(1), x, train=False)
    np.testing.assert_array_equal(closed.apply(variables, x, train=False), x)
    params = variables["params"]
    opened = {"params": {**params, "gate": {**params["gate"], "bias": -params["gate"]["bias"]}}}
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    h = np.maximum(np.asarray(x, np.float64) @ p["h"]["kernel"] + p["h"]["bias"], 0)
    np.testing.assert_allclose(closed.apply(opened, x, train=False), h, rtol=1e-5, atol=1e-6)
    # in between: the convex mix with T = sigmoid(x W_T - 2)
    mid = HighwayDense()
    v = mid.init(jax.random.key(2), x, train=False)
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), v["params"])
    xs = np.asarray(x, np.float64)
    t = 1 / (1 + np.exp(-(xs @ p["gate"]["kernel"] + p["gate"]["bias"])))
    np.testing.assert_array_equal(p["gate"]["bias"], -2.0)
    hh = np.maximum(xs @ p["h"]["kernel"] + p["h"]["bias"], 0)
    np.testing.assert_allclose(mid.apply(v, x, train=False), hh * t + xs * (1 - t), rtol=1e-5,
                               atol=1e-6)


def test_highway_conv_closed_gate_is_identity():
    x = jax.random.normal(jax.random.key(0), (2, 6, 5, 4))
    layer = HighwayConv(transform_bias=-1e4, norm=True)
    variables = layer.init(jax.random.key(1), x, train=False)
    y, _ = layer.apply(variables, x, train=True, mutable=["batch_stats"])
    np.testing.assert_array_equal(y, x)
    assert highway_combine(jnp.ones(3), jnp.zeros(3), jnp.full(3, 0.25)).tolist() == [0.75] * 3
