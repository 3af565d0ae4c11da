"""Transposed convolution: size arithmetic, adjointness to the strided convolution, PyTorch
parity, exact bilinear up-sampling against jax.image.resize, learnability."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from vai_jax.nn.transposed import TransposedConv, bilinear_init, bilinear_upsampler
from vai_jax.ops.upsample import (bilinear_kernel_1d, bilinear_upsample, conv_transpose,
                                  transposed_conv_output_size)


def _forward_conv(y, kernel, s, p, groups=1):
    """The convolution that conv_transpose(kernel) transposes: C_out -> C_in."""
    kh, kw, cin, cout_g = kernel.shape
    g = groups
    # forward kernel [kh, kw, C_out/g, C_in]: per group the (C_in/g x C_out/g) block transposed
    w = kernel.reshape(kh, kw, g, cin // g, cout_g)
    w = jnp.transpose(w, (0, 1, 4, 2, 3)).reshape(kh, kw, cout_g, cin)
    return lax.conv_general_dilated(y, w, (s, s), [(p, p), (p, p)],
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                    feature_group_count=g)


@pytest.mark.parametrize("k,s,p,a,groups", [(3, 1, 1, 0, 1), (4, 2, 1, 0, 1), (3, 2, 1, 1, 1),
                                            (5, 3, 2, 2, 2), (2, 2, 0, 0, 3), (6, 3, 1, 0, 3)])
def test_adjoint_of_strided_conv_and_output_size(k, s, p, a, groups):
    rng = np.random.default_rng(k * 100 + s * 10 + p)
    cin, cout = 3 * (groups if groups > 1 else 1), 2 * groups
    x = jnp.asarray(rng.normal(size=(2, 5, 4, cin)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(k, k, cin, cout // groups)), jnp.float32)
    y = conv_transpose(x, kernel, strides=s, padding=p, output_padding=a,
                       feature_group_count=groups)
    assert y.shape == (2, transposed_conv_output_size(5, k, s, p, a),
                       transposed_conv_output_size(4, k, s, p, a), cout)
    assert y.shape[1] == (5 - 1) * s - 2 * p + k + a
    # <conv(z), x> == <z, convT(x)> for the forward conv with the same kernel: the vjp of the
    # forward conv applied to x must be the transposed conv.
    z = jnp.zeros(y.shape, jnp.float32)
    fwd, vjp = jax.vjp(lambda z: _forward_conv(z, kernel, s, p, groups), z)
    assert fwd.shape == x.shape
    np.testing.assert_allclose(vjp(x)[0], y, rtol=1e-5, atol=1e-5)


def test_matches_torch_conv_transpose2d():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    for k, s, p, a in [(4, 2, 1, 0), (3, 2, 1, 1), (16, 8, 4, 0), (5, 3, 0, 2)]:
        x = rng.normal(size=(1, 4, 3, 2)).astype(np.float32)
        kernel = rng.normal(size=(k, k, 2, 3)).astype(np.float32)
        ref = torch.nn.functional.conv_transpose2d(
            torch.from_numpy(x.transpose(0, 3, 1, 2)),
            torch.from_numpy(kernel.transpose(2, 3, 0, 1).copy()),  # [C_in, C_out, kh, kw]
            stride=s, padding=p, output_padding=a).numpy().transpose(0, 2, 3, 1)
        got = conv_transpose(jnp.asarray(x), jnp.asarray(kernel), strides=s, padding=p,
                             output_padding=a)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_bilinear_kernel_matches_caffe_formula():
    # Caffe FCN upsample_filt written in float64 from the paper code's formula.
    for s in range(1, 9):
        size = 2 * s - s % 2
        factor = (size + 1) // 2
        center = factor - 1 if size % 2 == 1 else factor - 0.5
        og = np.arange(size)
        ref = 1 - abs(og - center) / factor
        np.testing.assert_allclose(bilinear_kernel_1d(s), ref, rtol=1e-6)
    np.testing.assert_allclose(bilinear_kernel_1d(2), [0.25, 0.75, 0.75, 0.25])


@pytest.mark.parametrize("s", [2, 3, 4, 8])
def test_bilinear_equals_jax_image_resize(s):
    for h, w in [(1, 2), (3, 5)]:
        _assert_bilinear_matches_resize(s, h, w)


def _assert_bilinear_matches_resize(s, h, w):
    x = jax.random.normal(jax.random.PRNGKey(s + 10 * h + 100 * w), (2, h, w, 3))
    ref = np.asarray(jax.image.resize(x, (2, s * h, s * w, 3), "bilinear"), np.float64)
    # Edge replication: everywhere.
    np.testing.assert_allclose(bilinear_upsample(x, s), ref, rtol=1e-5, atol=2e-6)
    # Plain (zero-padded) transposed conv = the layer at init: exactly on the interior.
    layer = bilinear_upsampler(3, s)
    variables = layer.init(jax.random.PRNGKey(0), x)
    y = np.asarray(layer.apply(variables, x))
    assert y.shape == ref.shape
    b = s // 2
    inner = (slice(None), slice(b, s * h - b), slice(b, s * w - b))
    np.testing.assert_allclose(y[inner], ref[inner], rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(bilinear_upsample(x, s, edge="zero"), y, rtol=1e-6, atol=1e-6)
    # ...and only there: a constant image shows the darker zero-padded border.
    ones = jnp.ones((1, h, w, 1))
    border = np.asarray(bilinear_upsample(ones, s, edge="zero"))[0, :, :, 0]
    interior = np.zeros_like(border, bool)
    interior[b:s * h - b, b:s * w - b] = True
    np.testing.assert_allclose(border[interior], 1.0, atol=1e-6)
    if b:
        assert np.all(border[~interior] < 1.0 - 1e-3)


def test_bilinear_upsampler_is_learnable_and_can_be_frozen():
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 4, 4, 3))
    target = jax.random.normal(jax.random.PRNGKey(2), (2, 8, 8, 3))

    def loss(params, layer):
        return jnp.mean((layer.apply({"params": params}, x) - target) ** 2)

    learn = bilinear_upsampler(3, 2, use_bias=True)
    params = learn.init(jax.random.PRNGKey(0), x)["params"]
    assert params["kernel"].shape == (4, 4, 3, 3)
    # Off-diagonal (channel-mixing) entries start at zero and receive gradient.
    np.testing.assert_array_equal(params["kernel"][:, :, 0, 1], 0.0)
    g = jax.grad(loss)(params, learn)
    assert float(jnp.abs(g["kernel"][:, :, 0, 1]).max()) > 0
    l0 = loss(params, learn)
    step = jax.jit(lambda p: jax.tree.map(lambda a, b: a - 0.5 * b, p, jax.grad(loss)(p, learn)))
    for _ in range(5):
        params = step(params)
    assert float(loss(params, learn)) < float(l0)

    frozen = bilinear_upsampler(3, 2, trainable=False)
    params = frozen.init(jax.random.PRNGKey(0), x)["params"]
    np.testing.assert_array_equal(jax.grad(loss)(params, frozen)["kernel"], 0.0)


def test_transposed_conv_module_shapes_and_errors():
    layer = TransposedConv(5, kernel_size=3, strides=2, padding=1, output_padding=1)
    y, _ = jax.eval_shape(lambda: layer.init_with_output(jax.random.PRNGKey(0),
                                                         jnp.zeros((1, 7, 6, 2))))
    assert y.shape == (1, 14, 12, 5)
    with pytest.raises(ValueError, match="output_padding"):
        transposed_conv_output_size(4, 3, 2, 1, output_padding=2)
    with pytest.raises(ValueError, match="would output"):
        transposed_conv_output_size(1, 1, 1, padding=1)
    with pytest.raises(ValueError, match="C_in == C_out"):
        bilinear_init(None, (4, 4, 2, 3))
    with pytest.raises(ValueError, match="2s - s % 2"):
        bilinear_init(None, (6, 6, 2, 2))  # 6 is not 2s - s % 2 for any s
    with pytest.raises(ValueError, match="factor"):
        bilinear_upsample(jnp.zeros((1, 2, 2, 1)), 0)
    with pytest.raises(ValueError, match="rank 4"):
        bilinear_upsample(jnp.zeros((2, 2, 1)), 2)
