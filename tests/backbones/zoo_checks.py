"""Checks shared by the backbone-zoo tests (ResNet, VGG/AlexNet, DenseNet, BagNet, highway).
Not a test module; imported by the test files of this directory."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest


def n_params(model, hw=64):
    """Parameter count through jax.eval_shape (nothing is allocated). Also checks, on the same
    abstract evaluation, that the features' channels are those of ``feature_info`` and that the
    logits have ``num_classes`` columns (or are None)."""
    (logits, feats), shapes = jax.eval_shape(lambda: model.init_with_output(
        jax.random.key(0), jnp.zeros((1, hw, hw, 3)), train=False))
    assert {f.name: f.channels for f in model.feature_info} == {
        f.name: feats[f.name].shape[-1] for f in model.feature_info}
    if model.num_classes:
        assert logits.shape == (1, model.num_classes)
    else:
        assert logits is None
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(shapes["params"]))


def import_torchvision():
    """torchvision, or skip (also when a mismatched torch/torchvision pair fails on import)."""
    try:
        import torchvision
    except Exception as e:  # noqa: BLE001 - e.g. "operator torchvision::nms does not exist"
        pytest.skip(f"torchvision unusable: {e}")
    return torchvision


def torchvision_count(name):
    tv = import_torchvision()
    return sum(p.numel() for p in getattr(tv.models, name)().parameters())


def check_features(model, out, x, rounding="ceil"):
    """features match feature_info: same names, channels, and spatial size input/stride rounded
    up ("ceil"), down ("floor") or within an int tolerance of input/stride."""
    logits, feats = out
    info = model.feature_info
    stages = sorted(k for k in feats if k == "stem" or k.startswith("stage"))
    assert sorted(f.name for f in info) == stages  # family-specific extra keys are allowed
    for f in info:
        b, h, w, c = feats[f.name].shape
        assert (b, c) == (x.shape[0], f.channels), f
        for got, size in ((h, x.shape[1]), (w, x.shape[2])):
            if rounding == "ceil":
                assert got == -(-size // f.stride), (f, got, size)
            elif rounding == "floor":
                assert got == size // f.stride, (f, got, size)
            else:
                assert abs(got - size / f.stride) <= rounding, (f, got, size)
    return logits


def assert_forward_backward(model, x, num_classes, rounding="ceil", rngs=None, abstract=False):
    """init, a train-mode forward (with BN-stat updates), its gradient and an eval forward, all
    in one jitted function (one compilation keeps the tests fast). Returns the variables.
    ``abstract=True`` runs it under jax.eval_shape (shapes only, nothing compiled)."""
    rngs = rngs or {}

    @jax.jit
    def run(x):
        variables = model.init(jax.random.key(0), x, train=False)

        def loss(params):
            (lg, feats), upd = model.apply({**variables, "params": params}, x, train=True,
                                           mutable=["batch_stats"], rngs=rngs)
            return jnp.sum(lg ** 2), ((lg, feats), upd)

        grads, (out, updates) = jax.grad(loss, has_aux=True)(variables["params"])
        return variables, out, updates, grads, model.apply(variables, x, train=False)[0]

    variables, out, updates, grads, logits_eval = (jax.eval_shape(run, x) if abstract
                                                   else run(x))
    logits = check_features(model, out, x, rounding)
    if abstract:
        assert logits.shape == logits_eval.shape == (x.shape[0], num_classes)
        assert jax.tree.map(lambda g, p: g.shape == p.shape, grads, variables["params"])
        return variables
    assert logits.shape == logits_eval.shape == (x.shape[0], num_classes)
    if "batch_stats" in variables:
        assert jax.tree.structure(updates["batch_stats"]) == jax.tree.structure(
            variables["batch_stats"])
    leaves = jax.tree.leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert sum(float(jnp.sum(jnp.abs(g))) for g in leaves) > 0
    return variables


def abstract_init(model, hw, **kw):
    """``model.init_with_output`` on a ``[1, hw, hw, 3]`` input, as shapes only (no memory)."""
    return jax.eval_shape(lambda: model.init_with_output(
        jax.random.key(0), jnp.zeros((1, hw, hw, 3)), train=False, **kw))


def tree_size(tree):
    """Number of scalars in a pytree of arrays or shape structs."""
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(tree))


def random_variables(model, x):
    """Variables with the shapes of ``model.init`` filled from NumPy (no init compile): kernels
    ~ N(0, 1/fan_in), BN scales and variances 1, other vectors 0."""
    abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
    rng = np.random.default_rng(0)

    def fill(path, s):
        if len(s.shape) >= 2:
            return jnp.asarray(rng.normal(size=s.shape) / np.sqrt(np.prod(s.shape[:-1])), s.dtype)
        one = any(k in str(path[-1]) for k in ("scale", "var"))
        return jnp.ones(s.shape, s.dtype) if one else jnp.zeros(s.shape, s.dtype)

    return jax.tree_util.tree_map_with_path(fill, abstract)
