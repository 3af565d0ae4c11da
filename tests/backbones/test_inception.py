"""Inception v3, Inception v4 and Inception-ResNet-v2: parameter counts (torchvision / released
layouts), feature strides and channels, the auxiliary head, abstract forward and backward
(jax.eval_shape: these nets need >= 75 px inputs, too slow to run on the test CPU)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vai_jax
from vai_jax.backbones.inception_v4 import Block35, InceptionResNetV2, InceptionV4
from tests.backbones.zoo_checks import tree_size as n_params  # noqa: E402


def abstract(model, hw, *, train=False, b=1):
    x = jnp.zeros((b, hw, hw, 3))
    v = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
    out = jax.eval_shape(lambda v: model.apply(v, x, train=train, rngs={"dropout": jax.random.key(1)},
                                               mutable=["batch_stats"] if train else False), v)
    return v, out[0] if train else out


# torchvision 0.28 (inception_v3) and timm / Cadene's pretrainedmodels (the released TF-slim
# layouts of Szegedy et al. 2017), 1000 classes.
COUNTS = {
    ("inception_v3", False): 23_834_568,
    ("inception_v3", True): 27_161_264,
    ("inception_v4", False): 42_679_816,
    ("inception_resnet_v2", False): 55_843_464,
}


@pytest.mark.parametrize("name,aux", list(COUNTS))
def test_param_counts(name, aux):
    kw = {"aux_logits": True} if aux else {}
    v = jax.eval_shape(lambda: vai_jax.create_model(name, **kw).init(
        jax.random.key(0), jnp.zeros((1, 299, 299, 3)), train=False))
    assert n_params(v["params"]) == COUNTS[name, aux]


def test_torchvision_parity():
    try:
        torchvision = pytest.importorskip("torchvision")
    except Exception as e:  # noqa: BLE001 - a mismatched torch/torchvision pair fails on import
        if isinstance(e, pytest.skip.Exception):
            raise
        pytest.skip(f"torchvision unusable: {e}")
    for aux in (False, True):
        ref = torchvision.models.inception_v3(weights=None, aux_logits=aux, init_weights=False)
        assert sum(p.numel() for p in ref.parameters()) == COUNTS["inception_v3", aux]


@pytest.mark.parametrize("name", ["inception_v3", "inception_v4", "inception_resnet_v2"])
def test_features_strides_and_channels(name):
    model = vai_jax.create_model(name, num_classes=7)
    # Unpadded convs make sizes ~H/stride; growing the input by 64 px must grow each feature
    # map by exactly 64 / stride.
    (_, f1), (logits, f2) = abstract(model, 107)[1], abstract(model, 171)[1]
    assert logits.shape == (1, 7)
    for f in model.feature_info:
        assert f1[f.name].shape[-1] == f2[f.name].shape[-1] == f.channels
        assert f2[f.name].shape[1] - f1[f.name].shape[1] == 64 // f.stride, f
        assert abs(f1[f.name].shape[1] - 107 / f.stride) < 4
    assert [f.stride for f in model.feature_info] == [2, 4, 8, 16, 32]
    with pytest.raises(ValueError, match="75"):  # smaller than the smallest allowed input
        model.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)), train=False)


@pytest.mark.parametrize("name", ["inception_v3", "inception_v4", "inception_resnet_v2"])
def test_abstract_forward_backward(name):
    model = vai_jax.create_model(name, num_classes=4)
    x = jnp.zeros((2, 75, 75, 3))
    v = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))

    def loss(params, batch_stats):
        (lg, feats), _ = model.apply({"params": params, "batch_stats": batch_stats}, x, train=True,
                                     mutable=["batch_stats"], rngs={"dropout": jax.random.key(1)})
        return jnp.sum(lg ** 2), (lg, feats)

    grads, (logits, feats) = jax.eval_shape(jax.grad(loss, has_aux=True), v["params"], v["batch_stats"])
    assert jax.tree.structure(grads) == jax.tree.structure(v["params"])
    assert logits.shape == (2, 4)
    assert feats["stage4"].shape[1:3] == (1, 1)  # the smallest input: 1×1 at stride 32
    headless = vai_jax.create_model(name, num_classes=0)
    v0 = jax.eval_shape(lambda: headless.init(jax.random.key(0), x, train=False))
    assert "fc" not in v0["params"]


def test_inception_v3_aux_head():
    model = vai_jax.create_model("inception_v3", num_classes=6, aux_logits=True)
    v, (logits, feats) = abstract(model, 299, train=True, b=2)
    assert "aux_logits" in v["params"]
    assert logits.shape == feats["aux"].shape == (2, 6)
    _, (_, feats_eval) = abstract(model, 299)
    assert "aux" not in feats_eval
    with pytest.raises(ValueError, match="299"):
        abstract(model, 200, train=True)
    v0, (_, f0) = abstract(vai_jax.create_model("inception_v3", num_classes=6), 299, train=True)
    assert "aux_logits" not in v0["params"] and "aux" not in f0


def test_inception_resnet_residual_scaling():
    # x + scale · branch: with scale 0 the block is relu(x), whatever the weights.
    x = jnp.asarray(np.random.default_rng(0).standard_normal((1, 3, 3, 8)), jnp.float32)

    @jax.jit
    def outputs(x):  # the up-projection matches C_in, so a thin input keeps this cheap
        v = Block35(scale=0.0).init(jax.random.key(1), x, train=False)
        return [Block35(scale=s).apply(v, x, train=False) for s in (0.0, 1.0, 0.17)]

    y0, y1, y2 = outputs(x)
    np.testing.assert_allclose(y0, jax.nn.relu(x))
    assert not np.allclose(y1, y2)
    assert InceptionResNetV2().residual_scales == (0.17, 0.10, 0.20)
    assert InceptionV4().blocks == (4, 7, 3)
