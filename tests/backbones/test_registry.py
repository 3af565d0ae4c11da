"""create_model's argument checks, and every family's input checks: the minimum input size
(exact: it works, one pixel less raises naming the minimum) and the channel count of the
parameters. Shapes only (jax.eval_shape), so nothing is compiled."""
import functools

import jax
import jax.numpy as jnp
import pytest

import vai_jax
from vai_jax.backbones.registry import create_model

_KEYS = {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}


def _init_shapes(model, side, channels=3):
    x = jax.ShapeDtypeStruct((1, side, side, channels), jnp.float32)
    return jax.eval_shape(functools.partial(model.init, train=False), _KEYS, x)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"num_classes": True}, TypeError, "num_classes must be an int; got bool True"),
    ({"num_classes": 10.0}, TypeError, "num_classes must be an int; got float"),
    ({"num_classes": -1}, ValueError, "num_classes must be an int >= 0; got -1"),
    ({"dtype": jnp.int32}, ValueError, "dtype must be a floating dtype"),
    ({"dtype": "float3"}, ValueError, "dtype must be a floating dtype"),
    ({"widthz": 2}, TypeError, r"create_model\('resnet18'\): .*unexpected keyword argument "
                               r"'widthz'"),
])
def test_create_model_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        create_model("resnet18", **kwargs)
    with pytest.raises(ValueError, match="unknown model name 'resnet19'; choose one of: alexnet"):
        vai_jax.create_model("resnet19")


# One model per family (and per layout that changes the minimum), thin or short where the
# minimum depends only on the layout, with its minimum input side.
_FAMILIES = {
    "alexnet": ("alexnet", dict(widths=(4, 4, 4, 4, 4), hidden=8), 63),
    "bagnet9": ("bagnet9", dict(widths=(2, 2, 2, 2), stem_width=4, stage_sizes=(1, 1, 1, 1)), 9),
    "bagnet33": ("bagnet33", dict(widths=(2, 2, 2, 2), stem_width=4, stage_sizes=(1, 1, 1, 1)),
                 33),
    "densenet": ("densenet121", dict(block_config=(1, 1, 1, 1), growth_rate=4,
                                     num_init_features=8), 29),
    "googlenet": ("googlenet", {}, 31),
    "googlenet_pool4_2": ("googlenet", dict(pool4_window=2), 15),
    "highway": ("highway_conv", dict(widths=(4, 4, 4), layers_per_stage=(1, 1, 1)), 4),
    "inception_v3": ("inception_v3", {}, 75),
    "inception_v4": ("inception_v4", {}, 75),
    "inception_resnet_v2": ("inception_resnet_v2", {}, 75),
    "mobilenet_v1": ("mobilenet_v1_025", {}, 1),
    "mobilenet_v2": ("mobilenet_v2", dict(alpha=0.25), 1),
    "mobilenet_v3": ("mobilenet_v3_small", {}, 1),
    "resnet": ("resnet18", dict(widths=(4, 4, 4, 4), stem_width=4), 1),
    "shufflenet_v1": ("shufflenet_v1", {}, 1),
    "shufflenet_v2": ("shufflenet_v2_x0_5", {}, 1),
    "squeezenet1_0": ("squeezenet1_0", {}, 21),
    "squeezenet1_1": ("squeezenet1_1", {}, 17),
    "vgg": ("vgg11", dict(widths=(4, 4, 4, 4, 4), hidden=8), 32),
}


@pytest.mark.parametrize("case", sorted(_FAMILIES))
def test_minimum_input_size_and_channels_are_checked_by_name(case):
    """At its minimum side every feature map is non-empty; one pixel less raises naming the
    minimum; an input with another channel count than the parameters raises naming both."""
    name, fields, minimum = _FAMILIES[case]
    model = create_model(name, num_classes=3, **fields)
    assert model.min_input_size == minimum
    x = jax.ShapeDtypeStruct((1, minimum, minimum, 3), jnp.float32)
    (_, features), variables = jax.eval_shape(
        functools.partial(model.init_with_output, train=False), _KEYS, x)
    assert all(0 not in f.shape for f in features.values())
    if minimum > 1:
        with pytest.raises(ValueError, match=rf"x must be at least {minimum}×{minimum} pixels "
                                             rf"for .*; got shape \(1, {minimum - 1}, "
                                             rf"{minimum + 5}, 3\)"):
            model.init(_KEYS, jnp.zeros((1, minimum - 1, minimum + 5, 3)), train=False)
    gray = jax.ShapeDtypeStruct((1, minimum, minimum, 1), jnp.float32)
    with pytest.raises(ValueError, match=r"x has 1 channels but the parameters of this .* were "
                                         r"made for 3 \(.*kernel has shape"):
        jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, gray)


def test_every_model_states_its_minimum_input_size():
    padded = ("resnet", "resnext", "se_resnet", "wide_resnet", "mobilenet", "shufflenet")
    for name in vai_jax.list_models():
        size = create_model(name).min_input_size
        assert isinstance(size, int) and size >= 1, name
        if name.startswith(padded):
            assert size == 1, name  # padded convolutions and pools
        if name.startswith("inception"):
            assert size == 75, name
