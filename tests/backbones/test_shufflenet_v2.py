"""ShuffleNet V2 (0.5×, 1×, 1.5×, 2×): torchvision parameter counts, the unit's channel
bookkeeping, features, forward and backward."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vai_jax
from vai_jax.analysis import summarize
from vai_jax.backbones.shufflenet_v2 import ShuffleV2Unit
from tests.backbones.zoo_checks import (abstract_init, assert_forward_backward,
                                        torchvision_count)

# torchvision 0.28's weight tables, 1000 classes: "num_params" and "_ops" (GMACs at 224×224).
COUNTS = {"shufflenet_v2_x0_5": 1_366_792, "shufflenet_v2_x1_0": 2_278_604,
          "shufflenet_v2_x1_5": 3_503_624, "shufflenet_v2_x2_0": 7_393_996}
GMACS = {"shufflenet_v2_x0_5": 0.04, "shufflenet_v2_x1_0": 0.145, "shufflenet_v2_x1_5": 0.296,
         "shufflenet_v2_x2_0": 0.583}


@pytest.mark.parametrize("name", list(COUNTS))
def test_params_and_macs_match_torchvision(name):
    s = summarize(vai_jax.create_model(name), (1, 224, 224, 3), train=False)
    assert s.params == COUNTS[name]
    assert round(s.macs / 1e9, 3) == GMACS[name]


def test_torchvision_parity():
    for name, count in COUNTS.items():
        assert torchvision_count(name) == count, name


def test_stride1_unit_passes_first_half_through_shuffled():
    # Stride 1: channels [0, C/2) are copied; after the 2-group shuffle they sit at even slots.
    unit = ShuffleV2Unit(8)
    x = jax.random.normal(jax.random.key(0), (1, 5, 5, 8))
    y, _ = unit.init_with_output(jax.random.key(1), x, train=False)
    np.testing.assert_array_equal(np.asarray(y[..., 0::2]), np.asarray(x[..., :4]))
    with pytest.raises(ValueError, match="input channels"):
        ShuffleV2Unit(8).init(jax.random.key(0), jnp.zeros((1, 5, 5, 6)), train=False)


def test_features_match_feature_info():
    model = vai_jax.create_model("shufflenet_v2_x0_5", num_classes=0)
    for hw in (64, 63):
        (logits, feats), _ = abstract_init(model, hw)
        assert logits is None
        for f in model.feature_info:
            side = -(-hw // f.stride)
            assert feats[f.name].shape == (1, side, side, f.channels), (f, hw)


def test_forward_backward_tiny():
    model = vai_jax.create_model("shufflenet_v2_x0_5", num_classes=5, stage_units=(1, 1, 1))
    x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
    assert_forward_backward(model, x, 5)


def test_bad_scale():
    with pytest.raises(ValueError, match="scale"):
        vai_jax.create_model("shufflenet_v2_x1_0", scale=0.75).feature_info
