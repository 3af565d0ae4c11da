"""ChainCRF, ConditionalNeuralField, DenseCRF and CRFAsRNN modules: parameters, agreement with
the ops, and end-to-end training."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vai_jax.nn.crf import ChainCRF, ConditionalNeuralField, CRFAsRNN, DenseCRF
from vai_jax.ops import crf as chain_ops
from vai_jax.ops.dense_crf import dense_crf


class TinyConvNet(nn.Module):
    """A two-convolution feature extractor returning ``(logits, features)``."""

    num_classes: int = 6

    @nn.compact
    def __call__(self, x, *, train: bool):
        del train
        c1 = nn.relu(nn.Conv(4, (3, 3), strides=(2, 2), name="conv1")(x))
        c2 = nn.relu(nn.Conv(8, (3, 3), strides=(2, 2), name="conv2")(c1))
        logits = None
        if self.num_classes:
            logits = nn.Dense(self.num_classes, name="fc")(jnp.mean(c2, axis=(1, 2)))
        return logits, {"conv1": c1, "conv2": c2}


def _unary(shape, seed):
    return jnp.asarray(np.random.default_rng(seed).normal(0, 1, shape), jnp.float32)


def test_chain_crf_parameters_and_methods_match_ops():
    unary = _unary((2, 5, 4), 0)
    mask = np.arange(5) < np.array([5, 3])[:, None]
    crf = ChainCRF(num_states=4, state_to_label=[0, 0, 1, 2])
    variables = crf.init(jax.random.key(0), unary)
    params = variables["params"]
    assert params["transitions"].shape == (4, 4) and params["initial"].shape == (4,)
    np.testing.assert_array_equal(params["transitions"], 0.0)
    # zero potentials: the steps are independent
    np.testing.assert_allclose(crf.apply(variables, unary), jax.nn.softmax(unary), atol=1e-6)
    trained = {"params": {"transitions": _unary((4, 4), 1), "initial": _unary((4,), 2)}}
    kw = dict(mask=mask, initial=trained["params"]["initial"])
    tr = trained["params"]["transitions"]
    labels = np.array([[0, 1, 2, 2, 0], [2, 2, 1, 0, 0]])
    checks = [
        ("marginals", (), chain_ops.chain_marginals(unary, tr, **kw)),
        ("log_partition", (), chain_ops.chain_log_partition(unary, tr, **kw)),
        ("decode", (), chain_ops.chain_viterbi(unary, tr, **kw)),
        ("log_likelihood", (labels,),
         chain_ops.chain_log_likelihood(unary, tr, labels, state_to_label=[0, 0, 1, 2], **kw)),
        ("label_marginals", (), chain_ops.chain_label_marginals(unary, tr, [0, 0, 1, 2], **kw)),
        ("sequence_log_probs", (),
         chain_ops.chain_sequence_log_probs(unary, tr, [0, 0, 1, 2], **kw)),
    ]
    for method, args, want in checks:
        got = crf.apply(trained, unary, *args, mask=mask, method=method)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6,
                                                             err_msg=method), got, want)
    plain = ChainCRF(num_states=4, use_initial=False)
    v = plain.init(jax.random.key(0), unary)
    assert set(v["params"]) == {"transitions"}
    with pytest.raises(ValueError, match="label_marginals needs state_to_label"):
        plain.apply(v, unary, method="label_marginals")


def _cnf_batch():
    rng = np.random.default_rng(3)
    frames = rng.normal(0, 1, (2, 4, 8, 8, 3)).astype(np.float32)
    labels = np.array([[0, 0, 1, 2], [2, 1, 1, 0]])
    frames += labels[:, :, None, None, None] * 0.5  # a weak per-frame cue
    mask = np.array([[True] * 4, [True, True, True, False]])
    return frames, labels, mask


@pytest.mark.parametrize("in_feature,state_to_label", [(None, None), ("conv2", [0, 0, 1, 1, 2])])
def test_cnf_trains_end_to_end(in_feature, state_to_label):
    frames, labels, mask = _cnf_batch()
    num_states = 3 if state_to_label is None else len(state_to_label)
    model = ConditionalNeuralField(backbone=TinyConvNet(num_classes=6 if in_feature is None
                                                        else 0),
                                   num_states=num_states, in_feature=in_feature,
                                   state_to_label=state_to_label)
    variables = model.init(jax.random.key(0), frames, train=False)
    params = variables["params"]
    assert set(params) == {"backbone", "unary", "crf"}
    assert params["unary"]["kernel"].shape == ((6 if in_feature is None else 8), num_states)
    unary = model.apply(variables, frames, train=False)
    assert unary.shape == (2, 4, num_states)

    def loss_fn(p):
        ll = model.apply({"params": p}, frames, labels, mask=mask, train=True,
                         method="log_likelihood")
        return -jnp.mean(ll)

    opt = optax.sgd(0.1)
    state = opt.init(params)

    @jax.jit
    def step(p, s):
        loss, grads = jax.value_and_grad(loss_fn)(p)
        updates, s = opt.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss, grads

    losses = []
    for _ in range(8):
        params, state, loss, grads = step(params, state)
        losses.append(float(loss))
    assert all(np.isfinite(losses)) and losses[-1] < 0.9 * losses[0]
    # the CRF's gradient reaches the backbone and the transitions
    assert float(jnp.abs(grads["backbone"]["conv1"]["kernel"]).max()) > 0
    assert float(jnp.abs(grads["crf"]["transitions"]).max()) > 0
    path, _ = model.apply({"params": params}, frames, mask=mask, train=False, method="decode")
    assert path.shape == (2, 4) and int(path[1, 3]) == -1


def test_cnf_bad_inputs():
    frames, _, _ = _cnf_batch()
    model = ConditionalNeuralField(backbone=TinyConvNet(num_classes=0), num_states=3)
    with pytest.raises(ValueError, match="returned logits=None"):
        model.init(jax.random.key(0), frames, train=False)
    with pytest.raises(ValueError, match="frames must have rank 5"):
        model.init(jax.random.key(0), frames[0], train=False)
    named = ConditionalNeuralField(backbone=TinyConvNet(), num_states=3, in_feature="conv9")
    with pytest.raises(ValueError, match=r"in_feature must name one of .*'conv2'"):
        named.init(jax.random.key(0), frames, train=False)


def test_dense_crf_module():
    rng = np.random.default_rng(4)
    logits = rng.normal(0, 1, (1, 6, 5, 3)).astype(np.float32)
    image = rng.uniform(0, 255, (1, 6, 5, 3)).astype(np.float32)
    layer = DenseCRF(iterations=2, bilateral_sigmas=(4.0, 60.0))
    variables = layer.init(jax.random.key(0), logits, image, train=False)
    p = variables["params"]
    assert float(p["spatial_weight"]) == 3.0 and float(p["bilateral_weight"]) == 5.0
    np.testing.assert_array_equal(p["compatibility"], 1.0 - np.eye(3))
    out = layer.apply(variables, logits, image, train=False)
    np.testing.assert_allclose(out, dense_crf(logits, image, iterations=2,
                                              bilateral_sigmas=(4.0, 60.0)), rtol=1e-6)
    labels = np.argmax(rng.normal(0, 1, (1, 6, 5, 3)), -1)

    def loss(params):
        refined = layer.apply({"params": params}, logits, image, train=True)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(refined), labels[..., None], -1))

    grads = jax.grad(loss)(p)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    assert float(jnp.abs(grads["compatibility"]).max()) > 0


class _TinySegmenter(nn.Module):
    """One 3x3 convolution to class logits, returned as ``{"out"}`` like the segmenters."""

    num_classes: int = 3

    @nn.compact
    def __call__(self, x, *, train: bool):
        return {"out": nn.Conv(self.num_classes, (3, 3), name="conv")(x)}


def test_crf_as_rnn_refines_the_network_and_trains_both():
    rng = np.random.default_rng(5)
    u8 = rng.uniform(0, 255, (2, 6, 5, 3)).astype(np.float32)
    x = (u8 / 255.0 - 0.5) / 0.25
    crf = DenseCRF(iterations=2, spatial_sigma=1.0, bilateral_sigmas=(3.0, 40.0))
    model = CRFAsRNN(_TinySegmenter(), crf, image_mean=127.5, image_std=63.75)
    variables = jax.jit(lambda k, x: model.init(k, x, train=False))(jax.random.key(0), x)
    assert set(variables["params"]) == {"network", "crf"}
    out = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x)
    unary = _TinySegmenter().apply({"params": variables["params"]["network"]}, x,
                                   train=False)["out"]
    np.testing.assert_allclose(out["unary"], unary, rtol=1e-6)
    np.testing.assert_allclose(out["out"], dense_crf(unary, u8, iterations=2, spatial_sigma=1.0,
                                                     bilateral_sigmas=(3.0, 40.0)),
                               rtol=2e-5, atol=2e-5)
    labels = rng.integers(0, 3, (2, 6, 5))

    def loss(params):
        z = model.apply({"params": params}, x, train=True)["out"]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), labels[..., None], -1))

    grads = jax.jit(jax.grad(loss))(variables["params"])
    assert float(jnp.abs(grads["network"]["conv"]["kernel"]).max()) > 0
    assert float(jnp.abs(grads["crf"]["bilateral_weight"])) > 0
    with pytest.raises(ValueError, match="x must have rank 4"):
        model.init(jax.random.key(0), x[0], train=False)
    bare = CRFAsRNN(_BareLogits(), crf)
    with pytest.raises(TypeError, match="network must return a dict with 'out'"):
        bare.init(jax.random.key(0), x, train=False)


class _BareLogits(nn.Module):
    @nn.compact
    def __call__(self, x, *, train: bool):
        return nn.Conv(3, (1, 1))(x)
