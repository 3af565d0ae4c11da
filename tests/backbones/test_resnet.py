"""ResNet family: parameter counts against published/torchvision numbers, forward/backward on tiny
configurations, feature shapes against feature_info, registry construction; output_stride
(dilation instead of stride: strides, unchanged parameters, exactness, torchvision parity)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vai_jax
from vai_jax.backbones import resnet
from vai_jax.nn.residual import UNIT_ORDERS
from tests.backbones.zoo_checks import (abstract_init, assert_forward_backward, check_features,
                                       import_torchvision, n_params)


# torchvision 0.28 parameter counts (num_classes=1000); se_resnet50 as in the SENet paper's
# reference implementation.
TORCHVISION = {
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
    "resnet101": 44_549_160, "resnet152": 60_192_808,
    "resnext50_32x4d": 25_028_904, "resnext101_32x8d": 88_791_336,
    "resnext101_64x4d": 83_455_272, "wide_resnet50_2": 68_883_240,
    "wide_resnet101_2": 126_886_696,
}
PUBLISHED = {"resnext101_32x4d": 44_177_704, "se_resnet50": 28_088_024}


def bottleneck_resnet_count(stage_sizes, *, groups=1, base_width=64, se=0, classes=1000):
    """Closed-form parameter count of a torchvision-layout bottleneck ResNet (written out layer by
    layer, independently of the Flax code)."""
    total = 7 * 7 * 3 * 64 + 2 * 64
    cin = 64
    for planes, n in zip((64, 128, 256, 512), stage_sizes):
        width = planes * base_width // 64 * groups
        out = planes * 4
        for j in range(n):
            total += cin * width + 2 * width                      # conv1 + bn1
            total += 9 * width * width // groups + 2 * width      # grouped 3x3 + bn2
            total += width * out + 2 * out                        # conv3 + bn3
            if se:
                hid = out // se
                total += out * hid + hid + hid * out + out
            if j == 0:
                total += cin * out + 2 * out                      # projection + bn
            cin = out
    return total + cin * classes + classes


def cifar_count(n, classes=10):
    """He et al. 2016 CIFAR ResNet (6n+2 layers, option A): closed form."""
    total = 27 * 16 + 32
    cin = 16
    for c in (16, 32, 64):
        for _ in range(n):
            total += 9 * cin * c + 2 * c + 9 * c * c + 2 * c
            cin = c
    return total + 64 * classes + classes


@pytest.mark.parametrize("name", sorted(TORCHVISION) + sorted(PUBLISHED))
def test_param_count_matches_published(name):
    expected = {**TORCHVISION, **PUBLISHED}[name]
    assert n_params(vai_jax.create_model(name)) == expected


def test_closed_form_counts():
    assert bottleneck_resnet_count((3, 4, 6, 3)) == 25_557_032
    assert bottleneck_resnet_count((3, 4, 6, 3), se=16) == 28_088_024
    assert n_params(vai_jax.create_model("resnet200")) == bottleneck_resnet_count((3, 24, 36, 3))
    assert n_params(vai_jax.create_model("resnext101_32x4d")) == bottleneck_resnet_count(
        (3, 4, 23, 3), groups=32, base_width=4)
    assert n_params(vai_jax.create_model("se_resnet101")) == bottleneck_resnet_count(
        (3, 4, 23, 3), se=16)
    # every registered name is covered by a count test (each also checks feature channels)
    covered = set(TORCHVISION) | set(PUBLISHED) | {"resnet200", "se_resnet101"} | {
        f"resnet{d}_cifar" for d in (20, 32, 44, 56, 110)}
    assert covered == set(resnet.MODELS)


@pytest.mark.parametrize("depth,millions", [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85),
                                            (110, 1.7)])
def test_cifar_param_counts(depth, millions):
    n = (depth - 2) // 6
    got = n_params(vai_jax.create_model(f"resnet{depth}_cifar", num_classes=10), hw=32)
    assert got == cifar_count(n)
    assert round(got / 1e6, 2 if depth < 110 else 1) == millions  # He et al. 2016, Table 6


def test_torchvision_parity():
    tv = import_torchvision()
    for name, expected in TORCHVISION.items():
        ref = sum(p.numel() for p in getattr(tv.models, name)().parameters())
        assert ref == expected, name
    ref = sum(p.numel() for p in tv.models.resnext101_64x4d().parameters())
    assert ref == n_params(vai_jax.create_model("resnext101_64x4d"))


def test_resnet32_cifar_forward_backward():
    model = vai_jax.create_model("resnet32_cifar", num_classes=6)
    x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
    variables = assert_forward_backward(model, x, 6, abstract=True)  # the full net: shapes only
    paths = {"/".join(k.key for k in path) for path, _ in
             jax.tree_util.tree_flatten_with_path(variables["params"])[0]}
    assert "stage3/block5/conv2/kernel" in paths and "stem/conv/kernel" in paths
    assert [(f.channels, f.stride) for f in model.feature_info] == [
        (16, 1), (16, 1), (32, 2), (64, 4)]
    # concrete values on the same layout with one unit per stage (same code path, less compile)
    assert_forward_backward(vai_jax.create_model("resnet32_cifar", num_classes=6, stage_sizes=(1, 1, 1)),
                     x, 6)


def test_imagenet_layouts():
    # ResNet-18 abstractly; one tiny bottleneck net with every bottleneck option (grouped 3x3 as
    # ResNeXt, SE) concretely
    x = jax.random.normal(jax.random.key(2), (1, 35, 33, 3))
    assert_forward_backward(vai_jax.create_model("resnet18", num_classes=3), x, 3, abstract=True)
    model = vai_jax.create_model("resnext50_32x4d", num_classes=3, stage_sizes=(1, 1, 1, 1),
                                 widths=(8, 8, 8, 8), stem_width=4, groups=4, base_width=8,
                                 se_reduction=4)
    assert_forward_backward(model, x, 3)


@pytest.mark.parametrize("order,shortcut", [(o, "padding") for o in UNIT_ORDERS] + [
    ("original", "projection"), ("full_preact", "projection"), ("original", "projection_all")])
def test_orders_and_shortcuts_build(order, shortcut):
    model = vai_jax.create_model("resnet20_cifar", num_classes=2, stage_sizes=(1, 1, 1),
                                 widths=(4, 8, 8), stem_width=4, unit_order=order,
                                 shortcut=shortcut, zero_init_last=True)
    x = jax.random.normal(jax.random.key(3), (2, 9, 9, 3))
    variables = model.init(jax.random.key(0), x, train=False)
    (logits, feats), _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
    check_features(model, (logits, feats), x)
    # zero_init_last: every unit starts as its shortcut, so with identity/padding shortcuts the
    # stage output is a deterministic function of the stem output only.
    if shortcut == "padding" and order in ("original", "relu_before_add"):
        s1 = feats["stage1"]
        np.testing.assert_allclose(s1, jax.nn.relu(feats["stem"]) if order == "original"
                                   else feats["stem"], atol=1e-6)


def test_num_classes_zero_and_dtype():
    model = vai_jax.create_model("resnet20_cifar", num_classes=0, widths=(4, 4, 4),
                                 stem_width=4, dtype=jnp.bfloat16)
    x = jnp.ones((1, 16, 16, 3))
    variables = model.init(jax.random.key(0), x, train=False)
    logits, feats = model.apply(variables, x, train=False)
    assert logits is None
    assert feats["stage3"].dtype == jnp.bfloat16
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables["params"]))
    assert "fc" not in variables["params"]


def test_bad_input_and_fields():
    model = vai_jax.create_model("resnet20_cifar", widths=(4, 4, 4), stem_width=4)
    with pytest.raises(ValueError, match="x must have rank 4"):
        model.init(jax.random.key(0), jnp.ones((16, 16, 3)), train=False)
    with pytest.raises(ValueError, match="unit_order"):
        vai_jax.create_model("resnet20_cifar", unit_order="nope").init(
            jax.random.key(0), jnp.ones((1, 8, 8, 3)), train=False)
    with pytest.raises(ValueError, match="BasicUnit"):
        vai_jax.create_model("resnet18", groups=2).init(
            jax.random.key(0), jnp.ones((1, 32, 32, 3)), train=False)


# ----------------------------------------------------------------------- output_stride
def _expected_strides(model, output_stride):
    """Stage strides by torchvision's rule, written out: each stage multiplies the stride by 2
    (stage 1 by 1) until ``output_stride`` is reached, after which strides stay."""
    stride = model.stem_stride * (2 if model.stem_pool else 1)
    out = []
    for i in range(len(model.stage_sizes)):
        stride = min(stride * (1 if i == 0 else 2), output_stride)
        out.append(stride)
    return out


@pytest.mark.parametrize("name", sorted(resnet.MODELS))
def test_output_stride_for_every_name(name):
    plain = vai_jax.create_model(name)
    natural = plain.feature_info[-1].stride
    for os_ in (8, 16, 32) if natural == 32 else (1, 2, 4):
        model = vai_jax.create_model(name, output_stride=os_)
        info = model.feature_info
        assert [f.stride for f in info[1:]] == _expected_strides(model, os_)
        assert [(f.name, f.channels) for f in info] == [(f.name, f.channels)
                                                        for f in plain.feature_info]
    with pytest.raises(ValueError, match="output_stride must be one of"):
        vai_jax.create_model(name, output_stride=12).feature_info
    if natural == 4:  # CIFAR layouts: stride 4 at most
        with pytest.raises(ValueError, match=r"\[1, 2, 4\]"):
            vai_jax.create_model(name, output_stride=8).feature_info


def test_resnet18_stage_plan_and_param_count_at_every_output_stride():
    # torchvision resnet18: 11,689,512 parameters, at any output stride (dilation adds none).
    for os_ in (32, 16, 8):
        model = vai_jax.create_model("resnet18", output_stride=os_)
        assert n_params(model) == TORCHVISION["resnet18"]
        assert model.feature_info[-1].stride == os_
    # (stride, first_dilation, dilation) per stage at output stride 8
    assert vai_jax.create_model("resnet18", output_stride=8).stage_plan() == (
        (1, 1, 1), (2, 1, 1), (1, 1, 2), (1, 2, 4))


def test_dilated_resnet50_has_the_classification_parameters():
    # Same names and shapes at every output stride: a classification checkpoint loads as is.
    ref = jax.tree.map(jnp.shape, abstract_init(vai_jax.create_model("resnet50"), 64)[1])
    for os_ in (16, 8):
        model = vai_jax.create_model("resnet50", output_stride=os_)
        (_, feats), variables = abstract_init(model, 64)
        assert jax.tree.map(jnp.shape, variables) == ref
        assert feats["stage4"].shape == (1, 64 // os_, 64 // os_, 2048)
        assert feats["stage3"].shape == (1, 64 // min(os_, 16), 64 // min(os_, 16), 1024)


TINY = dict(stage_sizes=(1, 1, 1, 2), widths=(4, 4, 8, 8), stem_width=4, stem_kernel=3,
            num_classes=3)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_dilation_instead_of_stride_is_exact(name):
    # Load the strided network's variables into the dilated one (by name, unchanged): the
    # dense map sampled every 32 / output_stride pixels is the strided map, and the logits
    # (global mean) are those of the network on the same grid; output_stride=32 is the default
    # network bit for bit. Odd sizes: maps round up (ceil).
    x = jax.random.normal(jax.random.key(0), (1, 37, 29, 3))
    base = vai_jax.create_model(name, **TINY)
    variables = base.init(jax.random.key(1), x, train=False)
    variables = jax.tree.map(
        lambda a: a + 0.1 * jax.random.normal(jax.random.key(2), a.shape), variables)
    logits, f32 = base.apply(variables, x, train=False)
    same_logits, same = vai_jax.create_model(name, output_stride=32, **TINY).apply(
        variables, x, train=False)
    np.testing.assert_array_equal(same_logits, logits)
    np.testing.assert_array_equal(same["stage4"], f32["stage4"])
    for os_, sub in ((16, 2), (8, 4)):
        dense = vai_jax.create_model(name, output_stride=os_, **TINY)
        _, f = dense.apply(variables, x, train=False)
        check_features(dense, (None, f), x)
        assert f["stage4"].shape[1:3] == (-(-37 // os_), -(-29 // os_))
        np.testing.assert_allclose(f["stage4"][:, ::sub, ::sub], f32["stage4"], atol=1e-4)


def test_multi_grid_rates():
    # DeepLab v3 multi-grid (1, 2): unit j of the last stage uses rate dilation * grid[j];
    # the parameters do not change, the output does, a wrong length is rejected.
    x = jax.random.normal(jax.random.key(0), (1, 32, 32, 3))
    kw = dict(TINY, output_stride=16)
    plain = vai_jax.create_model("resnet18", **kw)
    grid = vai_jax.create_model("resnet18", multi_grid=(1, 2), **kw)
    variables = plain.init(jax.random.key(1), x, train=False)
    assert jax.tree.map(jnp.shape, jax.eval_shape(
        lambda: grid.init(jax.random.key(1), x, train=False))) == jax.tree.map(jnp.shape,
                                                                            variables)
    a = plain.apply(variables, x, train=False)[1]["stage4"]
    b = grid.apply(variables, x, train=False)[1]["stage4"]
    assert a.shape == b.shape and float(jnp.abs(a - b).max()) > 0
    with pytest.raises(ValueError, match="multi_grid must have 2 entries"):
        vai_jax.create_model("resnet18", multi_grid=(1, 2, 4), **kw).init(
            jax.random.key(0), x, train=False)


def test_dilated_resnet50_matches_torchvision():
    tv = import_torchvision()
    import torch

    from vai_jax.weights import from_torchvision

    torch.manual_seed(0)
    ref = tv.models.resnet50(replace_stride_with_dilation=[False, True, True]).eval()
    with torch.no_grad():  # non-trivial BN statistics
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    x = np.random.default_rng(0).normal(size=(1, 3, 48, 40)).astype(np.float32)
    feats = {}
    ref.layer4.register_forward_hook(lambda m, i, o: feats.__setitem__("stage4", o))
    with torch.no_grad():
        logits = ref(torch.from_numpy(x)).numpy()
    # torchvision's checkpoint, converted by name as for the classifier, loads as is
    model, variables = from_torchvision(
        "resnet50", {k: v.numpy() for k, v in ref.state_dict().items()}, output_stride=8)
    assert [f.stride for f in model.feature_info] == [2, 4, 8, 8, 8]
    got_logits, got = model.apply(variables, jnp.asarray(x.transpose(0, 2, 3, 1)), train=False)
    np.testing.assert_allclose(got["stage4"], feats["stage4"].numpy().transpose(0, 2, 3, 1),
                               rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(got_logits, logits, rtol=1e-3, atol=1e-3)
