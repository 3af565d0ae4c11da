"""Channel pruning shrinks the layers: parameter counts by formula, outputs equal to the
unpruned network with the removed channels silenced."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util
from tests.analysis.analysis_testing import random_variables

from vai_jax.analysis import count_params, summarize
from vai_jax.analysis.plain_cnn import PlainCNN
from vai_jax.analysis.pruning import (activation_scores, keep_indices, plain_cnn_specs,
                                      prune_plain_cnn, weight_scores, zero_channels)


def _plain_params(widths, classes, c_in=3):
    """conv 3x3 without bias + BN (scale, bias) per layer, then fc (kernel + bias)."""
    total, prev = 0, c_in
    for w in widths:
        total += 9 * prev * w + 2 * w
        prev = w
    return total + prev * classes + classes


def _net():
    model = PlainCNN(widths=(6, 8, 10), pool_after=(1,), num_classes=4)
    v = random_variables(model, (1, 12, 12, 3), bias_std=0.5)
    # Non-trivial BN statistics so that slicing them matters.
    rng = np.random.default_rng(1)
    v["batch_stats"] = jax.tree.map(lambda a: jnp.asarray(rng.uniform(0.5, 1.5, a.shape),
                                                          a.dtype), v["batch_stats"])
    return model, v


def test_pruned_network_is_smaller_and_exact():
    model, v = _net()
    assert count_params(v) == _plain_params((6, 8, 10), 4)
    ratios = {"conv1": 0.5, "conv2": 0.25, "conv3": 0.3}
    small, sv, kept = prune_plain_cnn(model, v, ratios, method="l1")
    assert small.widths == (3, 6, 7)
    assert count_params(sv) == _plain_params((3, 6, 7), 4)
    # Re-initialising the small model gives the same tree structure and shapes.
    ref = jax.eval_shape(lambda: small.init(jax.random.PRNGKey(0), jnp.zeros((1, 12, 12, 3)),
                                            train=False))
    assert jax.tree.map(lambda a: a.shape, ref) == jax.tree.map(jnp.shape, sv)
    # Kept channels are the highest L1 norms (independent NumPy computation).
    k1 = np.abs(np.asarray(v["params"]["conv1"]["conv"]["kernel"])).sum((0, 1, 2))
    assert kept["conv1"].tolist() == sorted(np.argsort(-k1)[:3].tolist())
    # Outputs equal the big network with the removed channels' BN scale and bias zeroed.
    silenced = v
    specs = plain_cnn_specs(model)
    widths = dict(zip(specs, model.widths))
    for name, keep in kept.items():
        drop = np.setdiff1d(np.arange(widths[name]), keep)
        silenced = zero_channels(silenced, specs[name], drop)
    x = jax.random.normal(jax.random.PRNGKey(3), (2, 12, 12, 3))
    big_logits, big_feats = jax.jit(lambda v, x: model.apply(v, x, train=False))(silenced, x)
    small_logits, small_feats = jax.jit(lambda v, x: small.apply(v, x, train=False))(sv, x)
    np.testing.assert_allclose(small_logits, big_logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(small_feats["conv2"], big_feats["conv2"][..., kept["conv2"]],
                               rtol=1e-5, atol=1e-5)
    # Fewer multiply-accumulates, by the conv formula (12x12 then 6x6 after the pool).
    macs = lambda w: 144 * 27 * w[0] + 36 * 9 * (w[0] * w[1] + w[1] * w[2]) + w[2] * 4
    assert summarize(small, (1, 12, 12, 3), train=False).macs == macs((3, 6, 7))
    assert summarize(model, (1, 12, 12, 3), train=False).macs == macs((6, 8, 10))


def test_activation_based_scores():
    model, v = _net()
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(4), (10, 12, 12, 3)))
    stats = activation_scores(model, v, x, ["conv1", "conv3"], batch_size=4, train=False)
    feats = np.asarray(jax.jit(lambda v, x: model.apply(v, x, train=False))(v, x)[1]["conv3"],
                       np.float64)
    np.testing.assert_allclose(stats["conv3"]["mean_activation"], feats.mean((0, 1, 2)),
                               rtol=1e-5)
    np.testing.assert_allclose(stats["conv3"]["nonzero"], (feats > 0).mean((0, 1, 2)))
    small, sv, kept = prune_plain_cnn(model, v, {"conv3": 0.5}, method="nonzero",
                                      activation_stats=stats)
    assert small.widths == (6, 8, 5)
    assert kept["conv3"].tolist() == sorted(
        np.argsort(-stats["conv3"]["nonzero"], kind="stable")[:5].tolist())
    l2 = weight_scores(v["params"], plain_cnn_specs(model)["conv2"], "l2")
    k = np.asarray(v["params"]["conv2"]["conv"]["kernel"], np.float64)
    np.testing.assert_allclose(l2, np.linalg.norm(k.reshape(-1, 8), axis=0))


def test_keep_indices_and_bad_ratios():
    assert keep_indices([3.0, 1.0, 2.0, 0.5], 0.5).tolist() == [0, 2]
    assert keep_indices([1.0, 2.0], 0.0).tolist() == [0, 1]
    assert keep_indices([1.0, 2.0, 3.0], 0.99).tolist() == [2]  # at least one channel
    model, v = _net()
    for bad in (1.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"in \[0, 1\)"):
            prune_plain_cnn(model, v, bad)
    with pytest.raises(ValueError, match=r"no layer named 'conv7'.*conv1, conv2, conv3"):
        prune_plain_cnn(model, v, {"conv7": 0.5})
    with pytest.raises(ValueError, match="needs activation_stats"):
        prune_plain_cnn(model, v, 0.5, method="mean_activation")
    with pytest.raises(ValueError, match="method must be one of"):
        prune_plain_cnn(model, v, 0.5, method="random")


# ----------------------------------------------------------------------------- ResNet units
def _resnet(block, order):
    from vai_jax.backbones.resnet import ResNet
    from vai_jax.nn.residual import BasicUnit, BottleneckUnit
    cls = BasicUnit if block == "basic" else BottleneckUnit
    model = ResNet(stage_sizes=(2, 1), block_cls=cls, num_classes=3, widths=(8, 12),
                   stem_width=8, stem_kernel=3, stem_stride=1, stem_pool=False,
                   unit_order=order)
    v = random_variables(model, (1, 8, 8, 3), bias_std=0.5)
    rng = np.random.default_rng(2)
    v["batch_stats"] = jax.tree.map(lambda a: jnp.asarray(rng.uniform(0.5, 1.5, a.shape),
                                                          a.dtype), v["batch_stats"])
    return model, v


@pytest.mark.parametrize("block,order", [("basic", "original"), ("bottleneck", "original"),
                                         ("basic", "full_preact")])
def test_resnet_inner_pruning_shrinks_and_is_exact(block, order):
    from vai_jax.analysis.pruning import prune_resnet, resnet_specs
    model, v = _resnet(block, order)
    specs = resnet_specs(model)
    n_inner = 1 if block == "basic" else 2
    assert len(specs) == 3 * n_inner  # 2 + 1 units
    before = model.unit_inner_widths()
    small, sv, kept = prune_resnet(model, v, 0.5, method="l2")
    after = small.unit_inner_widths()
    for s_before, s_after in zip(before, after):
        for u_before, u_after in zip(s_before, s_after):
            assert u_after == tuple(c - c // 2 for c in u_before)
    # The small model's own init has exactly the pruned variables' shapes, and fewer params.
    ref = jax.eval_shape(lambda: small.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3)),
                                            train=False))
    assert jax.tree.map(lambda a: a.shape, ref) == jax.tree.map(jnp.shape, sv)
    flat = {"/".join(k): a for k, a in traverse_util.flatten_dict(v["params"]).items()}
    if block == "basic":
        # Each removed channel of a basic unit's conv1 (C_in -> c) takes its 3x3xC_in filter,
        # one BN (scale, bias) pair and its 3x3xC_out slice of conv2: units (C_in, c, C_out) =
        # (8, 8, 8), (8, 8, 8), (8, 12, 12), half of c removed.
        removed = sum((c // 2) * (9 * cin + 2 + 9 * cout)
                      for cin, c, cout in ((8, 8, 8), (8, 8, 8), (8, 12, 12)))
        assert count_params(v) - count_params(sv) == removed
    else:
        assert count_params(sv) < count_params(v)
    # Outputs equal the unpruned network with the removed channels' BN silenced.
    silenced = v
    for name, keep in kept.items():
        c = flat[name + "/kernel"].shape[-1]
        silenced = zero_channels(silenced, specs[name], np.setdiff1d(np.arange(c), keep))
    x = jax.random.normal(jax.random.PRNGKey(5), (2, 8, 8, 3))
    big = jax.jit(lambda v, x: model.apply(v, x, train=False))(silenced, x)
    sm = jax.jit(lambda v, x: small.apply(v, x, train=False))(sv, x)
    np.testing.assert_allclose(sm[0], big[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(sm[1]["stage2"], big[1]["stage2"], rtol=1e-4, atol=1e-5)
    # ... and not the unpruned network itself (the removed channels mattered).
    full = jax.jit(lambda v, x: model.apply(v, x, train=False))(v, x)
    assert np.abs(np.asarray(full[0]) - np.asarray(sm[0])).max() > 1e-5


def test_resnet_activation_scores_are_post_relu():
    from vai_jax.analysis.layers import layer_outputs
    from vai_jax.analysis.pruning import prune_resnet, resnet_specs, spec_activation_scores
    model, v = _resnet("basic", "original")
    specs = resnet_specs(model)
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(6), (6, 8, 8, 3)))
    stats = spec_activation_scores(model, v, x, specs, batch_size=4, train=False)
    bn = np.asarray(layer_outputs(model, v, x, ["stage1/block2/bn1"], train=False)[
        "stage1/block2/bn1"], np.float64)
    relu = np.maximum(bn, 0)
    np.testing.assert_allclose(stats["stage1/block2/bn1"]["mean_activation"],
                               relu.mean((0, 1, 2)), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(stats["stage1/block2/bn1"]["nonzero"], (bn > 0).mean((0, 1, 2)))
    small, _, kept = prune_resnet(model, v, {"stage1/block2/conv1": 0.25}, method="nonzero",
                                  activation_stats=stats)
    assert small.inner_widths[0][1] == (6,) and small.inner_widths[0][0] == (8,)
    assert kept["stage1/block2/conv1"].tolist() == sorted(
        np.argsort(-(bn > 0).mean((0, 1, 2)), kind="stable")[:6].tolist())
    with pytest.raises(ValueError, match=r"no layer named 'stage1/block9/conv1'"):
        prune_resnet(model, v, {"stage1/block9/conv1": 0.5})


def test_inner_widths_validation():
    from vai_jax.backbones.resnet import ResNet
    from vai_jax.nn.residual import BasicUnit
    model = ResNet(stage_sizes=(1,), block_cls=BasicUnit, num_classes=2, widths=(4,),
                   stem_width=4, stem_kernel=3, stem_stride=1, stem_pool=False,
                   inner_widths=(((3, 3),),))
    with pytest.raises(ValueError, match="inner_widths must be 1 positive int"):
        jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3)),
                                          train=False))
    bad = model.clone(inner_widths=((3,), (3,)))
    with pytest.raises(ValueError, match="one entry per unit of each stage"):
        jax.eval_shape(lambda: bad.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3)),
                                        train=False))
