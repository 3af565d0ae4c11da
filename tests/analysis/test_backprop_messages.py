"""Back-propagation by explicit messages on random DAGs against jax.grad of a direct forward
pass."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vai_jax.analysis import backprop_messages as bm

ACTS = {"tanh": jnp.tanh, "softplus": jax.nn.softplus, "sigmoid": jax.nn.sigmoid}


def _random_dag(seed, num_units=10, num_inputs=3):
    """A strictly lower-triangular mask with chain, long skip and dense connections."""
    rng = np.random.default_rng(seed)
    mask = np.tril(rng.random((num_units, num_units)) < 0.35, k=-1)
    for c in range(num_inputs, num_units):
        mask[c, c - 1] = True                      # a chain through every unit
    mask[num_units - 1, :num_units - 1] = True     # a dense unit: all earlier units feed it
    mask[num_units - 2, 0] = True                  # a long skip from the first input
    mask[:num_inputs] = False                      # inputs have no parents
    weights = rng.normal(0, 0.8, mask.shape).astype(np.float32)
    inputs = np.arange(num_inputs)
    outputs = np.array([num_units - 1, num_units - 3, num_units - 2])  # two feed later units
    return weights, mask, inputs, outputs


def _direct_loss(weights, x, mask, inputs, outputs, h, loss_fn, linear_outputs=False):
    """The network's loss written directly: a dict of unit values built from parent lists."""
    values = {}
    for u in range(mask.shape[0]):
        if u in inputs:
            values[u] = x[..., list(inputs).index(u)]
        else:
            parents = np.flatnonzero(mask[u])
            values[u] = sum((weights[u, p] * h(values[p]) for p in parents),
                            jnp.zeros(x.shape[:-1]))
    y = jnp.stack([values[o] if linear_outputs else h(values[o]) for o in outputs], axis=-1)
    return loss_fn(y)


def _loss(y):
    target = jnp.linspace(-0.5, 0.5, y.shape[-1])
    return 0.5 * jnp.sum((y - target) ** 2) + jnp.sum(jnp.sin(y[..., 0]))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("activation", ["tanh", "softplus"])
def test_message_gradients_equal_jax_grad(seed, activation):
    weights, mask, inputs, outputs = _random_dag(seed)
    x = np.random.default_rng(seed + 100).normal(0, 1, (4, inputs.size)).astype(np.float32)
    h = ACTS[activation]
    got = bm.backprop(weights, mask, x, _loss, input_units=inputs, output_units=outputs,
                      activation=activation)
    loss, (gw, gx) = jax.value_and_grad(_direct_loss, argnums=(0, 1))(
        jnp.asarray(weights), jnp.asarray(x), mask, inputs, outputs, h, _loss)
    np.testing.assert_allclose(got.loss, loss, rtol=1e-5)
    np.testing.assert_allclose(got.weight_grad, gw, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got.input_grad, gx, rtol=1e-4, atol=1e-5)
    assert np.all(np.asarray(got.weight_grad)[~mask] == 0) and np.abs(gw).max() > 1e-2
    assert got.messages.shape == got.deltas.shape == (4, mask.shape[0])


def test_linear_outputs_callable_activation_and_unbatched():
    weights, mask, inputs, outputs = _random_dag(3, num_units=8, num_inputs=2)
    x = np.array([0.3, -1.2], np.float32)
    act = lambda m: m * jax.nn.sigmoid(m)  # noqa: E731  (swish, derivative by jvp)
    got = bm.backprop(weights, mask, x, _loss, input_units=inputs, output_units=outputs,
                      activation=act, linear_outputs=True)
    gw, gx = jax.grad(_direct_loss, argnums=(0, 1))(jnp.asarray(weights), jnp.asarray(x), mask,
                                                    inputs, outputs, act, _loss, True)
    np.testing.assert_allclose(got.weight_grad, gw, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got.input_grad, gx, rtol=1e-4, atol=1e-5)


def test_messages_by_hand_on_a_three_unit_chain():
    # 0 -> 1 -> 2 and the skip 0 -> 2; tanh; loss = y_2 = tanh(M_2)
    mask = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0]], bool)
    w = np.array([[0, 0, 0], [0.5, 0, 0], [-1.0, 2.0, 0]], np.float32)
    x0 = 0.7
    m1 = 0.5 * np.tanh(x0)
    m2 = -1.0 * np.tanh(x0) + 2.0 * np.tanh(m1)
    v2 = 1 - np.tanh(m2) ** 2
    v1 = (1 - np.tanh(m1) ** 2) * 2.0 * v2
    v0 = (1 - np.tanh(x0) ** 2) * (0.5 * v1 - 1.0 * v2)
    got = bm.backprop(w, mask, np.array([x0], np.float32), jnp.sum, input_units=[0],
                      output_units=[2])
    np.testing.assert_allclose(got.messages, [x0, m1, m2], rtol=1e-6)
    np.testing.assert_allclose(got.deltas, [v0, v1, v2], rtol=1e-5)
    np.testing.assert_allclose(got.weight_grad[2, 1], np.tanh(m1) * v2, rtol=1e-5)
    # the two passes called on their own, with NumPy arrays
    m = bm.forward_messages(w, mask, np.array([x0], np.float32), input_units=[0])
    v = bm.backward_messages(w, mask, np.asarray(m), np.ones(1, np.float32), output_units=[2])
    np.testing.assert_allclose(v, [v0, v1, v2], rtol=1e-5)


def test_jit():
    weights, mask, inputs, outputs = _random_dag(4)
    x = np.random.default_rng(5).normal(0, 1, (2, 3)).astype(np.float32)

    def grads(w, xs):
        return bm.backprop(w, mask, xs, _loss, input_units=inputs, output_units=outputs).weight_grad

    np.testing.assert_allclose(jax.jit(grads)(weights, x), grads(weights, x), rtol=1e-5,
                               atol=1e-6)


def test_topological_order():
    _, mask, _, _ = _random_dag(6)
    perm = np.random.default_rng(7).permutation(mask.shape[0])
    shuffled = mask[perm][:, perm]
    order = bm.topological_order(shuffled)
    assert sorted(order.tolist()) == list(range(mask.shape[0]))
    assert not np.triu(shuffled[order][:, order]).any()


def test_bad_graphs_and_shapes():
    weights, mask, inputs, outputs = _random_dag(8, num_units=6, num_inputs=2)
    x = np.zeros((2, 2), np.float32)
    kw = dict(input_units=inputs, output_units=outputs)

    def graph(*edges):
        m = np.zeros((6, 6), bool)
        for p, c in edges:
            m[c, p] = True
        return m

    upper = graph((0, 2), (1, 3), (2, 3), (3, 5), (5, 4))  # acyclic, 5 -> 4 against the order
    cyclic = graph((0, 2), (2, 3), (3, 4), (4, 2))
    loop = graph((0, 2), (3, 3))
    cases = [
        ((weights, upper, x), r"mask must be strictly lower triangular .* found the edge 5 -> 4"),
        ((weights, cyclic, x), r"mask has a cycle"),
        ((weights, loop, x), r"mask has a cycle"),
        ((weights[:5, :5], mask, x), r"weights must have mask's shape \(6, 6\)"),
        ((weights, mask[:5], x), r"mask must be square"),
        ((weights, mask, np.zeros((2, 3), np.float32)),
         r"inputs must have last dimension len\(input_units\) = 2"),
    ]
    for args, match in cases:
        with pytest.raises(ValueError, match=match):
            bm.backprop(*args, _loss, **kw)
    for bad_kw, match in [({"input_units": [0, 3]}, r"input_units must have no parents"),
                          ({"output_units": [5, 6]}, r"output_units must lie in \[0, 6\)"),
                          ({"output_units": [5, 5]}, r"output_units must be distinct"),
                          ({"activation": "gelu"}, r"activation must be one of")]:
        with pytest.raises(ValueError, match=match):
            bm.backprop(weights, mask, x, _loss, **{**kw, **bad_kw})
    with pytest.raises(TypeError, match="mask must have bool"):
        bm.backprop(weights, mask.astype(np.int32), x, _loss, **kw)
    with pytest.raises(TypeError, match="mask must be concrete"):
        jax.jit(lambda m: bm.forward_messages(weights, m, x, input_units=inputs))(mask)
    with pytest.raises(ValueError, match=r"output_grads must have shape \(2, 3\)"):
        bm.backward_messages(weights, mask, np.zeros((2, 6), np.float32),
                             np.zeros((2, 2), np.float32), output_units=outputs)
