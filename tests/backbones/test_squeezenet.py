"""SqueezeNet 1.0 / 1.1: torchvision parameter counts, the simple bypass, features, forward and
backward."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vai_jax
from vai_jax.backbones.squeezenet import FIRES
from tests.backbones.zoo_checks import tree_size as n_params, abstract_init, random_variables  # noqa: E402


TORCHVISION = {"squeezenet1_0": 1_248_424, "squeezenet1_1": 1_235_496}


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_param_counts(name):
    stem = {"squeezenet1_0": 7 * 7 * 3 * 96 + 96, "squeezenet1_1": 3 * 3 * 3 * 64 + 64}[name]
    c, fires = (96 if name.endswith("0") else 64), 0
    for s, e1, e3 in FIRES:  # Table 1's fire modules: squeeze, expand 1×1, expand 3×3 (+ biases)
        fires += c * s + s + s * e1 + e1 + 9 * s * e3 + e3
        c = e1 + e3
    analytic = stem + fires + 512 * 1000 + 1000
    for bypass in (False, True):  # the simple bypass adds no parameters
        _, v = abstract_init(vai_jax.create_model(name, bypass=bypass), 224)
        assert n_params(v["params"]) == analytic == TORCHVISION[name]


def test_torchvision_parity():
    try:
        torchvision = pytest.importorskip("torchvision")
    except Exception as e:  # noqa: BLE001 - a mismatched torch/torchvision pair fails on import
        if isinstance(e, pytest.skip.Exception):
            raise
        pytest.skip(f"torchvision unusable: {e}")
    for name, count in TORCHVISION.items():
        assert sum(p.numel() for p in getattr(torchvision.models, name)().parameters()) == count


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_features_strides(name):
    model = vai_jax.create_model(name, num_classes=0)
    (logits, f1), _ = abstract_init(model, 96)
    (_, f2), _ = abstract_init(model, 160)
    assert logits is None
    for f in model.feature_info:  # 64 more input pixels -> 64 / stride more feature pixels
        assert f1[f.name].shape[-1] == f.channels
        assert f2[f.name].shape[1] - f1[f.name].shape[1] == 64 // f.stride, f
    assert [f.stride for f in model.feature_info] == [2, 4, 8, 16]
    # torchvision's 224 px sizes (unpadded stem, ceil-mode pools)
    (_, f224), _ = abstract_init(model, 224)
    want = (109, 54, 27, 13) if name == "squeezenet1_0" else (111, 55, 27, 13)
    assert tuple(f224[f.name].shape[1] for f in model.feature_info) == want


def test_forward_backward_with_bypass():
    model = vai_jax.create_model("squeezenet1_1", num_classes=4, bypass=True)
    x = jax.random.normal(jax.random.key(1), (2, 48, 48, 3))
    variables = random_variables(model, x)

    def loss(params):
        lg, feats = model.apply({"params": params}, x, train=True, rngs={"dropout": jax.random.key(2)})
        return jnp.sum(lg ** 2), (lg, feats)

    grads, (logits, feats) = jax.jit(jax.grad(loss, has_aux=True))(variables["params"])
    assert logits.shape == (2, 4)
    assert bool(jnp.all(logits >= 0))  # ReLU before the global pool, as in the paper
    leaves = jax.tree.leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert float(jnp.sum(jnp.abs(grads["conv1"]["conv"]["kernel"]))) > 0
    assert feats["stage3"].shape[-1] == 512
    # Same weights without the bypass: a different function (the exact identity add is tested
    # on the Fire block itself in tests/nn/test_blocks.py).
    plain = vai_jax.create_model("squeezenet1_1", num_classes=4)
    lb, _ = jax.jit(lambda v: model.apply(v, x, train=False))(variables)
    lp, _ = jax.jit(lambda v: plain.apply(v, x, train=False))(variables)
    assert lb.shape == lp.shape == (2, 4) and not np.allclose(lb, lp)
