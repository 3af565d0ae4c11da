"""Parameter and multiply-accumulate counts: hand-computed layers, published figures, invariants."""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vai_jax.analysis import count_params, human, summarize
from vai_jax.backbones import create_model


def _reference_param_count(variables):
    """Independent of count_params: walk the nested dict by hand."""
    def walk(d):
        return sum(walk(v) if isinstance(v, dict) else int(np.prod(v.shape)) for v in d.values())
    return walk(dict(variables["params"]))


def _init_shapes(model, shape, **kw):
    return jax.eval_shape(lambda x: model.init(jax.random.key(0), x, **kw),
                          jax.ShapeDtypeStruct(shape, jnp.float32))


# ---- the 1x1 bottleneck example (GoogLeNet, section 5 / the course notes) -------------------

class _Direct5x5(nn.Module):
    @nn.compact
    def __call__(self, x, *, train: bool):
        return nn.Conv(32, (5, 5), padding=2, name="conv5x5")(x)


class _Bottleneck5x5(nn.Module):
    @nn.compact
    def __call__(self, x, *, train: bool):
        x = nn.Conv(16, (1, 1), name="reduce")(x)
        return nn.Conv(32, (5, 5), padding=2, name="conv5x5")(x)


def test_one_by_one_bottleneck_example():
    direct = summarize(_Direct5x5(), (1, 28, 28, 192), train=False)
    assert direct.macs == 28 * 28 * 32 * 5 * 5 * 192 == 120_422_400
    assert human(direct.macs, digits=1) == "120.4 M"
    reduced = summarize(_Bottleneck5x5(), (1, 28, 28, 192), train=False)
    assert reduced.row("reduce").macs == 28 * 28 * 16 * 192  # 2.4 M
    assert reduced.row("conv5x5").macs == 28 * 28 * 32 * 5 * 5 * 16  # 10.0 M
    assert [human(r.macs, digits=1) for r in reduced.rows] == ["2.4 M", "10.0 M"]
    assert reduced.macs == reduced.row("reduce").macs + reduced.row("conv5x5").macs
    assert direct.macs / reduced.macs > 9.6  # "about a tenth of the cost"


# ---- every counted layer type, hand-computed --------------------------------------------------

class _Tiny(nn.Module):
    @nn.compact
    def __call__(self, x, *, train: bool):
        x = nn.Conv(8, (3, 3), strides=2, padding=1, name="strided")(x)
        x = nn.Conv(8, (3, 3), padding="VALID", kernel_dilation=2, feature_group_count=4,
                    name="dilated_grouped")(x)
        x = nn.Conv(12, (1, 5), strides=(1, 2), padding="SAME", use_bias=False, name="same")(x)
        x = nn.ConvTranspose(4, (2, 2), strides=(2, 2), name="up")(x)
        x = nn.Conv(4, (3, 3), padding=1, feature_group_count=4, name="depthwise")(x)
        x = nn.BatchNorm(use_running_average=not train, name="bn")(x)
        x = nn.relu(x)
        x = nn.Dense(7, name="pointwise_dense")(x)
        y = nn.DenseGeneral((2, 3), axis=(-2, -1), name="dense_general")(x)
        z = nn.Einsum((7, 5), "bhwc,cd->bhwd", use_bias=False, name="einsum")(x)
        flat = jnp.concatenate([y.reshape(y.shape[0], -1), z.reshape(z.shape[0], -1)], -1)
        return nn.Dense(3, name="head")(flat)


def _out(n, k, s, pad_total, d=1):
    return (n + pad_total - d * (k - 1) - 1) // s + 1


def test_tiny_net_hand_computed():
    s = summarize(_Tiny(), (1, 17, 15, 6), train=False)
    h1, w1 = _out(17, 3, 2, 2), _out(15, 3, 2, 2)              # 9, 8
    h2, w2 = _out(h1, 3, 1, 0, d=2), _out(w1, 3, 1, 0, d=2)    # 5, 4
    h3, w3 = math.ceil(h2 / 1), math.ceil(w2 / 2)              # SAME: 5, 2
    h4, w4 = 2 * h3, 2 * w3                                    # transpose, stride 2: 10, 4
    expected = {  # name: (output shape without batch, params, MACs)
        "strided": ((h1, w1, 8), 3 * 3 * 6 * 8 + 8, h1 * w1 * 8 * 3 * 3 * 6),
        "dilated_grouped": ((h2, w2, 8), 3 * 3 * 2 * 8 + 8, h2 * w2 * 8 * 3 * 3 * (8 // 4)),
        "same": ((h3, w3, 12), 1 * 5 * 8 * 12, h3 * w3 * 12 * 1 * 5 * 8),
        "up": ((h4, w4, 4), 2 * 2 * 12 * 4 + 4, h3 * w3 * 2 * 2 * 12 * 4),
        "depthwise": ((h4, w4, 4), 3 * 3 * 1 * 4 + 4, h4 * w4 * 4 * 3 * 3 * 1),
        "bn": ((h4, w4, 4), 2 * 4, 0),
        "pointwise_dense": ((h4, w4, 7), 4 * 7 + 7, h4 * w4 * 4 * 7),
        "dense_general": ((h4, 2, 3), w4 * 7 * 6 + 6, h4 * 6 * w4 * 7),
        "einsum": ((h4, w4, 5), 7 * 5, h4 * w4 * 5 * 7),
        "head": ((3,), (h4 * 6 + h4 * w4 * 5) * 3 + 3, (h4 * 6 + h4 * w4 * 5) * 3),
    }
    assert [r.name for r in s.rows] == list(expected)
    for name, (shape, params, macs) in expected.items():
        row = s.row(name)
        assert row.output_shape == (1, *shape), name
        assert (row.params, row.macs) == (params, macs), name
    assert s.row("dilated_grouped").groups == 4
    assert s.row("dilated_grouped").kernel_shape == (3, 3, 2, 8)
    assert s.macs == sum(m for _, _, m in expected.values())
    assert s.params == sum(p for _, p, _ in expected.values())


def test_unshared_conv_local():
    model = nn.ConvLocal(3, (2, 2), padding="VALID")
    s = summarize(model, (2, 5, 4, 6))
    positions = 4 * 3  # (5 - 1) x (4 - 1) output positions, one kernel each
    assert s.rows[0].kernel_shape == (4, 3, 2 * 2 * 6, 3)
    assert s.macs == positions * 3 * 2 * 2 * 6
    assert s.params == positions * 2 * 2 * 6 * 3 + positions * 3  # unshared bias too


def test_macs_are_per_example():
    one = summarize(_Tiny(), (1, 17, 15, 6), train=False)
    three = summarize(_Tiny(), (3, 17, 15, 6), train=False)
    assert (three.macs, three.params) == (one.macs, one.params)
    assert [r.macs for r in three.rows] == [r.macs for r in one.rows]
    assert three.row("strided").output_shape[0] == 3


# ---- invariants: totals are sums; params equal the params pytree ------------------------------

class _Shared(nn.Module):
    """A module called twice, a parameter of the top module, one created in setup, BN stats."""

    def setup(self):
        self.proj = nn.Dense(4)
        self.scale = self.param("scale", nn.initializers.ones, (4,))
        self.bn = nn.BatchNorm(use_running_average=True)

    def __call__(self, x, *, train: bool):
        return self.bn(self.proj(self.proj(x)) * self.scale)


def test_shared_module_counts_params_once_and_macs_per_call():
    s = summarize(_Shared(), (2, 5, 4), train=False)
    assert s.row("proj").params == 4 * 4 + 4
    assert s.row("proj").macs == 2 * (5 * 4 * 4)
    assert s.row("").params == 4 and s.row("bn").params == 8  # BN mean/var are not params
    variables = _init_shapes(_Shared(), (2, 5, 4), train=False)
    assert "batch_stats" in variables
    assert s.params == _reference_param_count(variables) == count_params(variables) == 32


def _assert_invariants(model, shape):
    s = summarize(model, shape, train=False)
    variables = _init_shapes(model, shape, train=False)
    assert s.params == _reference_param_count(variables)
    assert s.params == sum(r.params for r in s.rows)
    assert s.macs == sum(r.macs for r in s.rows)
    names = [r.name for r in s.rows]
    assert len(names) == len(set(names))
    for depth in (1, 2, 3):
        g = s.group_by(depth)
        assert (g.params, g.macs) == (s.params, s.macs)
        assert sum(r.params for r in g.rows) == s.params
        assert sum(r.macs for r in g.rows) == s.macs
    return s


@pytest.mark.parametrize("model", [_Tiny(), _Bottleneck5x5()], ids=["tiny", "bottleneck"])
def test_invariants_ad_hoc(model):
    _assert_invariants(model, (1, 17, 15, 6) if isinstance(model, _Tiny) else (1, 28, 28, 192))


class _WithAux(nn.Module):
    """A branch that exists at init and in training only, like GoogLeNet's aux classifiers."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        y = nn.Dense(3, name="main")(x)
        if train or self.is_initializing():
            y = y + nn.Dense(3, name="aux")(x)
        return y


def test_init_only_branch_has_params_but_no_inference_macs():
    infer = summarize(_WithAux(), (1, 4), train=False)
    train = summarize(_WithAux(), (1, 4), train=True)
    assert [r.name for r in infer.rows] == ["main", "aux"]
    assert infer.params == train.params == 2 * (4 * 3 + 3)
    assert (infer.row("aux").macs, train.row("aux").macs) == (0, 4 * 3)
    assert infer.macs == 12 and train.macs == 24


# ---- published figures of the registered backbones -------------------------------------------

# torchvision 0.28's weight tables: "num_params" (exact) and "_ops" (GFLOPS in the multiply-
# accumulate convention, 3 decimals; 4.089 for ResNet-50 at 224). Name: (input size, params,
# GMACs, overrides to create_model).
_TORCHVISION = {
    "resnet18": (224, 11_689_512, 1.814, {}),
    "resnet34": (224, 21_797_672, 3.664, {}),
    "resnet50": (224, 25_557_032, 4.089, {}),
    "resnet101": (224, 44_549_160, 7.801, {}),
    "resnet152": (224, 60_192_808, 11.514, {}),
    "resnext50_32x4d": (224, 25_028_904, 4.23, {}),
    "wide_resnet50_2": (224, 68_883_240, 11.398, {}),
    # torchvision's GoogLeNet: BatchNorm, 3x3 kernels in the "5x5" branches, no aux heads.
    "googlenet_bn": (224, 6_624_904, 1.498, {"kernel5x5": 3}),
    # 23.83 M without the auxiliary classifier; torchvision's count includes it.
    "inception_v3": (299, 27_161_264, 5.713, {"aux_logits": True}),
    "alexnet": (224, 61_100_840, 0.714, {}),
    "vgg11": (224, 132_863_336, 7.609, {}),
    "vgg16": (224, 138_357_544, 15.47, {}),
    "vgg16_bn": (224, 138_365_992, 15.47, {}),
    "vgg19": (224, 143_667_240, 19.632, {}),
    "densenet121": (224, 7_978_856, 2.834, {}),
    "densenet169": (224, 14_149_480, 3.36, {}),
    "squeezenet1_0": (224, 1_248_424, 0.819, {}),
    "squeezenet1_1": (224, 1_235_496, 0.349, {}),
}


@pytest.mark.parametrize("name", list(_TORCHVISION))
def test_torchvision_params_and_macs(name):
    size, params, gmacs, overrides = _TORCHVISION[name]
    s = summarize(create_model(name, **overrides), (1, size, size, 3), train=False)
    assert s.params == params
    assert round(s.macs / 1e9, 3) == gmacs


@pytest.mark.parametrize("name", ["resnet50", "googlenet", "densenet121", "mobilenet_v1"])
def test_invariants_registered(name):
    _assert_invariants(create_model(name), (1, 64, 64, 3))


def test_mobilenet_v1_paper():
    """Howard et al. 2017, Table 8: 1.0 MobileNet-224, 569 M mult-adds, 4.2 M parameters."""
    s = summarize(create_model("mobilenet_v1"), (1, 224, 224, 3), train=False)
    assert round(s.macs / 1e6) == 569
    assert round(s.params / 1e6, 1) == 4.2


@pytest.mark.parametrize("groups,mflops", [(1, 143), (2, 140), (3, 137), (4, 133), (8, 137)])
def test_shufflenet_v1_paper(groups, mflops):
    """Zhang et al. 2018, Table 1: complexity of ShuffleNet 1x (convolutions; MFLOPs = M mult-adds)."""
    s = summarize(create_model(f"shufflenet_v1_g{groups}"), (1, 224, 224, 3), train=False)
    convs = s.macs - s.row("fc").macs
    assert abs(convs / 1e6 - mflops) <= 0.6


def test_resnet32_cifar_paper():
    """He et al. 2016, Table 6: ResNet-32 on CIFAR-10 has 0.46 M parameters."""
    s = summarize(create_model("resnet32_cifar", num_classes=10), (1, 32, 32, 3), train=False)
    assert round(s.params / 1e6, 2) == 0.46
    # 3 stages of 5 basic blocks (two 3x3 convs), widths 16/32/64 at 32/16/8 px, plus the stem.
    convs = 32 * 32 * 16 * 9 * 3 + sum(
        hw * hw * c * 9 * c * 2 * 5 for hw, c in ((32, 16), (16, 32), (8, 64)))
    # the first conv of stages 2 and 3 has half the input channels
    convs -= 16 * 16 * 32 * 9 * 16 + 8 * 8 * 64 * 9 * 32
    assert s.macs - 64 * 10 == convs


# ---- GoogLeNet, Szegedy et al. 2015, Table 1 -------------------------------------------------

# name: (map size, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj, params K, ops M)
_TABLE1 = {
    "inception_3a": (28, 64, 96, 128, 16, 32, 32, 159, 128),
    "inception_3b": (28, 128, 128, 192, 32, 96, 64, 380, 304),
    "inception_4a": (14, 192, 96, 208, 16, 48, 64, 364, 73),
    "inception_4b": (14, 160, 112, 224, 24, 64, 64, 437, 88),
    "inception_4c": (14, 128, 128, 256, 24, 64, 64, 463, 100),
    "inception_4d": (14, 112, 144, 288, 32, 64, 64, 580, 119),
    "inception_4e": (14, 256, 160, 320, 32, 128, 128, 840, 170),
    "inception_5a": (7, 256, 160, 320, 32, 128, 128, 1072, 54),
    "inception_5b": (7, 384, 192, 384, 48, 128, 128, 1388, 71),
}
# Rows where Table 1's own params/ops columns disagree with its width columns (the widths give
# 4c: 497.5K; 5a: 1018K params and 51.1M ops). The network follows the widths.
_TABLE1_ERRATA = {"inception_4c": "params", "inception_5a": "params+ops"}


def _weights(summary, prefix):
    """Kernel elements (the paper's "params": no biases) of the convs under ``prefix``."""
    return sum(math.prod(r.kernel_shape) for r in summary.rows
               if r.name.startswith(prefix + "/") and r.kernel_shape is not None)


@pytest.fixture(scope="module")
def googlenet_summary():
    return summarize(create_model("googlenet"), (1, 224, 224, 3), train=False)


def test_googlenet_table1_inception_rows(googlenet_summary):
    s, modules = googlenet_summary, googlenet_summary.group_by(1)
    c_in = 192
    for name, (hw, c1, r3, c3, r5, c5, pp, params_k, ops_m) in _TABLE1.items():
        row = modules.row(name)
        # exact, from the widths (5x5 really 5x5)
        weights = c_in * c1 + c_in * r3 + 9 * r3 * c3 + c_in * r5 + 25 * r5 * c5 + c_in * pp
        assert _weights(s, name) == weights, name
        assert row.macs == hw * hw * weights, name
        assert row.output_shape == (1, hw, hw, c1 + c3 + c5 + pp), name
        # the printed columns, within their rounding (K = 1024, as the 3a row shows: 159.5K)
        errata = _TABLE1_ERRATA.get(name, "")
        if "ops" not in errata:
            assert abs(row.macs / 1e6 - ops_m) < 1.0, name
        if "params" not in errata:
            assert abs(weights / 1024 - params_k) / params_k < 0.02, name
        c_in = c1 + c3 + c5 + pp
    assert _weights(s, "inception_4c") / 1024 == 497.5
    assert round(modules.row("inception_5a").macs / 1e6, 1) == 51.1


def test_googlenet_table1_stem_and_classifier(googlenet_summary):
    s = googlenet_summary
    # "conv 3x3 ... 112K params, 360M ops": the 1x1 reduce and the 3x3 together, at 56x56.
    weights = 64 * 64 + 9 * 64 * 192
    assert _weights(s, "conv2_reduce") + _weights(s, "conv2") == weights
    assert round(weights / 1024) == 112
    assert round((s.row("conv2_reduce/conv").macs + s.row("conv2/conv").macs) / 1e6) == 360
    # "conv 7x7/2": the table prints 2.7K params / 34M ops, which no 7x7x3 -> 64 conv at 112x112
    # gives (7*7*3*64 = 9,408 weights; 118M MACs); we check the layer as specified.
    assert s.row("conv1/conv").kernel_shape == (7, 7, 3, 64)
    assert s.row("conv1/conv").macs == 112 * 112 * 64 * 7 * 7 * 3
    # "linear: 1000K params, 1M ops"
    assert s.row("fc").params == 1024 * 1000 + 1000 and s.row("fc").macs == 1024 * 1000
    # Section 1 speaks of "a computational budget of 1.5 billion multiply-adds"; the widths of
    # Table 1 give 1.58 G.
    assert 1.5e9 < s.macs < 1.6e9


def test_resnet50_stage_rows():
    s = summarize(create_model("resnet50"), (1, 224, 224, 3), train=False)
    assert s.row("stem/conv").macs == 112 * 112 * 64 * 7 * 7 * 3  # 118 M
    stages = s.group_by(1)
    assert [r.name for r in stages.rows][:5] == ["stem", "stage1", "stage2", "stage3", "stage4"]
    assert stages.row("stage4").output_shape == (1, 7, 7, 2048)
    assert stages.row("fc").macs == 2048 * 1000


# ---- rendering and argument checking ----------------------------------------------------------

def test_text_and_markdown_rendering():
    s = summarize(_Tiny(), (1, 17, 15, 6), train=False)
    text = s.to_text()
    assert str(s) == text
    for r in s.rows:
        assert r.name in text
    assert f"{s.params:,}" in text and f"{s.macs:,}" in text
    md = s.to_markdown()
    table = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert len(table) == len(s.rows) + 2
    assert all(ln.count("|") == 7 for ln in table)
    assert "| dilated_grouped | Conv | 1x5x4x8 | 3x3x2x8 g=4 |" in md


@pytest.mark.parametrize("bad", [(), (1, 0, 4, 3), [1, 2.5], "1x2", None])
def test_bad_input_shape(bad):
    with pytest.raises(ValueError, match="input_shape"):
        summarize(_Tiny(), bad, train=False)


def test_count_params_accepts_params_or_variables():
    variables = _init_shapes(_Tiny(), (1, 17, 15, 6), train=False)
    n = _reference_param_count(variables)
    assert count_params(variables) == count_params(variables["params"]) == n
    real = jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), variables)  # concrete arrays
    assert count_params(real) == n
    with pytest.raises(TypeError, match="variables_or_params"):
        count_params({"params": {"w": "not an array"}})
