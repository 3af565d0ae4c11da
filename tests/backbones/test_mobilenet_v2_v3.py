"""MobileNetV2 and MobileNetV3 (Large, Small): torchvision parameter counts, the width
multiplier, features, forward and backward."""
import jax
import jax.numpy as jnp
import pytest

import vai_jax
from vai_jax.analysis import summarize
from vai_jax.nn import make_divisible
from tests.backbones.zoo_checks import (abstract_init, assert_forward_backward,
                                        torchvision_count)

# torchvision 0.28's weight tables, 1000 classes: "num_params" and "_ops" (GMACs at 224×224).
COUNTS = {"mobilenet_v2": 3_504_872, "mobilenet_v3_large": 5_483_032,
          "mobilenet_v3_small": 2_542_856}
GMACS = {"mobilenet_v2": 0.301, "mobilenet_v3_large": 0.217, "mobilenet_v3_small": 0.057}


@pytest.mark.parametrize("name", list(COUNTS))
def test_params_and_macs_match_torchvision(name):
    s = summarize(vai_jax.create_model(name), (1, 224, 224, 3), train=False)
    assert s.params == COUNTS[name]
    assert round(s.macs / 1e9, 3) == GMACS[name]


def test_torchvision_parity():
    for name, count in COUNTS.items():
        assert torchvision_count(name) == count, name


def test_make_divisible():
    # TF-slim's rounding: nearest multiple of 8, never more than 10% below the value.
    assert [make_divisible(v) for v in (32, 16 * 0.75, 24 * 0.5, 1.0, 92.0, 100.0)] == \
        [32, 16, 16, 8, 96, 104]


@pytest.mark.parametrize("name", list(COUNTS))
def test_features_match_feature_info(name):
    model = vai_jax.create_model(name, num_classes=0)
    for hw in (64, 63):
        (logits, feats), _ = abstract_init(model, hw)
        assert logits is None
        for f in model.feature_info:
            side = -(-hw // f.stride)
            assert feats[f.name].shape == (1, side, side, f.channels), (f, hw)
    assert [f.stride for f in model.feature_info] == [2, 4, 8, 16, 32]


def test_width_multiplier():
    v2 = vai_jax.create_model("mobilenet_v2", alpha=0.5)
    assert [f.channels for f in v2.feature_info] == [16, 16, 16, 48, 1280]
    v3 = vai_jax.create_model("mobilenet_v3_small", alpha=0.75)
    assert v3.feature_info[0].channels == 16 and v3.feature_info[-1].channels == 6 * 72


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_small"])
def test_forward_backward_abstract(name):
    # Shapes only (nothing compiled): the numerics are tests/weights' torchvision parity.
    model = vai_jax.create_model(name, num_classes=5, alpha=0.35)
    x = jnp.zeros((2, 33, 33, 3))
    assert_forward_backward(model, x, 5, rngs={"dropout": jax.random.key(2)}, abstract=True)


def test_bad_input():
    with pytest.raises(ValueError, match="x"):
        vai_jax.create_model("mobilenet_v2").init(jax.random.key(0), jnp.zeros((32, 32, 3)),
                                                  train=False)
