"""ops.conv: 1x1 convolutions as matrix products and depthwise convolutions as sums of taps,
against float64 NumPy references and lax.conv_general_dilated (values and both gradients), the
cases left to lax, and Flax's nn.Conv."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from vai_jax.ops.conv import conv_general_dilated, rewrite_of

NHWC = ("NHWC", "HWIO", "NHWC")


def _inputs(seed, shape=(2, 5, 7, 3), kernel=(1, 1, 3, 4)):
    r = np.random.default_rng(seed)
    return r.standard_normal(shape).astype(np.float32), r.standard_normal(kernel).astype(np.float32)


def _check_against_lax(x, w, kw, want):
    """Rewritten values against the float64 ``want``; values and both gradients against lax."""
    fn = lambda x, w: conv_general_dilated(x, w, rewrite="always", **kw)
    got, vjp = jax.vjp(fn, jnp.asarray(x), jnp.asarray(w))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)
    ref, ref_vjp = jax.vjp(lambda x, w: lax.conv_general_dilated(x, w, **kw), jnp.asarray(x),
                           jnp.asarray(w))
    assert got.shape == ref.shape and got.dtype == ref.dtype
    ct = jnp.asarray(np.random.default_rng(1).standard_normal(ref.shape).astype(np.float32))
    for a, b in zip(vjp(ct), ref_vjp(ct)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("strides", [(1, 1), (2, 2), (2, 3)])
@pytest.mark.parametrize("padding", ["SAME", "VALID", ((0, 0), (0, 0))])
@pytest.mark.parametrize("channels", [(3, 4), (5, 2)])
def test_one_by_one_is_a_matrix_product(strides, padding, channels):
    """Expanding and reducing (custom filter gradient) 1x1 convolutions."""
    x, w = _inputs(0, (2, 5, 7, channels[0]), (1, 1) + channels)
    kw = dict(window_strides=strides, padding=padding, dimension_numbers=NHWC)
    assert rewrite_of(x.shape, w.shape, rewrite="always", **kw) == "matmul"
    want = np.einsum("bhwi,io->bhwo", x.astype(np.float64)[:, ::strides[0], ::strides[1]],
                     w[0, 0].astype(np.float64))
    _check_against_lax(x, w, kw, want)


def test_rewrites_keep_forward_mode():
    """jax.jvp through both rewrites equals lax's (no custom derivative rule)."""
    for ci, co, groups, kernel in ((5, 2, 1, (1, 1)), (4, 4, 4, (3, 3))):
        x, w = _inputs(7, (1, 5, 5, ci), kernel + (ci // groups, co))
        kw = dict(window_strides=(1, 1), padding="SAME", dimension_numbers=NHWC,
                  feature_group_count=groups)
        tangents = (jnp.ones_like(jnp.asarray(x)), jnp.ones_like(jnp.asarray(w)))
        _, got = jax.jvp(lambda x, w: conv_general_dilated(x, w, rewrite="always", **kw),
                         (jnp.asarray(x), jnp.asarray(w)), tangents)
        _, want = jax.jvp(lambda x, w: lax.conv_general_dilated(x, w, **kw),
                          (jnp.asarray(x), jnp.asarray(w)), tangents)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)


def _depthwise_ref(x, w, strides, pads, dilation):
    """float64 loop: out[b, i, j, c] = sum_{p, q} xpad[b, s*i + d*p, s*j + d*q, c] w[p, q, 0, c]."""
    xp = np.pad(x.astype(np.float64), ((0, 0), pads[0], pads[1], (0, 0)))
    kh, kw = w.shape[:2]
    oh = (xp.shape[1] - dilation[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (xp.shape[2] - dilation[1] * (kw - 1) - 1) // strides[1] + 1
    out = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    for i in range(oh):
        for j in range(ow):
            for p in range(kh):
                for q in range(kw):
                    out[:, i, j] += (xp[:, strides[0] * i + dilation[0] * p,
                                        strides[1] * j + dilation[1] * q] * w[p, q, 0])
    return out


@pytest.mark.parametrize("kernel,strides,padding,dilation", [
    ((3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)),
    ((3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1)),
    ((5, 3), (2, 1), ((2, 1), (0, 2)), (1, 2)),
    ((3, 3), (1, 2), "SAME", (2, 1)),
])
def test_depthwise_is_a_sum_of_taps(kernel, strides, padding, dilation):
    x, w = _inputs(2, (2, 9, 8, 5), kernel + (1, 5))
    kw = dict(window_strides=strides, padding=padding, rhs_dilation=dilation,
              dimension_numbers=NHWC, feature_group_count=5)
    assert rewrite_of(x.shape, w.shape, rewrite="always", **kw) == "taps"
    if isinstance(padding, str):
        window = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
        padding = lax.padtype_to_pads(x.shape[1:3], window, strides, padding)
    _check_against_lax(x, w, kw, _depthwise_ref(x, w, strides, padding, dilation))


def test_depthwise_bfloat16_accumulates_in_float32():
    x, w = _inputs(3, (1, 6, 6, 4), (3, 3, 1, 4))
    kw = dict(window_strides=(1, 1), padding="SAME", dimension_numbers=NHWC,
              feature_group_count=4)
    xb, wb = jnp.asarray(x, jnp.bfloat16), jnp.asarray(w, jnp.bfloat16)
    got = conv_general_dilated(xb, wb, rewrite="always", **kw)
    want = _depthwise_ref(np.asarray(xb, np.float32), np.asarray(wb, np.float32), (1, 1),
                          ((1, 1), (1, 1)), (1, 1))
    assert got.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(got, np.float32), want, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("case", ["3x3", "padded", "grouped", "multiplier", "nchw",
                                  "input_dilation", "never"])
def test_other_convolutions_are_lax(case):
    """Anything else is lax's convolution, bit for bit."""
    x, w = _inputs(4)
    kw = dict(window_strides=(1, 1), padding="VALID", dimension_numbers=NHWC)
    rewrite = "always"
    if case == "3x3":
        w = np.ones((3, 3, 3, 4), np.float32)
    elif case == "padded":
        kw["padding"] = ((1, 1), (0, 0))
    elif case == "grouped":  # 3 groups of one input channel, not one filter per output
        w = np.ones((3, 3, 1, 6), np.float32)
        kw["feature_group_count"] = 3
    elif case == "multiplier":  # depthwise with two filters per channel
        w = np.ones((1, 1, 1, 6), np.float32)
        kw["feature_group_count"] = 3
    elif case == "nchw":
        x, w = x.transpose(0, 3, 1, 2), w.transpose(3, 2, 0, 1)
        kw["dimension_numbers"] = ("NCHW", "OIHW", "NCHW")
    elif case == "input_dilation":
        kw.update(lhs_dilation=(2, 1), padding=((0, 0), (0, 0)))
    else:
        rewrite = "never"
    assert rewrite_of(x.shape, w.shape, rewrite=rewrite, **kw) is None
    got = conv_general_dilated(jnp.asarray(x), jnp.asarray(w), rewrite=rewrite, **kw)
    want = lax.conv_general_dilated(jnp.asarray(x), jnp.asarray(w), **kw)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_auto_follows_the_backend():
    x, w = _inputs(5)
    auto = rewrite_of(x.shape, w.shape, padding="SAME", dimension_numbers=NHWC)
    assert auto == ("matmul" if jax.default_backend() == "cpu" else None)
    with pytest.raises(ValueError, match="rewrite must be one of"):
        rewrite_of(x.shape, w.shape, rewrite="yes")


def test_flax_conv_keeps_parameters_and_values():
    """nn.Conv(conv_general_dilated=...) has the parameters of a plain nn.Conv and its output."""
    x, _ = _inputs(6, (2, 6, 6, 3))
    for kwargs in (dict(features=5, kernel_size=(1, 1), strides=2),
                   dict(features=3, kernel_size=(3, 3), feature_group_count=3)):
        plain = nn.Conv(**kwargs)
        fast = nn.Conv(**kwargs, conv_general_dilated=conv_general_dilated)
        params = plain.init(jax.random.PRNGKey(0), x)
        assert (jax.tree.map(jnp.shape, fast.init(jax.random.PRNGKey(0), x))
                == jax.tree.map(jnp.shape, params))
        np.testing.assert_allclose(np.asarray(fast.apply(params, x)),
                                   np.asarray(plain.apply(params, x)), rtol=1e-5, atol=1e-6)
