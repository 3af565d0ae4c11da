"""Parameter and multiply-accumulate counts: hand-computed layers, published figures, invariants."""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vai_jax.analysis import count_params, human, summarize
from vai_jax.backbones import create_model, list_models


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


def _check_invariants(model, shape):
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
    _check_invariants(model, (1, 17, 15, 6) if isinstance(model, _Tiny) else (1, 28, 28, 192))


# ---- published figures of the registered backbones -------------------------------------------

# torchvision's model tables (params exact, "GFLOPS" = GMACs rounded to 2 decimals) and papers.
_PUBLISHED = {
    # name: (input size, params, GMACs, decimals of the published GMACs)
    "resnet18": (224, 11_689_512, 1.81, 2),
    "resnet50": (224, 25_557_032, 4.09, 2),
    "resnet152": (224, 60_192_808, 11.51, 2),
}


def _registered(name):
    return name in list_models()


@pytest.mark.parametrize("name", sorted(_PUBLISHED))
def test_published_params_and_macs(name):
    size, params, gmacs, decimals = _PUBLISHED[name]
    s = _check_invariants(create_model(name), (1, size, size, 3))
    assert s.params == params
    assert round(s.macs / 1e9, decimals) == gmacs


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
    real = _Tiny().init(jax.random.key(0), jnp.zeros((1, 17, 15, 6)), train=False)
    assert count_params(real) == n
    with pytest.raises(TypeError, match="variables_or_params"):
        count_params({"params": {"w": "not an array"}})
