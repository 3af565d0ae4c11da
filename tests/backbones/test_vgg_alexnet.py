"""VGG (paper Table 1 configurations) and AlexNet: parameter counts (torchvision and the VGG
paper's Table 2), A-LRN's normalisation against a NumPy reference, dropout, feature shapes."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vai_jax
from vai_jax.backbones import alexnet, vgg
from tests.backbones.zoo_checks import assert_forward_backward, n_params, torchvision_count

TORCHVISION = {
    "vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544, "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840, "vgg13_bn": 133_053_736, "vgg16_bn": 138_365_992,
    "vgg19_bn": 143_678_248, "alexnet": 61_100_840,
}
# Simonyan & Zisserman 2015, Table 2 (millions).
PAPER_MILLIONS = {"vgg11": 133, "vgg11_lrn": 133, "vgg13": 133, "vgg16_c": 134, "vgg16": 138,
                  "vgg19": 144}
TINY = dict(widths=(4, 4, 8, 8, 8), hidden=16)


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_param_counts_match_torchvision(name):
    assert n_params(vai_jax.create_model(name), hw=224 if name == "alexnet" else 32) == \
        TORCHVISION[name]


def test_param_counts_match_paper_table2():
    for name, millions in PAPER_MILLIONS.items():
        assert round(n_params(vai_jax.create_model(name), hw=32) / 1e6) == millions, name
    # C = D with the third conv of stages 3-5 as 1x1: 8 fewer weights per (in, out) pair.
    saved = 8 * (256 * 256 + 2 * 512 * 512)
    assert n_params(vai_jax.create_model("vgg16_c"), hw=32) == TORCHVISION["vgg16"] - saved


def test_torchvision_parity():
    for name, expected in TORCHVISION.items():
        assert torchvision_count(name) == expected, name


def test_vgg11_lrn_shapes_and_lrn_reference():
    model = vai_jax.create_model("vgg11_lrn", num_classes=3, **TINY)
    x = jax.random.normal(jax.random.key(0), (2, 36, 40, 3))
    assert_forward_backward(model, x, 3, rounding="floor", rngs={"dropout": jax.random.key(1)},
                     abstract=True)
    variables = jax.jit(functools.partial(model.init, train=False))(jax.random.key(0), x)
    (_, feats), inter = jax.jit(functools.partial(
        model.apply, train=False, capture_intermediates=True))(variables, x)
    a = np.asarray(inter["intermediates"]["stage1"]["conv1"]["__call__"][0], np.float64)
    # Krizhevsky et al. 2012: b = a / (k + alpha * sum_{5 neighbours} a^2)^beta, k=2, 1e-4, 0.75.
    c = a.shape[-1]
    sums = np.stack([np.sum(a[..., max(0, i - 2):min(c, i + 3)] ** 2, axis=-1)
                     for i in range(c)], axis=-1)
    b = a / (2.0 + 1e-4 * sums) ** 0.75
    h, w = b.shape[1] // 2, b.shape[2] // 2
    pooled = b[:, :2 * h, :2 * w].reshape(2, h, 2, w, 2, c).max(axis=(2, 4))
    np.testing.assert_allclose(feats["stage1"], pooled, rtol=1e-5, atol=1e-6)


def test_vgg16_c_bn_forward_backward():
    model = vai_jax.create_model("vgg16_c_bn", num_classes=2, **TINY)
    assert_forward_backward(model, jax.random.normal(jax.random.key(0), (1, 32, 32, 3)), 2,
                     rounding="floor", rngs={"dropout": jax.random.key(1)})


def test_alexnet_forward_backward():
    model = vai_jax.create_model("alexnet", num_classes=4, widths=(4, 6, 8, 8, 8), hidden=8)
    assert_forward_backward(model, jax.random.normal(jax.random.key(0), (1, 67, 64, 3)), 4,
                     rounding=2, rngs={"dropout": jax.random.key(1)})


def test_alexnet_feature_sizes_at_224():
    model = vai_jax.create_model("alexnet", num_classes=0)
    out = jax.eval_shape(lambda: model.init_with_output(
        jax.random.key(0), jnp.zeros((1, 224, 224, 3)), train=False)[0])
    assert out[0] is None
    assert {k: v.shape for k, v in out[1].items()} == {
        "stage1": (1, 27, 27, 64), "stage2": (1, 13, 13, 192), "stage3": (1, 6, 6, 256)}


def test_dropout_uses_rng_only_in_training():
    model = vai_jax.create_model("vgg11", num_classes=3, **TINY)
    x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
    variables = jax.jit(functools.partial(model.init, train=False))(jax.random.key(0), x)
    apply = jax.jit(model.apply, static_argnames="train")
    e1, _ = apply(variables, x, train=False)
    e2, _ = apply(variables, x, train=False)
    np.testing.assert_array_equal(e1, e2)
    t1, _ = apply(variables, x, train=True, rngs={"dropout": jax.random.key(1)})
    t2, _ = apply(variables, x, train=True, rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(t1, t2)
    with pytest.raises(Exception, match="dropout"):
        model.apply(variables, x, train=True)


def test_any_input_size_same_params_and_no_classifier():
    model = vai_jax.create_model("vgg13", num_classes=5, **TINY)
    shapes = [jax.eval_shape(lambda s=s: model.init(jax.random.key(0), jnp.zeros((1, *s, 3)),
                                                    train=False))
              for s in ((32, 32), (48, 80), (224, 224))]
    assert shapes[0]["params"]["fc1"]["kernel"].shape == (7 * 7 * 8, 16)
    assert all(jax.tree.structure(s) == jax.tree.structure(shapes[0]) for s in shapes)
    assert all(jax.tree.map(lambda a, b: a.shape == b.shape, s, shapes[0]) for s in shapes)
    headless = vai_jax.create_model("vgg13", num_classes=0, **TINY)
    v = jax.eval_shape(lambda: headless.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)),
                                             train=False))
    assert not any(k.startswith("fc") for k in v["params"])


def test_feature_info_and_registry():
    for name in list(vgg.MODELS) + list(alexnet.MODELS):
        model = vai_jax.create_model(name)
        info = model.feature_info
        assert [f.stride for f in info] == sorted(f.stride for f in info)
        assert info[-1].stride == 32
    with pytest.raises(ValueError, match="x must have rank 4"):
        vai_jax.create_model("alexnet").init(jax.random.key(0), jnp.zeros((64, 64, 3)),
                                             train=False)
