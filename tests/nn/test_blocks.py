"""The vai_jax.nn blocks of the Inception/MobileNet/SqueezeNet/ShuffleNet/ESPNet families,
checked against their definitions with independent NumPy references."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from vai_jax import nn as vnn


def _count(tree):
    return sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(tree))


def _rand(seed, shape):
    # NumPy draws: no per-shape compilation of jax.random kernels in these small tests.
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


# ----------------------------------------------------------------------------- separable / grouped
@pytest.mark.parametrize("n", [3, 7])
def test_spatially_separable_has_2n_c2_weights_and_no_bias(n):
    c = 6
    block = vnn.SpatiallySeparableConv(c, kernel_size=n)
    params = jax.eval_shape(block.init, jax.random.PRNGKey(0), jnp.zeros((1, 9, 9, c)), train=False)["params"]
    assert _count(params) == 2 * n * c * c
    assert params["conv_nx1"]["conv"]["kernel"].shape == (n, 1, c, c)
    assert params["conv_1xn"]["conv"]["kernel"].shape == (1, n, c, c)


def test_spatially_separable_equals_rank_one_kernel_conv():
    # With one channel, n×1 then 1×n is a single n×n conv with the outer-product kernel.
    n = 3
    x = _rand(0, (1, 8, 7, 1))
    block = vnn.SpatiallySeparableConv(1, kernel_size=n)
    v = block.init(jax.random.PRNGKey(1), x, train=False)
    y = block.apply(v, x, train=False)
    a = np.asarray(v["params"]["conv_nx1"]["conv"]["kernel"])[:, 0, 0, 0]
    b = np.asarray(v["params"]["conv_1xn"]["conv"]["kernel"])[0, :, 0, 0]
    k = np.outer(a, b)
    xp = np.pad(np.asarray(x, np.float64)[0, :, :, 0], 1)
    ref = np.array([[np.sum(xp[i:i + n, j:j + n] * k) for j in range(7)] for i in range(8)])
    np.testing.assert_allclose(np.asarray(y)[0, :, :, 0], ref, rtol=1e-4, atol=1e-5)


def test_depthwise_separable_weight_count_and_stride():
    c_in, c_out, k = 8, 12, 3
    block = vnn.DepthwiseSeparableConv(c_out, kernel_size=k, strides=2)
    x = jnp.zeros((2, 10, 10, c_in))
    out, v = jax.eval_shape(lambda: block.init_with_output(jax.random.PRNGKey(0), x, train=False))
    assert out.shape == (2, 5, 5, c_out)
    p = v["params"]
    assert p["depthwise"]["conv"]["kernel"].shape == (k, k, 1, c_in)
    assert p["pointwise"]["conv"]["kernel"].shape == (1, 1, c_in, c_out)
    assert _count(p) == k * k * c_in + c_in * c_out + 2 * (c_in + c_out)  # + BN scale/bias


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_grouped_conv_equals_concatenated_per_group_convs(groups):
    c_in, c_out = 8, 12
    x = _rand(2, (2, 6, 5, c_in))
    block = vnn.GroupedConv(c_out, kernel_size=3, groups=groups, use_bias=False)
    v = block.init(jax.random.PRNGKey(3), x, train=False)
    y = block.apply(v, x, train=False)
    kernel = v["params"]["conv"]["kernel"]
    assert kernel.shape == (3, 3, c_in // groups, c_out)
    gi, go = c_in // groups, c_out // groups
    parts = []
    for g in range(groups):
        parts.append(lax.conv_general_dilated(
            x[..., g * gi:(g + 1) * gi], kernel[..., g * go:(g + 1) * go], (1, 1), ((1, 1), (1, 1)),
            dimension_numbers=("NHWC", "HWIO", "NHWC"), precision="highest"))
    np.testing.assert_allclose(y, jnp.concatenate(parts, -1), rtol=1e-4, atol=1e-5)


def test_grouped_conv_rejects_indivisible_channels():
    with pytest.raises(ValueError, match="groups"):
        vnn.GroupedConv(6, groups=4).init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 6)), train=False)


# ----------------------------------------------------------------------------- channel shuffle
@pytest.mark.parametrize("c,g", [(12, 3), (12, 4), (8, 2), (9, 3)])
def test_channel_shuffle_matches_index_formula(c, g):
    x = np.arange(2 * c, dtype=np.float32).reshape(1, 2, c)
    y = np.asarray(vnn.channel_shuffle(jnp.asarray(x), g))
    n = c // g
    for i in range(n):
        for j in range(g):
            np.testing.assert_array_equal(y[..., i * g + j], x[..., j * n + i])
    assert sorted(y[0, 0].tolist()) == x[0, 0].tolist()  # a permutation


def test_channel_shuffle_inverse():
    x = _rand(4, (2, 3, 3, 12))
    np.testing.assert_array_equal(vnn.channel_shuffle(vnn.channel_shuffle(x, 3), 4), x)
    x9 = _rand(5, (2, 3, 3, 9))  # C == g²: its own inverse
    np.testing.assert_array_equal(vnn.channel_shuffle(vnn.channel_shuffle(x9, 3), 3), x9)
    assert not np.array_equal(vnn.channel_shuffle(x9, 3), x9)


def test_channel_shuffle_bad_groups():
    with pytest.raises(ValueError, match="groups"):
        vnn.channel_shuffle(jnp.zeros((1, 10)), 3)


# ----------------------------------------------------------------------------- pooling / SPP
def _adaptive_max_ref(x, n):
    # float64 reference with PyTorch's bin edges written directly from the definition.
    x = np.asarray(x, np.float64)
    h, w = x.shape[1:3]
    out = np.zeros((x.shape[0], n, n, x.shape[3]))
    for i in range(n):
        for j in range(n):
            r0, r1 = int(np.floor(i * h / n)), int(np.ceil((i + 1) * h / n))
            c0, c1 = int(np.floor(j * w / n)), int(np.ceil((j + 1) * w / n))
            out[:, i, j] = x[:, r0:r1, c0:c1].max(axis=(1, 2))
    return out


@pytest.mark.parametrize("hw", [(7, 5), (13, 16), (3, 2)])
def test_adaptive_max_pool_matches_floor_ceil_bins(hw):
    x = _rand(6, (2, *hw, 3))
    for n in (1, 2, 4):
        np.testing.assert_allclose(vnn.adaptive_pool_2d(x, n), _adaptive_max_ref(x, n), rtol=1e-6)


def test_spp_fixed_length_for_any_input_size():
    levels, c = (1, 2, 4), 5
    y1 = vnn.spatial_pyramid_pool(_rand(7, (2, 9, 11, c)), levels)
    y2 = vnn.spatial_pyramid_pool(_rand(8, (2, 20, 13, c)), levels)
    assert y1.shape == y2.shape == (2, c * (1 + 4 + 16))
    x = _rand(9, (2, 9, 11, c))
    want = np.concatenate([_adaptive_max_ref(x, n).reshape(2, -1) for n in levels], -1)
    np.testing.assert_allclose(vnn.SpatialPyramidPooling(levels).apply({}, x, train=False), want, rtol=1e-6)


@pytest.mark.parametrize("length,k,s,p,ceil", [(112, 3, 2, 0, True), (109, 3, 2, 0, True),
                                              (6, 3, 2, 0, False), (7, 3, 2, 1, True), (5, 2, 2, 0, True),
                                              (2, 3, 2, 0, True)])
def test_max_pool_2d_matches_pytorch_rule(length, k, s, p, ceil):
    x = _rand(10, (1, length, length, 2))
    y = np.asarray(vnn.max_pool_2d(x, k, s, padding=p, ceil_mode=ceil))
    # PyTorch's formula, incl. dropping a last window that would start in the right padding.
    span = length + 2 * p - k
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= length + p:
        out -= 1
    assert y.shape[1] == out
    xp = np.full((length + 2 * p + k, length + 2 * p + k, 2), -np.inf)
    xp[p:p + length, p:p + length] = np.asarray(x[0])
    ref = np.array([[xp[i * s:i * s + k, j * s:j * s + k].max((0, 1)) for j in range(out)] for i in range(out)])
    np.testing.assert_allclose(y[0], ref)


# ----------------------------------------------------------------------------- fire / inception
@pytest.mark.parametrize("bypass", [False, True])
def test_fire_module_channels_and_bypass(bypass):
    block = vnn.Fire(4, 8, 8, bypass=bypass)
    x = _rand(11, (2, 6, 6, 16))
    v = block.init(jax.random.PRNGKey(0), x, train=False)
    y = block.apply(v, x, train=False)
    assert y.shape == (2, 6, 6, 16)
    no_bypass = vnn.Fire(4, 8, 8).apply(v, x, train=False)
    np.testing.assert_allclose(y - no_bypass, x if bypass else 0 * x, atol=1e-5)
    p = v["params"]
    assert _count(p) == (16 * 4 + 4) + (4 * 8 + 8) + (9 * 4 * 8 + 8)


def test_fire_bypass_needs_equal_channels():
    with pytest.raises(ValueError, match="bypass"):
        vnn.Fire(4, 8, 8, bypass=True).init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 10)), train=False)


def test_naive_inception_channels_are_input_plus_branches():
    block = vnn.InceptionModule(8, 0, 12, 0, 4, 0, naive=True)
    x = _rand(12, (1, 7, 7, 10))
    y, v = block.init_with_output(jax.random.PRNGKey(0), x, train=False)
    assert y.shape == (1, 7, 7, 10 + 8 + 12 + 4) == (1, 7, 7, block.output_channels(10))
    # The pool branch is the 3×3 stride-1 max pool of the input itself.
    np.testing.assert_allclose(y[..., -10:], vnn.max_pool_2d(x, 3, 1, padding=1))
    assert v["params"]["branch5x5"]["conv"]["kernel"].shape == (5, 5, 10, 4)
    assert set(v["params"]) == {"branch1x1", "branch3x3", "branch5x5"}


def test_inception_with_reductions_channels_and_weights():
    block = vnn.InceptionModule(4, 3, 5, 2, 6, 7)
    x = jnp.zeros((1, 7, 7, 10))
    y, v = jax.eval_shape(lambda: block.init_with_output(jax.random.PRNGKey(0), x, train=False))
    assert y.shape == (1, 7, 7, 4 + 5 + 6 + 7)
    weights = 10 * 4 + 10 * 3 + 9 * 3 * 5 + 10 * 2 + 25 * 2 * 6 + 10 * 7
    assert _count(v["params"]) == weights + (4 + 3 + 5 + 2 + 6 + 7)  # + biases


# ----------------------------------------------------------------------------- dilated / ESP
def test_receptive_field_formula():
    assert vnn.effective_kernel_size(3, 4) == 9
    # Yu & Koltun context module: rates 1,1,2,4,8,16,1 -> 67×67.
    assert vnn.receptive_field([3] * 7, [1, 1, 2, 4, 8, 16, 1]) == 67
    assert vnn.receptive_field([7, 3], [1, 1], [2, 1]) == 7 + 2 * 2


def test_dilated_conv_stack_keeps_size():
    y = jax.eval_shape(lambda: vnn.DilatedConvStack(6, (1, 2, 4)).init_with_output(
        jax.random.PRNGKey(0), jnp.zeros((1, 9, 9, 3)), train=False))[0]
    assert y.shape == (1, 9, 9, 6)


def test_esp_block_hff_sums_branches_cumulatively():
    c, k = 20, 5
    x = _rand(13, (1, 17, 17, c))
    plain = vnn.ESPBlock(hff=False, output_norm_act=False)
    fused = vnn.ESPBlock(hff=True, output_norm_act=False)
    v = plain.init(jax.random.PRNGKey(1), x, train=False)
    branches = np.asarray(plain.apply(v, x, train=False) - x)  # concat(o_1..o_K)
    out = np.asarray(fused.apply(v, x, train=False) - x)
    d = c // k
    o = [branches[..., i * d:(i + 1) * d] for i in range(k)]
    want = [o[0]] + [sum(o[1:i + 1]) for i in range(1, k)]
    np.testing.assert_allclose(out, np.concatenate(want, -1), rtol=1e-4, atol=1e-4)
    dil = [v["params"][f"branch{i}"]["conv"]["kernel"].shape for i in range(1, k + 1)]
    assert dil == [(3, 3, d, d)] * k
    assert v["params"]["reduce"]["conv"]["kernel"].shape == (1, 1, c, d)


def test_esp_block_output_channels_and_dilations():
    x = _rand(14, (2, 20, 20, 13))
    block = vnn.ESPBlock()
    y, v = block.init_with_output(jax.random.PRNGKey(0), x, train=False)
    assert y.shape == x.shape
    # branch k (1-based) has dilation 2^(k-1): its response to an impulse is spread that far.
    r = jnp.zeros((1, 40, 40, 2)).at[0, 20, 20].set(1.0)
    block3 = vnn.ESPBlock(features=10, hff=False, residual=False, output_norm_act=False)
    v3 = block3.init(jax.random.PRNGKey(2), r, train=False)
    y3 = np.asarray(block3.apply(v3, r, train=False))
    for i in range(5):
        nz = np.nonzero(np.abs(y3[0, :, 20, 2 * i:2 * i + 2]).sum(-1))[0]
        assert nz.min() == 20 - 2 ** i and nz.max() == 20 + 2 ** i
    ys = jax.eval_shape(lambda: vnn.ESPBlock(features=16, strides=2).init_with_output(
        jax.random.PRNGKey(0), x, train=False))[0]
    assert ys.shape == (2, 10, 10, 16)


# ----------------------------------------------------------------------------- LRN
def test_local_response_norm_matches_definition():
    x = _rand(15, (2, 3, 3, 7)) * 10
    y = np.asarray(vnn.local_response_norm(x, size=5, alpha=1e-2, beta=0.75, k=2.0))
    a = np.asarray(x, np.float64)
    ref = np.empty_like(a)
    for c in range(7):
        lo, hi = max(0, c - 2), min(7, c + 2 + 1)
        ref[..., c] = a[..., c] / (2.0 + 1e-2 / 5 * np.sum(a[..., lo:hi] ** 2, -1)) ** 0.75
    np.testing.assert_allclose(y, ref, rtol=1e-5)
