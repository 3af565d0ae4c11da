"""Partial restore by name, freezing with optax.multi_transform."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from tests.analysis.analysis_testing import random_variables

from vai_jax.analysis.plain_cnn import PlainCNN
from vai_jax.analysis.transfer import (count_by_label, freeze, matches, restore_by_name,
                                       trainable_labels)


def _nets():
    src_model = PlainCNN(widths=(4, 8), pool_after=(1,), num_classes=6)
    dst_model = PlainCNN(widths=(4, 8, 5), pool_after=(1,), num_classes=3)  # new layer + head
    src = random_variables(src_model, (1, 8, 8, 3), seed=0, bias_std=0.3)
    dst = random_variables(dst_model, (1, 8, 8, 3), seed=1, bias_std=0.3)
    return src_model, src, dst_model, dst


def test_partial_restore_by_name():
    _, src, dst_model, dst = _nets()
    with pytest.raises(ValueError, match=r"cannot restore params:fc/\w+: shape \((6,|8, 6)\) "
                                         r"in the source but \((3,|5, 3)\) in the target"):
        restore_by_name(dst, src)
    out, report = restore_by_name(dst, src, exclude=["fc"])
    for name in ("conv1", "conv2"):
        np.testing.assert_array_equal(out["params"][name]["conv"]["kernel"],
                                      src["params"][name]["conv"]["kernel"])
        np.testing.assert_array_equal(out["batch_stats"][name]["bn"]["mean"],
                                      src["batch_stats"][name]["bn"]["mean"])
    np.testing.assert_array_equal(out["params"]["conv3"]["conv"]["kernel"],
                                  dst["params"]["conv3"]["conv"]["kernel"])
    np.testing.assert_array_equal(out["params"]["fc"]["kernel"], dst["params"]["fc"]["kernel"])
    assert "params:conv3/conv/kernel" in report.not_in_source
    assert set(report.excluded) == {"params:fc/kernel", "params:fc/bias"}
    assert "params:fc/kernel" in report.unused_source
    assert len(report.restored) == 2 * (1 + 2) + 2 * 2  # kernels + BN params, BN stats
    # Skipping mismatches instead of failing.
    out2, report2 = restore_by_name(dst, src, on_mismatch="skip")
    assert set(report2.shape_mismatch) == {"params:fc/kernel", "params:fc/bias"}
    dst_model.apply(out2, jnp.zeros((1, 8, 8, 3)), train=False)  # still a valid model
    # include restricts to the stem-like first layer.
    out3, report3 = restore_by_name(dst, src, include=["conv1"])
    assert all(t.split(":")[1].startswith("conv1/") for t in report3.restored)


def test_matching_rules():
    assert matches("stem/conv/kernel", ["stem"])
    assert not matches("stem2/conv/kernel", ["stem"])
    assert matches("stage3/block1/conv1/kernel", ["stage*/block1/*"])
    assert not matches("fc/kernel", [])


def test_frozen_params_do_not_change():
    _, src, _, _ = _nets()
    params = src["params"]
    tx = freeze(optax.adamw(1e-2, weight_decay=0.1), params, frozen=["conv1"])
    labels = trainable_labels(params, frozen=["conv1"])
    assert count_by_label(params, labels) == {"frozen": 27 * 4 + 8,
                                             "trainable": 36 * 8 + 16 + 8 * 6 + 6}
    state = tx.init(params)
    # Any loss with a non-zero gradient on every leaf.
    loss = lambda p: sum(jnp.sum(jnp.sin(leaf + 0.1)) for leaf in jax.tree.leaves(p))
    grads = jax.grad(loss)(params)
    assert all(np.all(np.asarray(g) != 0) for g in jax.tree.leaves(grads))
    updates, state = tx.update(grads, state, params)
    new = optax.apply_updates(params, updates)
    for leaf in ("kernel",):
        np.testing.assert_array_equal(new["conv1"]["conv"][leaf], params["conv1"]["conv"][leaf])
    np.testing.assert_array_equal(new["conv1"]["bn"]["scale"], params["conv1"]["bn"]["scale"])
    assert not np.allclose(new["conv2"]["conv"]["kernel"], params["conv2"]["conv"]["kernel"])
    assert not np.allclose(new["fc"]["kernel"], params["fc"]["kernel"])
    # Head-only fine-tuning (linear probe): everything but fc frozen.
    head = trainable_labels(params, trainable=["fc"])
    assert count_by_label(params, head)["trainable"] == 8 * 6 + 6
