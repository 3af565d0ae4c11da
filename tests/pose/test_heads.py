"""Tests for vai_jax.pose.heads: shapes on real backbone features, parameter counts, outputs."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vai_jax
from vai_jax.analysis import count_params
from vai_jax.pose import heads as ph
from vai_jax.ops.keypoints import soft_argmax


def _out_shapes(head, features):
    def run(f):
        variables = head.init(jax.random.key(0), f, train=False)
        return head.apply(variables, f, train=False)
    return jax.eval_shape(run, features)


@pytest.mark.parametrize("backbone,stage", [("resnet18", "stage3"), ("resnet20_cifar", "stage2")])
def test_heads_on_backbone_features(backbone, stage):
    model = vai_jax.create_model(backbone, num_classes=0)
    x = jax.ShapeDtypeStruct((2, 64, 64, 3), jnp.float32)
    feats = jax.eval_shape(
        lambda im: model.apply(model.init(jax.random.key(0), im, train=False), im,
                               train=False)[1], x)
    info = {i.name: i for i in model.feature_info}[stage]
    f = feats[stage]
    assert f.shape[-1] == info.channels and f.shape[1] == 64 // info.stride
    k, s = 6, info.stride
    out = _out_shapes(ph.HeatmapHead(k, s, in_features=stage, num_deconv=1), feats)
    assert out["heatmaps"].shape == (2, 2 * f.shape[1], 2 * f.shape[2], k)
    out = _out_shapes(ph.IntegralHead(k, s, in_features=stage, num_deconv=2), feats)
    assert out["heatmaps"].shape == (2, 4 * f.shape[1], 4 * f.shape[2], k)
    assert out["coords"].shape == (2, k, 2)
    out = _out_shapes(ph.PAFHead(k, s, in_features=stage, num_deconv=0, num_limbs=5), feats)
    assert out["pafs"].shape == (2, f.shape[1], f.shape[2], 5, 2)
    assert _out_shapes(ph.RegressionHead(k, s, in_features=stage), feats)["coords"].shape == \
        (2, k, 2)
    out = _out_shapes(ph.DensityHead(k, s, in_features=stage), feats)
    assert out["coords"].shape == out["log_std"].shape == (2, k, 2)


def test_heatmap_head_is_fully_convolutional():
    head = ph.HeatmapHead(3, 8, num_deconv=1, deconv_features=8)
    v = head.init(jax.random.key(0), {"stage4": jnp.ones((1, 4, 4, 5))}, train=False)
    out = head.apply(v, {"stage4": jnp.ones((2, 6, 3, 5))}, train=False)  # other size
    chex.assert_shape(out["heatmaps"], (2, 12, 6, 3))
    assert head.heatmap_stride == 4.0


def test_regression_head_parameter_count():
    head = ph.RegressionHead(3, 8, conv_features=4, num_convs=1, hidden=8)
    v = head.init(jax.random.key(0), {"stage4": jnp.ones((1, 4, 4, 2))}, train=False)
    conv = 3 * 3 * 2 * 4 + 2 * 4  # kernel (no bias before BN) + BN scale and bias
    fc1 = (4 * 4 * 4) * 8 + 8
    fc_out = 8 * 6 + 6
    assert count_params(v) == conv + fc1 + fc_out


def test_heatmap_head_parameter_count():
    head = ph.HeatmapHead(3, 8, num_deconv=1, deconv_features=4, num_convs=0)
    v = head.init(jax.random.key(0), {"stage4": jnp.ones((1, 4, 4, 2))}, train=False)
    assert count_params(v) == (4 * 4 * 2 * 4 + 2 * 4) + (4 * 3 + 3)


def test_untrained_regression_heads_predict_centre_and_prior_sigma():
    f = {"stage4": jax.random.normal(jax.random.key(1), (2, 4, 4, 8))}
    head = ph.DensityHead(2, 16, conv_features=4, hidden=8)
    v = head.init(jax.random.key(0), f, train=False)
    out = head.apply(v, f, train=False)
    np.testing.assert_allclose(np.asarray(out["coords"]), 32.0, atol=0.5)  # 64 px image
    np.testing.assert_allclose(np.asarray(out["log_std"]), np.log(8.0), atol=0.02)


def test_integral_head_coords_are_scaled_soft_argmax_and_differentiable():
    f = {"stage3": jax.random.normal(jax.random.key(2), (2, 4, 4, 8))}
    head = ph.IntegralHead(3, 16, in_features="stage3", num_deconv=1, deconv_features=8,
                           beta=3.0)
    v = head.init(jax.random.key(0), f, train=False)
    out = head.apply(v, f, train=False)
    np.testing.assert_allclose(np.asarray(out["coords"]),
                               np.asarray(soft_argmax(out["heatmaps"], beta=3.0)) * 8.0,
                               rtol=1e-6)
    g = jax.grad(lambda p: head.apply({**v, "params": p}, f, train=False)["coords"].sum())(
        v["params"])
    norms = [float(jnp.abs(x).sum()) for x in jax.tree.leaves(g)]
    assert all(np.isfinite(norms)) and sum(norms) > 0


def test_heads_reject_wrong_rank():
    head = ph.HeatmapHead(3, 8)
    with pytest.raises(ValueError, match="features"):
        head.init(jax.random.key(0), {"stage4": jnp.ones((4, 4, 5))}, train=False)


def test_heads_take_the_backbone_features_dict():
    f = jnp.ones((1, 4, 4, 5))
    head = ph.HeatmapHead(3, 8, in_features="stage2", num_deconv=0, deconv_features=4)
    with pytest.raises(TypeError, match="features must be the backbone's dict"):
        head.init(jax.random.key(0), f, train=False)
    with pytest.raises(ValueError, match="in_features 'stage2'.*'stage1', 'stage3'"):
        head.init(jax.random.key(0), {"stage1": f, "stage3": f}, train=False)
    v = head.init(jax.random.key(0), {"stage1": f[:, :2], "stage2": f}, train=False)
    out = head.apply(v, {"stage1": f[:, :2], "stage2": f}, train=False)
    assert out["heatmaps"].shape == (1, 4, 4, 3)


def test_num_upsampling_steps():
    assert ph.num_upsampling_steps(16, 4) == 2
    assert ph.num_upsampling_steps(8, 8) == 0
    with pytest.raises(ValueError):
        ph.num_upsampling_steps(16, 6)


def test_pose_net_wires_backbone_feature_to_head():
    backbone = vai_jax.create_model("resnet18", num_classes=0, widths=(4, 8, 8, 8))
    info = {i.name: i for i in backbone.feature_info}["stage3"]
    net = ph.PoseNet(backbone, ph.IntegralHead(5, info.stride, in_features="stage3",
                                               num_deconv=2, deconv_features=4))
    x = jax.ShapeDtypeStruct((2, 64, 64, 3), jnp.float32)
    out = jax.eval_shape(lambda im: net.apply(net.init(jax.random.key(0), im, train=False), im,
                                              train=False), x)
    assert out["heatmaps"].shape == (2, 16, 16, 5) and out["coords"].shape == (2, 5, 2)
    bad = ph.PoseNet(backbone, ph.HeatmapHead(5, 16, in_features="stage9"))
    with pytest.raises(ValueError, match="stage9"):
        jax.eval_shape(lambda im: bad.init(jax.random.key(0), im, train=False), x)
