"""Residual units against their definitions: the five orderings of He et al. 2016b (Fig. 4),
option-A shortcut, zero_init_last, squeeze-and-excitation by hand, the receptive field of the
dilated k×k convolutions."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vai_jax.nn import BasicUnit, BottleneckUnit, SqueezeExcite, padding_shortcut
from vai_jax.nn.residual import UNIT_ORDERS


def test_padding_shortcut_subsamples_and_zero_pads():
    x = np.random.default_rng(0).normal(size=(2, 5, 6, 3)).astype(np.float32)
    y = np.asarray(padding_shortcut(jnp.asarray(x), 7, 2))
    assert y.shape == (2, 3, 3, 7)
    np.testing.assert_array_equal(y[..., :3], x[:, ::2, ::2, :])
    np.testing.assert_array_equal(y[..., 3:], 0.0)
    with pytest.raises(ValueError, match="out_channels"):
        padding_shortcut(jnp.asarray(x), 2, 1)


def test_squeeze_excite_by_hand():
    x = jax.random.normal(jax.random.key(0), (2, 4, 5, 8))
    se = SqueezeExcite(hidden_channels=2)
    variables = se.init(jax.random.key(1), x)
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), variables["params"])
    xs = np.asarray(x, np.float64)
    s = xs.mean(axis=(1, 2))
    s = np.maximum(s @ p["fc1"]["kernel"] + p["fc1"]["bias"], 0)
    gate = 1 / (1 + np.exp(-(s @ p["fc2"]["kernel"] + p["fc2"]["bias"])))
    np.testing.assert_allclose(se.apply(variables, x), xs * gate[:, None, None, :], rtol=1e-5,
                               atol=1e-6)


def bn_train(v, eps=1e-5):
    v = np.asarray(v, np.float64)
    mean = v.mean(axis=(0, 1, 2))
    var = (v ** 2).mean(axis=(0, 1, 2)) - mean ** 2
    return (v - mean) / np.sqrt(var + eps)


@pytest.mark.parametrize("order", UNIT_ORDERS)
def test_unit_orders_follow_fig4(order):
    x = jax.random.normal(jax.random.key(0), (4, 6, 6, 8))
    unit = BasicUnit(features=8, unit_order=order)
    variables = unit.init(jax.random.key(1), x, train=False)
    y, state = unit.apply(variables, x, train=True, mutable=["batch_stats", "intermediates"],
                               capture_intermediates=True)
    inter = {k: np.asarray(v["__call__"][0], np.float64) for k, v in
             state["intermediates"].items() if k != "__call__"}
    y, xs = np.asarray(y, np.float64), np.asarray(x, np.float64)
    tol = dict(rtol=1e-4, atol=1e-4)
    if order == "original":        # conv-BN-ReLU-conv-BN, add, ReLU
        np.testing.assert_allclose(y, np.maximum(inter["bn2"] + xs, 0), **tol)
    elif order == "bn_after_add":  # ... conv, add, BN, ReLU
        np.testing.assert_allclose(y, np.maximum(bn_train(inter["conv2"] + xs), 0), **tol)
    elif order == "relu_before_add":  # ... conv-BN-ReLU, add
        np.testing.assert_allclose(y, np.maximum(inter["bn2"], 0) + xs, **tol)
    elif order == "relu_preact":   # ReLU-conv-BN-ReLU-conv-BN, add
        np.testing.assert_allclose(y, inter["bn2"] + xs, **tol)
        np.testing.assert_allclose(inter["bn2"], bn_train(inter["conv2"]), **tol)
    else:                          # BN-ReLU-conv-BN-ReLU-conv, add
        np.testing.assert_allclose(y, inter["conv2"] + xs, **tol)
        np.testing.assert_allclose(inter["bn1"], bn_train(xs), **tol)
    if order in ("original", "bn_after_add"):
        assert (y >= 0).all()
    else:  # no activation after the addition: the output can be negative
        assert (y < 0).any()
    if order == "relu_before_add":
        assert (y - xs >= -1e-6).all()


@pytest.mark.parametrize("order", UNIT_ORDERS)
def test_zero_init_last_makes_identity(order):
    x = jax.random.normal(jax.random.key(0), (2, 5, 5, 8))
    unit = BottleneckUnit(features=8, width=4, unit_order=order, zero_init_last=True)
    variables = unit.init(jax.random.key(1), x, train=False)
    y, _ = unit.apply(variables, x, train=True, mutable=["batch_stats"])
    xs = np.asarray(x, np.float64)
    expected = {"original": np.maximum(xs, 0), "bn_after_add": np.maximum(bn_train(xs), 0)}.get(
        order, xs)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shortcut,has_proj", [("padding", False), ("projection", True),
                                               ("projection_all", True)])
def test_shortcut_options(shortcut, has_proj):
    x = jax.random.normal(jax.random.key(0), (2, 7, 7, 4))
    unit = BasicUnit(features=8, strides=2, shortcut=shortcut)
    variables = unit.init(jax.random.key(1), x, train=False)
    assert ("shortcut" in variables["params"]) == has_proj
    y, _ = unit.apply(variables, x, train=True, mutable=["batch_stats"])
    assert y.shape == (2, 4, 4, 8)
    same = BasicUnit(features=4, shortcut=shortcut)
    v2 = same.init(jax.random.key(1), x, train=False)
    assert ("shortcut" in v2["params"]) == (shortcut == "projection_all")


def test_bottleneck_grouped_se_and_bad_fields():
    x = jax.random.normal(jax.random.key(0), (1, 8, 8, 16))
    unit = BottleneckUnit(features=32, width=8, groups=4, strides=2, se_reduction=4)
    variables = unit.init(jax.random.key(1), x, train=False)
    p = variables["params"]
    assert p["conv2"]["kernel"].shape == (3, 3, 2, 8)
    assert p["se"]["fc1"]["kernel"].shape == (32, 8)
    y, _ = unit.apply(variables, x, train=True, mutable=["batch_stats"])
    assert y.shape == (1, 4, 4, 32)
    with pytest.raises(ValueError, match="unit_order"):
        BasicUnit(features=16, unit_order="bogus").init(jax.random.key(0), x, train=False)
    with pytest.raises(ValueError, match="shortcut"):
        BasicUnit(features=16, shortcut="B").init(jax.random.key(0), x, train=False)


def _support(unit, x):
    """Offsets from the centre of the pixels of ``x`` on which output pixel (centre, centre)
    depends: the nonzero pattern of the gradient of its channel sum. Positive inputs and
    parameters (eval-mode BN with zero mean) keep every ReLU active."""
    x = jnp.abs(x) + 0.1
    variables = unit.init(jax.random.key(1), x, train=False)
    variables = dict(variables, params=jax.tree.map(lambda a: jnp.abs(a) + 0.1,
                                                    variables["params"]))
    c = x.shape[1] // 2

    def out(x):
        return jnp.sum(unit.apply(variables, x, train=False)[0, c, c])

    g = np.abs(np.asarray(jax.grad(out)(x))).sum(-1)[0]
    return np.argwhere(g > 0) - c


def test_dilated_units_read_the_dilated_lattice():
    x = jax.random.normal(jax.random.key(0), (1, 15, 15, 4))
    # Bottleneck: one 3x3 at rate 3 between 1x1s, identity shortcut: the 3x3 lattice of
    # spacing 3 around the centre (which the shortcut also reads).
    unit = BottleneckUnit(features=4, width=2, dilation=3, unit_order="relu_before_add")
    got = {tuple(p) for p in _support(unit, x)}
    assert got == {(3 * i, 3 * j) for i in (-1, 0, 1) for j in (-1, 0, 1)}
    # first_dilation sets the bottleneck's 3x3 rate (torchvision's first unit of a dilated
    # stage reads at the previous rate)
    unit = BottleneckUnit(features=4, width=2, dilation=4, first_dilation=2,
                          unit_order="relu_before_add")
    assert {tuple(p) for p in _support(unit, x)} == {
        (2 * i, 2 * j) for i in (-1, 0, 1) for j in (-1, 0, 1)}
    # Basic unit: 3x3 at first_dilation 1 then 3x3 at rate 2: offsets {-1, 0, 1} + {-2, 0, 2}
    # per axis, i.e. the full 7x7 square; with both at rate 2 the even offsets of a 9x9 one.
    unit = BasicUnit(features=4, first_dilation=1, dilation=2, unit_order="relu_before_add")
    assert {tuple(p) for p in _support(unit, x)} == {
        (i, j) for i in range(-3, 4) for j in range(-3, 4)}
    unit = BasicUnit(features=4, dilation=2, unit_order="relu_before_add")
    assert {tuple(p) for p in _support(unit, x)} == {
        (i, j) for i in range(-4, 5, 2) for j in range(-4, 5, 2)}
    # The padding keeps the size; bad rates are rejected.
    y = unit.apply(unit.init(jax.random.key(1), x, train=False), x, train=False)
    assert y.shape == x.shape
    with pytest.raises(ValueError, match="first_dilation must be a positive int"):
        BasicUnit(features=4, first_dilation=0).init(jax.random.key(0), x, train=False)


def test_project_keeps_the_shortcut_of_a_strided_unit():
    x = jax.random.normal(jax.random.key(0), (1, 6, 6, 4))
    strided = BasicUnit(features=4, strides=2)
    dilated = BasicUnit(features=4, dilation=2, project=True)
    v = strided.init(jax.random.key(1), x, train=False)
    assert "shortcut" in v["params"]
    assert jax.tree.map(jnp.shape, dilated.init(jax.random.key(1), x, train=False)) == \
        jax.tree.map(jnp.shape, v)
    assert "shortcut" not in BasicUnit(features=4).init(jax.random.key(1), x,
                                                        train=False)["params"]
