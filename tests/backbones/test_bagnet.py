"""BagNets: parameter counts (closed form), receptive field measured through gradients, per-patch
evidence, forward/backward on a tiny configuration."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vai_jax
from tests.backbones.zoo_checks import assert_forward_backward, n_params


def bagnet_count(num_3x3, classes=1000):
    """Closed form of the reference BagNet (Brendel & Bethge's bagnets/pytorch.py)."""
    total = 3 * 64 + 9 * 64 * 64 + 2 * 64  # 1x1 conv, unpadded 3x3 conv + BN
    cin = 64
    for planes, n, n3 in zip((64, 128, 256, 512), (3, 4, 6, 3), num_3x3):
        out = 4 * planes
        for j in range(n):
            k2 = 9 if j < n3 else 1
            total += cin * planes + k2 * planes * planes + planes * out + 2 * (2 * planes + out)
            if j == 0:
                total += cin * out + 2 * out
            cin = out
    return total + cin * classes + classes


# pytorchcv's BagNet port asserts the same three numbers.
EXPECTED = {"bagnet9": ((1, 1, 0, 0), 15_688_744, 9), "bagnet17": ((1, 1, 1, 0), 16_213_032, 17),
            "bagnet33": ((1, 1, 1, 1), 18_310_184, 33)}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_param_counts_and_receptive_field(name):
    num_3x3, count, rf = EXPECTED[name]
    model = vai_jax.create_model(name)
    assert bagnet_count(num_3x3) == count
    assert n_params(model, hw=64) == count
    assert model.receptive_field == rf


def test_evidence_shapes_at_224():
    # unpadded convs: 224 -> 222 -> 110 -> 54 -> 26 -> 24 (bagnet33), pools 27/26/24 as the
    # reference implementations' final average pools
    for name, side in (("bagnet9", 27), ("bagnet17", 26), ("bagnet33", 24)):
        model = vai_jax.create_model(name, num_classes=7)
        (logits, feats), _ = jax.eval_shape(lambda m=model: m.init_with_output(
            jax.random.key(0), jnp.zeros((2, 224, 224, 3)), train=False))
        assert logits.shape == (2, 7)
        assert feats["evidence"].shape == (2, side, side, 7)
        assert feats["stage4"].shape == (2, side, side, 2048)


TINY = dict(widths=(2, 2, 4, 4), stem_width=4, stage_sizes=(1, 1, 1, 1))


def test_receptive_field_measured_by_gradient():
    # bagnet9's layout with one unit per stage: the 3x3s of stages 1-2 give 3 + 2 + 2·2 = 9
    rf = 9
    model = vai_jax.create_model("bagnet9", num_classes=3, stage_sizes=(1, 1, 1, 1),
                                 widths=(8, 8, 8, 8), stem_width=8)
    assert model.receptive_field == rf
    x = jax.random.normal(jax.random.key(0), (1, 48, 48, 3))
    variables = jax.jit(lambda k, x: model.init(k, x, train=False))(jax.random.key(1), x)

    @jax.jit
    def grads(x):
        def evidence_at(x, i, j):
            _, feats = model.apply(variables, x, train=False)
            return jnp.sum(feats["evidence"][0, i, j])
        return [jax.grad(evidence_at)(x, i, j) for i, j in ((2, 2), (3, 3))]

    extents = []
    for g in grads(x):  # input support of one evidence position (eval mode: no BN coupling)
        rows, cols = np.nonzero(np.abs(np.asarray(g)).sum(axis=(0, 3)))
        extents += [rows.max() - rows.min() + 1, cols.max() - cols.min() + 1]
    # ReLUs may zero a border path at one position, never widen the support
    assert max(extents) == rf and min(extents) >= rf - 2


def test_tiny_forward_backward_and_logits_are_mean_evidence():
    model = vai_jax.create_model("bagnet17", num_classes=5, **TINY)
    assert model.receptive_field == 17
    x = jax.random.normal(jax.random.key(0), (2, 40, 44, 3))
    variables = assert_forward_backward(model, x, 5, rounding=6)
    logits, feats = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x)
    np.testing.assert_allclose(logits, feats["evidence"].mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    headless = vai_jax.create_model("bagnet17", num_classes=0, **TINY)
    logits, feats = jax.eval_shape(lambda v, x: headless.apply(v, x, train=False), variables, x)
    assert logits is None and "evidence" not in feats
