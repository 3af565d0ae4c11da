"""MobileNet v1: the paper's parameter and multiply-add figures, width multiplier, features,
forward and backward."""
import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vai_jax
from vai_jax.backbones.mobilenet import MOBILENET_V1_BLOCKS, MobileNetV1
from tests.backbones.zoo_checks import tree_size as n_params, abstract_init, random_variables  # noqa: E402


def conv_dense_macs(model, hw):
    """Σ over Conv/Dense layers of (kernel size) × (output positions), from the captured outputs."""
    capture = lambda mdl, _: isinstance(mdl, (flax.linen.Conv, flax.linen.Dense))  # noqa: E731
    _, v = abstract_init(model, hw, capture_intermediates=capture)
    kernels = flax.traverse_util.flatten_dict(v["params"])
    total = 0
    for path, (out,) in flax.traverse_util.flatten_dict(v["intermediates"]).items():
        total += int(np.prod(kernels[path[:-1] + ("kernel",)].shape)) * int(np.prod(out.shape[1:-1]))
    return total


def test_paper_params_and_mult_adds():
    model = MobileNetV1()
    _, v = abstract_init(model, 224)
    # Analytic: conv1 + 13 × (depthwise 3×3 + point-wise) + BN (scale, bias) + FC.
    c, count = 32, 27 * 32 + 2 * 32
    for out, _ in MOBILENET_V1_BLOCKS:
        count += 9 * c + 2 * c + c * out + 2 * out
        c = out
    count += 1024 * 1000 + 1000
    assert n_params(v["params"]) == count
    assert round(count / 1e6, 1) == 4.2  # Table 8: 4.2 million parameters
    assert round(conv_dense_macs(model, 224) / 1e6) == 569  # 569 million mult-adds


@pytest.mark.parametrize("alpha,hw,macs,params", [(0.75, 224, 325, 2.6), (0.5, 224, 149, 1.3),
                                                  (0.25, 224, 41, 0.5), (1.0, 160, 290, 4.2)])
def test_width_and_resolution_multipliers_match_tables_6_7(alpha, hw, macs, params):
    # Tables 6 (width multiplier at 224) and 7 (resolution at alpha = 1): million mult-adds
    # and million parameters.
    model = MobileNetV1(alpha=alpha)
    assert abs(conv_dense_macs(model, hw) / 1e6 - macs) <= 0.005 * macs + 0.5  # ± the 1M FC
    assert round(n_params(abstract_init(model, hw)[1]["params"]) / 1e6, 1) == params


def test_forward_backward_tiny():
    model = vai_jax.create_model("mobilenet_v1", num_classes=5, alpha=0.25)
    x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
    variables = random_variables(model, x)

    def loss(params):
        (lg, feats), upd = model.apply({**variables, "params": params}, x, train=True,
                                       mutable=["batch_stats"])
        return jnp.sum(lg ** 2), (lg, feats, upd)

    grads, (logits, feats, upd) = jax.jit(jax.grad(loss, has_aux=True))(variables["params"])
    assert logits.shape == (2, 5)
    assert jax.tree.structure(upd["batch_stats"]) == jax.tree.structure(variables["batch_stats"])
    for f in model.feature_info:
        assert feats[f.name].shape == (2, 32 // f.stride, 32 // f.stride, f.channels)
    leaves = jax.tree.leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert all(float(jnp.sum(jnp.abs(g))) > 0 for g in jax.tree.leaves(grads["conv1"]))
    assert [f.channels for f in model.feature_info] == [16, 32, 64, 128, 256]
    assert [f.stride for f in model.feature_info] == [2, 4, 8, 16, 32]


def test_depthwise_blocks_and_headless_bfloat16():
    model = MobileNetV1(num_classes=0, dtype=jnp.bfloat16, alpha=0.5)
    (logits, feats), v = abstract_init(model, 64)
    assert logits is None and "fc" not in v["params"]
    assert feats["stage4"].dtype == jnp.bfloat16
    assert v["params"]["block2"]["depthwise"]["conv"]["kernel"].shape == (3, 3, 1, 32)
    assert v["params"]["block2"]["depthwise"]["conv"]["kernel"].dtype == jnp.float32
    with pytest.raises(ValueError, match="alpha"):
        MobileNetV1(alpha=0.0).feature_info
