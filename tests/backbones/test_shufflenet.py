"""ShuffleNet v1: Table 1 widths and complexity for every group count, parameter counts from the
unit definition, features, forward and backward."""
import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vai_jax
from vai_jax.backbones.shufflenet import ShuffleNetV1
from tests.backbones.zoo_checks import tree_size as n_params, abstract_init, random_variables  # noqa: E402

# Table 1 (Zhang et al. 2018): stage 2-4 output channels and complexity (MFLOPs = mult-adds).
TABLE1 = {1: ((144, 288, 576), 143), 2: ((200, 400, 800), 140), 3: ((240, 480, 960), 137),
          4: ((272, 544, 1088), 133), 8: ((384, 768, 1536), 137)}


def analytic_params(g, classes=1000):
    """Conv weights + BN (scale, bias) of the units as the paper defines them, plus the FC."""
    total, c_in = 27 * 24 + 2 * 24, 24
    for s, (c, n) in enumerate(zip(TABLE1[g][0], (4, 8, 4))):
        for u in range(n):
            mid, out = c // 4, (c - c_in if u == 0 else c)
            g1 = 1 if (s == 0 and u == 0) else g
            total += (c_in // g1) * mid + 9 * mid + (mid // g) * out + 2 * (mid + mid + out)
            c_in = c
    return total + c_in * classes + classes


@pytest.mark.parametrize("g", sorted(TABLE1))
def test_table1_widths_complexity_and_params(g):
    model = vai_jax.create_model(f"shufflenet_v1_g{g}")
    capture = lambda mdl, _: isinstance(mdl, flax.linen.Conv)  # noqa: E731
    (_, feats), v = abstract_init(model, 224, capture_intermediates=capture)
    assert tuple(feats[f"stage{i}"].shape[-1] for i in (1, 2, 3)) == TABLE1[g][0]
    assert tuple(feats[f"stage{i}"].shape[1] for i in (1, 2, 3)) == (28, 14, 7)
    kernels = flax.traverse_util.flatten_dict(v["params"])
    macs = sum(int(np.prod(kernels[p[:-1] + ("kernel",)].shape)) * int(np.prod(o.shape[1:-1]))
               for p, (o,) in flax.traverse_util.flatten_dict(v["intermediates"]).items())
    assert abs(macs / 1e6 - TABLE1[g][1]) <= 0.5  # convolutions only, within rounding
    assert n_params(v["params"]) == analytic_params(g)


def test_first_pointwise_of_stage2_not_grouped_and_shuffle_present():
    _, v = abstract_init(ShuffleNetV1(groups=3), 64)
    unit = v["params"]["stage1"]["unit1"]
    assert unit["gconv1"]["conv"]["kernel"].shape == (1, 1, 24, 60)       # not grouped
    assert unit["gconv2"]["conv"]["kernel"].shape == (1, 1, 20, 216)      # 60 / 3 per group
    assert v["params"]["stage1"]["unit2"]["gconv1"]["conv"]["kernel"].shape == (1, 1, 80, 60)
    assert unit["dwconv"]["conv"]["kernel"].shape == (3, 3, 1, 60)


def test_forward_backward_tiny():
    model = vai_jax.create_model("shufflenet_v1", num_classes=5, scale=0.25)
    assert [f.channels for f in model.feature_info] == [6, 60, 120, 240]
    assert [f.stride for f in model.feature_info] == [2, 8, 16, 32]
    x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
    variables = random_variables(model, x)

    def loss(params):
        (lg, feats), upd = model.apply({**variables, "params": params}, x, train=True,
                                       mutable=["batch_stats"])
        return jnp.sum(lg ** 2), (lg, feats, upd)

    grads, (logits, feats, upd) = jax.jit(jax.grad(loss, has_aux=True))(variables["params"])
    assert logits.shape == (2, 5)
    for f in model.feature_info:
        assert feats[f.name].shape == (2, 32 // f.stride, 32 // f.stride, f.channels)
    assert jax.tree.structure(upd["batch_stats"]) == jax.tree.structure(variables["batch_stats"])
    leaves = jax.tree.leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert float(jnp.sum(jnp.abs(grads["conv1"]["conv"]["kernel"]))) > 0


def test_scaled_widths_divisible_and_bad_groups():
    for g in (2, 4, 8):
        stem, stages = ShuffleNetV1(groups=g, scale=0.5).widths()
        assert stem % g == 0 and all(c % (4 * g) == 0 for c in stages)
        assert ShuffleNetV1(groups=g).widths()[1] == TABLE1[g][0]
    (logits, _), _ = abstract_init(ShuffleNetV1(groups=8, scale=0.5, num_classes=0), 64)
    assert logits is None
    with pytest.raises(ValueError, match="groups"):
        ShuffleNetV1(groups=5).feature_info
