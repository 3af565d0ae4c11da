"""Per-patch class evidence: BagNet's own map and the generic 'linear head at every position'."""
import jax
import numpy as np
import pytest
from tests.analysis.analysis_testing import random_variables

from vai_jax.analysis.bagnet_evidence import class_maps, evidence_maps
from vai_jax.analysis.plain_cnn import PlainCNN
from vai_jax.analysis.receptive_field import layer_receptive_field
from vai_jax.backbones.bagnet import BagNet


def test_generic_evidence_averages_to_the_logits():
    model = PlainCNN(widths=(4, 6), pool_after=(1,), num_classes=3)
    v = random_variables(model, (1, 12, 12, 3), bias_std=0.2)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 12, 12, 3))
    ev, logits = evidence_maps(model, v, x, train=False)
    assert ev.shape == (2, 6, 6, 3)
    np.testing.assert_allclose(np.asarray(ev).mean((1, 2)), logits, rtol=1e-5, atol=1e-5)
    f = np.asarray(model.apply(v, x, train=False)[1]["conv2"], np.float64)
    w = np.asarray(v["params"]["fc"]["kernel"], np.float64)
    b = np.asarray(v["params"]["fc"]["bias"], np.float64)
    np.testing.assert_allclose(ev[1, 2, 3], f[1, 2, 3] @ w + b, rtol=1e-5, atol=1e-5)
    maps = class_maps(ev, [0, 2])
    assert maps.shape == (2, 6, 6)
    np.testing.assert_allclose(maps[1], ev[1, :, :, 2] - ev[1, :, :, 2].mean(), atol=1e-5)
    with pytest.raises(ValueError, match="no dense layer named 'head'.*fc"):
        evidence_maps(model, v, x, classifier="head", train=False)
    with pytest.raises(ValueError, match="no layer named 'stage7'"):
        evidence_maps(model, v, x, feature="stage7", train=False)
    with pytest.raises(ValueError, match="reads 6 channels"):
        evidence_maps(model, v, x, feature="conv1", train=False)


def test_bagnet_evidence_and_patch_size():
    model = BagNet(num_3x3=(1, 1, 0, 0), stage_sizes=(1, 1, 1, 1), widths=(2, 2, 2, 2),
                   stem_width=4, num_classes=3)
    v = random_variables(model, (1, 40, 40, 3))
    x = jax.random.normal(jax.random.PRNGKey(1), (1, 40, 40, 3))
    ev, logits = jax.jit(lambda v, x: evidence_maps(model, v, x, train=False))(v, x)
    own = jax.jit(lambda v, x: model.apply(v, x, train=False)[1]["evidence"])(v, x)
    np.testing.assert_allclose(np.asarray(ev), own, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ev).mean((1, 2)), logits, rtol=1e-5, atol=1e-6)
    # Our traced receptive field agrees with the BagNet's own patch size (9 px).
    rf = layer_receptive_field(model, v, "evidence", (1, 40, 40, 3), train=False)
    assert rf.size == (model.receptive_field,) * 2 == (9, 9)
