"""Segmentation networks: FCN-32s/16s/8s alignment on odd sizes (round-up and round-down
backbones), DeepLab/ASPP on the dilated ResNet, the auxiliary head and the builders,
encoder-decoder with unpooling, ESPNet, bad input."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vai_jax
from vai_jax.backbones.base import FeatureInfo
from vai_jax.segmentation.heads import ASPP, ConvHead, DeepLabHead, FCNHead
from vai_jax.segmentation.models import EncoderDecoder, ESPNet, Segmenter, deeplabv3, fcn
from vai_jax.ops.upsample import align_to, bilinear_upsample, max_pool_with_argmax, max_unpool

K = 3
TINY = dict(stage_sizes=(1, 1, 1, 2), widths=(4, 4, 8, 8), stem_width=4, stem_kernel=3)


def _resnet(**kw):
    """The tiny basic-unit ResNet of these tests (``TINY``), without classifier."""
    return vai_jax.create_model("resnet18", num_classes=0, **TINY, **kw)


def _init(model, x):
    # Compiled as one program: eager init would compile every op on its own.
    return jax.jit(lambda x: model.init(jax.random.PRNGKey(1), x, train=False))(x)


def _apply(model, v, x):
    return jax.jit(lambda v, x: model.apply(v, x, train=False)["out"])(v, x)


def _shape(model, shape):
    out, _ = jax.eval_shape(lambda: model.init_with_output(
        {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)},
        jnp.zeros(shape), train=False))
    return out["out"].shape


def test_upsample_then_align_keeps_the_pixel_frame():
    # A stride-s map whose cell i holds its centre s*(i + 0.5) (continuous input coordinate),
    # up-sampled by s and aligned to H, must read o + 0.5 at pixel o (bilinear is exact on a
    # linear function) wherever both neighbours exist.
    for s, n_in in [(2, 7), (4, 13), (8, 33), (32, 45)]:
        h = -(-n_in // s)
        f = s * (jnp.arange(h, dtype=jnp.float32) + 0.5)
        grid = jnp.broadcast_to(f[None, :, None, None], (1, h, 2, 1))
        up = align_to(bilinear_upsample(grid, s), (n_in, 2))[0, :, 0, 0]
        o = np.arange(n_in)
        inner = (o >= s // 2) & (o + 0.5 <= s * (h - 0.5))
        np.testing.assert_allclose(np.asarray(up)[inner], o[inner] + 0.5, rtol=1e-6)


class _FloorBackbone(nn.Module):
    """VGG-like: 2x2 VALID max-pools (odd sizes round DOWN), features stage1..stage5."""

    feature_info = tuple(FeatureInfo(f"stage{i + 1}", 4, 2 ** (i + 1)) for i in range(5))

    @nn.compact
    def __call__(self, x, *, train):
        feats = {}
        for i in range(5):
            x = nn.relu(nn.Conv(4, (3, 3))(x))
            x = nn.max_pool(x, (2, 2), (2, 2), "VALID")
            feats[f"stage{i + 1}"] = x
        return None, feats


@pytest.mark.parametrize("variant", [32, 16, 8])
def test_fcn_output_size_on_odd_inputs(variant):
    head = FCNHead(K, variant=variant, fc_features=(8, 8), fc_kernel=3)
    ceil_net = Segmenter(_resnet(), head)
    floor_net = Segmenter(_FloorBackbone(), head.clone(
        in_features=("stage5", "stage4", "stage3")))
    for h, w in [(32, 32), (33, 47), (70, 95)]:
        assert _shape(ceil_net, (2, h, w, 3)) == (2, h, w, K)
        assert _shape(floor_net, (2, h, w, 3)) == (2, h, w, K)
    with pytest.raises(ValueError, match="too small.*>= 32"):
        _shape(ceil_net, (1, 31, 64, 3))


def test_fcn_skip_layers_start_at_zero_and_are_used():
    x = jax.random.normal(jax.random.PRNGKey(0), (1, 40, 36, 3))
    net = Segmenter(_resnet(), FCNHead(K, variant=8, fc_features=(8, 8), fc_kernel=3))
    v = _init(net, x)
    head = v["params"]["head"]
    np.testing.assert_array_equal(head["score_skip1"]["kernel"], 0.0)
    np.testing.assert_array_equal(head["score_skip2"]["kernel"], 0.0)
    assert head["up_final"]["kernel"].shape == (16, 16, K, 1)  # fixed per-channel bilinear x8

    def loss(p):
        out = net.apply(dict(v, params=p), x, train=False)["out"]
        return jnp.sum(out[..., 0] * jnp.arange(out.shape[2]))

    g = jax.jit(jax.grad(loss))(v["params"])["head"]
    assert float(jnp.abs(g["score_skip2"]["kernel"]).max()) > 0
    assert float(jnp.abs(g["up4"]["kernel"]).max()) > 0
    np.testing.assert_array_equal(g["up_final"]["kernel"], 0.0)  # not learnable


def test_deeplab_shapes_and_image_pooling_context():
    for os_ in (16, 8):
        rates = (6, 12, 18) if os_ == 16 else (12, 24, 36)
        net = Segmenter(_resnet(output_stride=os_), DeepLabHead(K, features=8, rates=rates))
        assert _shape(net, (2, 45, 37, 3)) == (2, 45, 37, K)
    # The image-pooling branch lets a far-away pixel change every output position.
    aspp = ASPP(4, rates=(1,), dropout_rate=0.0)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 9, 9, 3))
    x2 = x.at[:, 8, 8].add(5.0)

    def change(module):  # |f(x2) - f(x)| at pixel (0, 0), one compiled program
        v = _init(module, x)
        return jax.jit(lambda v: jnp.abs(module.apply(v, x2, train=False)
                                         - module.apply(v, x, train=False))[:, 0, 0])(v)

    d = change(aspp)
    assert float(d.max()) > 0
    local = ASPP(4, rates=(1,), image_pooling=False, dropout_rate=0.0)
    d_local = change(local)
    np.testing.assert_array_equal(d_local, 0.0)  # without it: 3x3 receptive field only


def test_segmenter_upsamples_the_head_logits_bilinearly():
    # DeepLab's logits are at the feature's stride (8 here); the Segmenter up-samples them to
    # the input size. On a multiple of the stride that is jax.image.resize (half-pixel
    # centres, torchvision's interpolate(..., align_corners=False)).
    x = jax.random.normal(jax.random.PRNGKey(0), (1, 40, 48, 3))
    net = Segmenter(_resnet(output_stride=8), DeepLabHead(K, features=8, rates=(1, 2)))
    v = _init(net, x)
    out, state = jax.jit(lambda v, x: net.apply(v, x, train=False, capture_intermediates=True,
                                                mutable=["intermediates"]))(v, x)
    logits = state["intermediates"]["head"]["__call__"][0]["out"]
    assert logits.shape == (1, 5, 6, K)
    ref = jax.image.resize(logits, (1, 40, 48, K), "bilinear")
    np.testing.assert_allclose(out["out"], ref, rtol=1e-5, atol=1e-5)
    assert set(out) == {"out"}
    with pytest.raises(ValueError, match="in_features names 'stage9'"):
        _init(Segmenter(_resnet(), DeepLabHead(K, in_features="stage9")), x)


def test_aux_head_and_builders():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 33, 40, 3))
    backbone = dict(name="resnet18", **TINY)
    net = deeplabv3(backbone, K, output_stride=16, aux=True, features=8, rates=(1, 2))
    assert net.backbone.feature_info[-1].stride == 16 and net.backbone.num_classes == 0
    # Shapes only: traced (jax.eval_shape), not compiled.
    v = jax.eval_shape(lambda: _init(net, x))
    out = jax.eval_shape(lambda v: net.apply(v, x, train=False), v)
    assert {k: o.shape for k, o in out.items()} == {"out": (2, 33, 40, K), "aux": (2, 33, 40, K)}
    aux = v["params"]["aux_head"]  # torchvision's FCNHead: 3x3 to C // 4, BN, 1x1 classifier
    assert aux["conv"]["conv"]["kernel"].shape == (3, 3, 8, 2)
    assert aux["classifier"]["kernel"].shape == (1, 1, 2, K)
    # the builder is the Segmenter written out
    by_hand = Segmenter(_resnet(), FCNHead(K, variant=16, fc_features=(8, 8), fc_kernel=3))
    built = fcn(backbone, K, variant=16, fc_features=(8, 8), fc_kernel=3)
    assert jax.tree.map(jnp.shape, jax.eval_shape(lambda: _init(built, x))) == jax.tree.map(
        jnp.shape, jax.eval_shape(lambda: _init(by_hand, x)))
    with pytest.raises(ValueError, match="backbone must be a create_model name"):
        fcn(dict(widths=(4, 4, 8, 8)), K)


def test_torchvision_layouts_have_torchvision_parameter_counts():
    # torchvision's fcn_resnet50 and deeplabv3_resnet50 (21 classes, auxiliary head):
    # 35,322,218 and 42,004,074 parameters (torchvision's weight tables).
    tv_fcn = Segmenter(vai_jax.create_model("resnet50", num_classes=0, output_stride=8),
                       ConvHead(21), aux_head=ConvHead(21, in_features="stage3"))
    tv_deeplab = deeplabv3("resnet50", 21, rates=(12, 24, 36), aux=True)
    for net, expected in ((tv_fcn, 35_322_218), (tv_deeplab, 42_004_074)):
        v = jax.eval_shape(lambda: net.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3)),
                                            train=False))
        assert sum(int(np.prod(a.shape)) for a in jax.tree.leaves(v["params"])) == expected


def test_max_unpool_against_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 6, 3)).astype(np.float32)
    pooled, sw = max_pool_with_argmax(jnp.asarray(x))
    assert pooled.shape == (2, 3, 3, 3)
    up = np.asarray(max_unpool(pooled, sw, (5, 6)))
    ref = np.zeros_like(x)
    for b in range(2):
        for c in range(3):
            for i in range(3):
                for j in range(3):
                    win = x[b, 2 * i:2 * i + 2, 2 * j:2 * j + 2, c]
                    a, bb = np.unravel_index(np.argmax(win), win.shape)
                    assert pooled[b, i, j, c] == win.max()
                    ref[b, 2 * i + a, 2 * j + bb, c] = win.max()
    np.testing.assert_array_equal(up, ref)
    with pytest.raises(ValueError, match="does not pool"):
        max_unpool(pooled, sw, (7, 6))


@pytest.mark.parametrize("upsample", ["unpool", "learned"])
def test_encoder_decoder(upsample):
    net = EncoderDecoder(K, widths=(4, 8, 8), upsample=upsample)
    assert _shape(net, (2, 19, 23, 3)) == (2, 19, 23, K)
    with pytest.raises(ValueError, match="too small"):
        _shape(net, (1, 7, 23, 3))


def test_espnet_shapes_and_hff_is_parameter_free():
    x = jax.random.normal(jax.random.PRNGKey(0), (1, 21, 27, 3))
    net = ESPNet(K, widths=(5, 10, 20), alpha=1, beta=1)
    v = _init(net, x)
    y = _apply(net, v, x)
    assert y.shape == (1, 21, 27, K)
    # HFF adds no parameters: the naive network runs on the same variables, differently.
    naive = ESPNet(K, widths=(5, 10, 20), alpha=1, beta=1, hff=False)
    assert jax.tree.map(jnp.shape, jax.eval_shape(lambda: _init(naive, x))) == \
        jax.tree.map(jnp.shape, v)
    assert float(jnp.abs(_apply(naive, v, x) - y).max()) > 0
    assert _shape(ESPNet(K, widths=(5, 10, 20), alpha=1, beta=1, decoder=False),
                  (2, 33, 17, 3)) == (2, 33, 17, K)
    with pytest.raises(ValueError, match="too small.*>= 8"):
        _shape(ESPNet(K, widths=(5, 10, 20), alpha=1, beta=1), (1, 7, 17, 3))


def _decoder_io(net, v, x, layer):
    """(input, output) of the decoder's transposed conv ``layer`` in one compiled forward
    pass (the interceptor's values are outputs of the traced function)."""

    def forward(v, x):
        captured = {}

        def grab(f, args, kwargs, ctx):
            out = f(*args, **kwargs)
            if ctx.module.name == layer and ctx.method_name == "__call__":
                captured["in"], captured["out"] = args[0], out
            return out

        with nn.intercept_methods(grab):
            net.apply(v, x, train=False)
        return captured["in"], captured["out"]

    inp, out = jax.jit(forward)(v, x)
    return np.asarray(inp, np.float64), np.asarray(out, np.float64)


def test_espnet_decoder_kernel4_starts_as_bilinear_and_is_learnable():
    x = jax.random.normal(jax.random.PRNGKey(0), (1, 24, 20, 3))
    net = ESPNet(K, widths=(5, 10, 20), alpha=1, beta=1, decoder_kernel=4)
    v = _init(net, x)
    assert _shape(net, x.shape) == (1, 24, 20, K)
    # Same parameter names as the kernel-2 decoder, kernels [4, 4, K, K] instead of [2, 2, K, K].
    ref_shapes = jax.tree.map(jnp.shape, jax.eval_shape(
        lambda: _init(net.clone(decoder_kernel=2), x)))
    shapes = jax.tree.map(jnp.shape, v)
    for layer in ("up_l3", "up_l2", "classifier_up"):
        assert ref_shapes["params"][layer]["kernel"] == (2, 2, K, K)
        assert shapes["params"][layer]["kernel"] == (4, 4, K, K)
        shapes["params"][layer]["kernel"] = ref_shapes["params"][layer]["kernel"]
    assert shapes == ref_shapes
    # At init the last transposed conv is bilinear x2 (jax.image.resize) on the interior.
    inp, out = _decoder_io(net, v, x, "classifier_up")
    assert out.shape == (1, 24, 20, K) and inp.shape == (1, 12, 10, K)
    ref = np.asarray(jax.image.resize(jnp.asarray(inp), out.shape, "bilinear"))
    np.testing.assert_allclose(out[:, 1:-1, 1:-1], ref[:, 1:-1, 1:-1], rtol=1e-5, atol=1e-5)
    # ...and learnable: the loss has a gradient on every tap of all three kernels.

    def loss(p):
        return jnp.sum(net.apply(dict(v, params=p), x, train=False)["out"][..., 0] ** 2)

    g = jax.jit(jax.grad(loss))(v["params"])
    for layer in ("up_l3", "up_l2", "classifier_up"):
        assert np.all(np.abs(np.asarray(g[layer]["kernel"])).sum((2, 3)) > 0)
    with pytest.raises(ValueError, match="decoder_kernel must be 2 or 4"):
        _shape(net.clone(decoder_kernel=3), (1, 24, 20, 3))


def test_espnet_decoder_kernel2_output_depends_on_pixel_parity():
    # Kernel 2 / stride 2: output pixel (2i + a, 2j + b) = input cell (i, j) through tap (a, b)
    # only (float64 NumPy reference), hence the 2x2-periodic pattern of an untrained decoder.
    x = jax.random.normal(jax.random.PRNGKey(0), (1, 16, 16, 3))
    net = ESPNet(K, widths=(5, 10, 20), alpha=1, beta=1, decoder_kernel=2)
    v = _init(net, x)
    inp, out = _decoder_io(net, v, x, "classifier_up")
    w = np.asarray(v["params"]["classifier_up"]["kernel"], np.float64)  # [2, 2, K, K]
    ref = np.einsum("nijc,abcd->niajbd", inp, w).reshape(out.shape)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    # A constant input map gives 4 different output values (one per parity), not a constant.
    const = np.einsum("c,abcd->abd", np.ones(K), w)
    assert np.ptp(const, axis=(0, 1)).max() > 1e-3
