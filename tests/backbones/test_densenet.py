"""DenseNet-BC: torchvision parameter counts, channel bookkeeping, forward/backward (tiny)."""
import jax
import jax.numpy as jnp
import pytest

import vai_jax
from vai_jax.backbones import densenet
from tests.backbones.zoo_checks import assert_forward_backward, n_params, torchvision_count

TORCHVISION = {"densenet121": 7_978_856, "densenet161": 28_681_000,
               "densenet169": 14_149_480, "densenet201": 20_013_928}


def densenet_count(k, blocks, init, bn_size=4, classes=1000):
    """Closed form, layer by layer (BN has 2 parameters per channel)."""
    total = 49 * 3 * init + 2 * init
    c = init
    for i, n in enumerate(blocks):
        for _ in range(n):
            total += 2 * c + c * bn_size * k + 2 * bn_size * k + 9 * bn_size * k * k
            c += k
        if i < len(blocks) - 1:
            total += 2 * c + c * (c // 2)
            c //= 2
    return total + 2 * c + c * classes + classes


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_param_counts(name):
    model = vai_jax.create_model(name)
    assert n_params(model, hw=32) == TORCHVISION[name]
    assert TORCHVISION[name] == densenet_count(model.growth_rate, model.block_config,
                                               model.num_init_features)


def test_torchvision_parity():
    for name, expected in TORCHVISION.items():
        assert torchvision_count(name) == expected, name


def test_tiny_forward_backward_and_channels():
    model = vai_jax.create_model("densenet121", num_classes=3, growth_rate=4,
                                 block_config=(2, 1, 1, 1), num_init_features=8, bn_size=2,
                                 drop_rate=0.1)
    x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
    assert_forward_backward(model, x, 3, rounding=0, rngs={"dropout": jax.random.key(1)})
    # stage channels: in + L*k, then halved by each transition
    assert [f.channels for f in model.feature_info] == [8, 16, 12, 10, 9]


def test_features_at_224_and_headless():
    model = vai_jax.create_model("densenet169", num_classes=0)
    logits, feats = jax.eval_shape(lambda: model.init_with_output(
        jax.random.key(0), jnp.zeros((1, 224, 224, 3)), train=False)[0])
    assert logits is None
    for f in model.feature_info:
        assert feats[f.name].shape == (1, 224 // f.stride, 224 // f.stride, f.channels)
    assert sorted(densenet.MODELS) == sorted(TORCHVISION)
