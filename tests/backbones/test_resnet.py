"""ResNet family: parameter counts against published/torchvision numbers, forward/backward on tiny
configurations, feature shapes against feature_info, registry construction."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vai_jax
from vai_jax.backbones import resnet
from vai_jax.nn.residual import UNIT_ORDERS
from tests.backbones.zoo_checks import check_features, assert_forward_backward, import_torchvision, n_params


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
