"""GoogLeNet (Inception v1): Table 1 widths and parameters, torchvision's variant, features,
auxiliary classifiers, forward and backward."""
import math

import jax
import jax.numpy as jnp
import pytest

import vai_jax
from vai_jax.backbones.googlenet import INCEPTION_V1_TABLE, GoogLeNet
from tests.backbones.zoo_checks import tree_size as n_params, abstract_init, random_variables, import_torchvision  # noqa: E402


# Table 1 (Szegedy et al. 2015): input channels and the "params" column in K.
TABLE1_IN = {"inception_3a": 192, "inception_3b": 256, "inception_4a": 480, "inception_4b": 512,
             "inception_4c": 512, "inception_4d": 512, "inception_4e": 528, "inception_5a": 832,
             "inception_5b": 832}
TABLE1_PARAMS_K = {"inception_3a": 159, "inception_3b": 380, "inception_4a": 364,
                   "inception_4b": 437, "inception_4c": 463, "inception_4d": 580,
                   "inception_4e": 840, "inception_5a": 1072, "inception_5b": 1388}
# Rows where the printed column disagrees with the printed widths (the widths give 498K and
# 1019K); the model follows the widths, documented in vai_jax.backbones.googlenet.
TABLE1_INCONSISTENT = {"inception_4c", "inception_5a"}


def module_weights(c_in, w):
    c1, r3, c3, r5, c5, pp = w
    return c_in * c1 + c_in * r3 + 9 * r3 * c3 + c_in * r5 + 25 * r5 * c5 + c_in * pp


def test_table1_params_per_module():
    _, v = abstract_init(GoogLeNet(), 224)
    for name, widths in INCEPTION_V1_TABLE.items():
        got = n_params(v["params"][name])
        weights = module_weights(TABLE1_IN[name], widths)
        assert got == weights + sum(widths), name  # weights + one bias per output channel
        if name not in TABLE1_INCONSISTENT:  # the column counts weights in units of 1024 (to 2%)
            assert abs(weights / 1024 - TABLE1_PARAMS_K[name]) <= 0.02 * TABLE1_PARAMS_K[name], name


def test_total_params_paper_faithful_and_torchvision_variant():
    _, v = abstract_init(GoogLeNet(), 224)
    stem = (7 * 7 * 3 * 64 + 64) + (64 * 64 + 64) + (9 * 64 * 192 + 192)
    modules = sum(module_weights(TABLE1_IN[n], w) + sum(w) for n, w in INCEPTION_V1_TABLE.items())
    assert n_params(v["params"]) == stem + modules + 1024 * 1000 + 1000 == 6_998_552
    # torchvision's googlenet: 3×3 "5×5" branches + BN: 6,624,904 (13,004,888 with aux heads).
    tv = GoogLeNet(norm=True, lrn=False, kernel5x5=3)
    assert n_params(abstract_init(tv, 224)[1]["params"]) == 6_624_904
    tv_aux = GoogLeNet(norm=True, lrn=False, kernel5x5=3, aux_logits=True)
    assert n_params(abstract_init(tv_aux, 224)[1]["params"]) == 13_004_888


def test_torchvision_parity():
    torchvision = import_torchvision()
    for aux in (False, True):
        ref = torchvision.models.googlenet(weights=None, aux_logits=aux, init_weights=False)
        ours = GoogLeNet(norm=True, lrn=False, kernel5x5=3, aux_logits=aux)
        assert n_params(abstract_init(ours, 224)[1]["params"]) == sum(p.numel() for p in ref.parameters())


@pytest.mark.parametrize("naive", [False, True])
def test_features_match_feature_info(naive):
    model = GoogLeNet(naive=naive, num_classes=0)
    for hw in (64, 96):
        (logits, feats), _ = abstract_init(model, hw)
        assert logits is None
        for f in model.feature_info:
            assert feats[f.name].shape == (1, math.ceil(hw / f.stride), math.ceil(hw / f.stride), f.channels)
    if naive:  # naive modules add their input width: 192 + 64 + 128 + 32 = 416 after 3a
        assert feats["inception_3a"].shape[-1] == 416


def test_forward_backward_with_aux():
    # Tiny widths (same topology, 1/16 of Table 1) keep the CPU test fast.
    tiny = {k: tuple(max(2, w // 16) for w in ws) for k, ws in INCEPTION_V1_TABLE.items()}
    model = vai_jax.create_model("googlenet", num_classes=5, aux_logits=True, table=tiny)
    x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
    variables = random_variables(model, x)
    assert {"aux1", "aux2"} <= set(variables["params"])

    def loss(params):
        lg, f = model.apply({"params": params}, x, train=True, rngs={"dropout": jax.random.key(2)})
        return jnp.sum(lg ** 2) + 0.3 * jnp.sum(f["aux1"] ** 2) + 0.3 * jnp.sum(f["aux2"] ** 2), (lg, f)

    (_, (logits, feats)), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(variables["params"])
    assert logits.shape == feats["aux1"].shape == feats["aux2"].shape == (2, 5)
    for f in model.feature_info:
        assert feats[f.name].shape == (2, 32 // f.stride, 32 // f.stride, f.channels)
    for head in ("aux1", "aux2", "fc", "conv1"):
        leaves = jax.tree.leaves(grads[head])
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
        assert sum(float(jnp.sum(jnp.abs(g))) for g in leaves) > 0, head
    # Evaluation: no auxiliary outputs; without aux_logits no auxiliary parameters.
    logits, feats = jax.eval_shape(lambda: model.apply(variables, x, train=False))
    assert logits.shape == (2, 5) and "aux1" not in feats and "aux2" not in feats
    no_aux = GoogLeNet(num_classes=5, table=tiny)
    assert "aux1" not in jax.eval_shape(lambda: no_aux.init(jax.random.key(0), x, train=False))["params"]


def test_bn_variant_updates_batch_stats():
    model = vai_jax.create_model("googlenet_bn", num_classes=3)
    x = jnp.zeros((2, 32, 32, 3))
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
    (logits, _), upd = jax.eval_shape(lambda v: model.apply(
        v, x, train=True, mutable=["batch_stats"], rngs={"dropout": jax.random.key(1)}), variables)
    assert logits.shape == (2, 3)
    assert jax.tree.structure(upd["batch_stats"]) == jax.tree.structure(variables["batch_stats"])
    assert "bias" not in variables["params"]["conv1"]["conv"]  # BN replaces the conv bias


def test_bad_input():
    with pytest.raises(ValueError, match="x"):
        GoogLeNet().init(jax.random.key(0), jnp.zeros((32, 32, 3)), train=False)
