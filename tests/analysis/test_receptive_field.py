"""Receptive fields from the traced architecture vs the chain formula and vs gradients."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tests.analysis.analysis_testing import random_variables

import vai_jax
from vai_jax.analysis.layers import layer_outputs, layer_shapes
from vai_jax.analysis.receptive_field import (gradient_support, layer_receptive_field,
                                              receptive_field, support_box)
from vai_jax.nn import receptive_field as chain_rf



class LinearStack(nn.Module):
    """conv3 (pad 1) -> conv3/2 (pad 1) -> conv3 dilation 2 (pad 2) -> avgpool 2/2; no
    activations, so every weight path is live and the gradient support is the whole field
    (the dilated taps, 4 pixels apart, are closer than the 5-pixel field below: no holes)."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        del train
        x = nn.Conv(4, (3, 3), padding=((1, 1), (1, 1)), name="c1")(x)
        x = nn.Conv(4, (3, 3), strides=2, padding=((1, 1), (1, 1)),
                    name="c2")(x)
        x = nn.Conv(3, (3, 3), kernel_dilation=2, padding=((2, 2), (2, 2)),
                    name="c3")(x)
        return nn.avg_pool(x, (2, 2), strides=(2, 2))


def _linear_stack():
    model = LinearStack()
    v = random_variables(model, (1, 32, 32, 3))
    return model, v


def test_known_stack_matches_formula_and_gradients():
    model, v = _linear_stack()
    rf = layer_receptive_field(model, v, "logits", (1, 32, 32, 3), train=False)
    # Chain formula: kernels 3, 3, 3 dilated 2, 2 (pool); strides 1, 2, 1, 2.
    assert rf.size == (chain_rf([3, 3, 3, 2], [1, 1, 2, 1], [1, 2, 1, 2]),) * 2 == (15, 15)
    assert rf.jump == (4, 4)
    # Padding before: 1 (jump 1) + 1 (jump 1) + 2 (jump 2) + 0 = 6.
    assert rf.start == (-6, -6)
    fn = lambda x: model.apply(v, x, train=False)
    x = jax.random.normal(jax.random.PRNGKey(1), (1, 32, 32, 3))
    units = [(0, 0), (3, 5), (7, 7), (7, 0)]
    got = gradient_support(fn, x, units, channel=1)
    for mask, (i, j) in zip(got, units):
        np.testing.assert_array_equal(mask, rf.mask(i, j))
    # An interior unit's field is the full 15 x 15 square.
    assert support_box(got[1]) == (6, 14, 21, 29) == rf.box(3, 5)


def test_receptive_field_of_a_plain_function():
    def fn(x):
        x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1),
                                  ((0, 0), (1, 1), (1, 1), (0, 0)))
        return x[:, 1::2, :, :]

    rf = receptive_field(fn, (1, 16, 16, 2))
    # pool: size 3, jump 2, start -1; rows then sliced from 1 with stride 2.
    assert rf.jump == (4, 2) and rf.size == (3, 3) and rf.start == (1, -1)


def test_cifar_resnet_stages_match_chain_formula():
    # A CIFAR ResNet-8 (one basic unit per stage, option-A shortcuts): the residual branches
    # and the strided, zero-padded shortcuts must combine into the plain chain's field.
    model = vai_jax.create_model("resnet20_cifar", num_classes=6, stage_sizes=(1, 1, 1))
    v = random_variables(model, (1, 16, 16, 3))
    kernels, strides = [3], [1]  # stem
    expected = {"stem": chain_rf(kernels, None, strides)}
    for stage, first_stride in ((1, 1), (2, 2), (3, 2)):
        kernels += [3, 3]
        strides += [first_stride, 1]
        expected[f"stage{stage}"] = chain_rf(kernels, None, strides)
    assert expected["stage3"] == 3 + 4 + (2 + 4) + (4 + 8)
    for name, size in expected.items():
        rf = layer_receptive_field(model, v, name, (1, 16, 16, 3), train=False)
        assert rf.size == (size, size), name
    rf = layer_receptive_field(model, v, "stage2", (1, 16, 16, 3), train=False)
    assert rf.jump == (2, 2) and rf.start == (-(expected["stage2"] // 2),) * 2
    # With ReLUs the gradient support can only be smaller than the field, never outside it.
    fn = lambda x: layer_outputs(model, v, x, ["stage2"], train=False)["stage2"]
    x = jax.random.normal(jax.random.PRNGKey(2), (1, 16, 16, 3))
    active = np.argwhere(np.asarray(jax.jit(fn)(x))[0, :, :, 0] > 0)  # units with a gradient
    units = [tuple(active[0]), tuple(active[len(active) // 2]), tuple(active[-1])]
    for mask, (i, j) in zip(gradient_support(fn, x, units, channel=0), units):
        assert mask.any()
        assert not (mask & ~rf.mask(i, j)).any()
    assert layer_receptive_field(model, v, "fc", (1, 16, 16, 3), train=False).is_global


def test_resnet18_published_receptive_field():
    model = vai_jax.create_model("resnet18", num_classes=10)
    v = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3)),
                                          train=False))
    rf = layer_receptive_field(model, v, "stage4", (1, 64, 64, 3), train=False)
    assert rf.size == (435, 435) and rf.jump == (32, 32)  # the well-known ResNet-18 value


def test_unknown_layer_lists_valid_names():
    model, v = _linear_stack()
    with pytest.raises(ValueError, match=r"no layer named 'c9'.*c1, c2, c3"):
        layer_receptive_field(model, v, "c9", (1, 32, 32, 3), train=False)
    assert list(layer_shapes(model, v, (1, 32, 32, 3), train=False)) == ["c1", "c2", "c3",
                                                                          "logits"]
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        layer_outputs(model, v, jnp.zeros((1, 32, 32, 3)), ["c1", "nope"], train=False)
