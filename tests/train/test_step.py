"""Train/eval steps: data-parallel equivalence, synchronised BatchNorm, pmap, robustness."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.train.train_testing_models import TinyBNNet, TinyMLP
from vai_jax.classification.metrics import topk_counts
from vai_jax.classification.losses import softmax_cross_entropy
from vai_jax.train import parallel
from vai_jax.train.optim import make_optimizer
from vai_jax.train.precision import DynamicLossScale
from vai_jax.train.state import TrainState, init_variables
from vai_jax.train.step import make_eval_step, make_train_step

B, H, C = 16, 6, 3


def _batch(seed, n=B):
    r = np.random.default_rng(seed)
    return {"image": r.normal(1.0, 2.0, (n, H, H, 3)).astype(np.float32),
            "label": r.integers(0, C, n).astype(np.int32)}


def _state(model, tx=None, **kw):
    variables = init_variables(model, (1, H, H, 3), rng=jax.random.PRNGKey(0))
    tx = tx or make_optimizer("sgd", learning_rate=0.1, momentum=0.9, weight_decay=5e-4)
    return TrainState.create(apply_fn=model.apply, variables=variables, tx=tx,
                             rng=jax.random.PRNGKey(1), **kw)


def _acc(outputs, batch):
    return {"accuracy": (jnp.argmax(outputs[0], -1) == batch["label"]).astype(jnp.float32)}


def _np(tree):
    return jax.tree.map(np.asarray, tree)


def test_mesh_steps_equal_single_device_steps():
    """3 steps on 8 devices == 3 steps on one device, same global batch (rtol 1e-5, atol 1e-6:
    only the order of the cross-device reductions differs)."""
    assert jax.device_count() == 8
    step = make_train_step(softmax_cross_entropy, metrics_fn=_acc)
    mesh = parallel.make_mesh()
    dp = parallel.data_parallel(step, mesh)
    single = jax.jit(step)
    s_dp = parallel.replicate(_state(TinyBNNet()), mesh)
    s_1 = jax.device_put(_state(TinyBNNet()), jax.devices()[0])
    for i in range(3):
        batch = _batch(i)
        s_dp, m_dp = dp(s_dp, batch)
        s_1, m_1 = single(s_1, batch)
        np.testing.assert_allclose(m_dp["loss"], m_1["loss"], rtol=1e-5)
    assert s_dp.params["conv"]["kernel"].sharding.is_fully_replicated
    for a, b in zip(jax.tree.leaves(_np(s_dp)), jax.tree.leaves(_np(s_1))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert int(s_dp.step) == 3 and int(s_dp.skipped_steps) == 0


def test_batchnorm_running_stats_are_global_batch_stats():
    mesh = parallel.make_mesh()
    dp = parallel.data_parallel(make_train_step(softmax_cross_entropy), mesh)
    state = parallel.replicate(_state(TinyBNNet()), mesh)
    batch = _batch(7)
    # Make shards differ strongly so per-device statistics would be visibly wrong.
    batch["image"] += np.repeat(np.arange(8, dtype=np.float32), B // 8)[:, None, None, None]
    state, _ = dp(state, batch)
    x = batch["image"].astype(np.float64).reshape(-1, 3)
    stats = _np(state.batch_stats["bn_in"])
    np.testing.assert_allclose(stats["mean"], 0.1 * x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * x.var(0), rtol=1e-5)


def test_indivisible_global_batch_is_a_clear_error():
    mesh = parallel.make_mesh()
    dp = parallel.data_parallel(make_train_step(softmax_cross_entropy), mesh)
    state = parallel.replicate(_state(TinyBNNet()), mesh)
    with pytest.raises(ValueError, match=r"global batch size 12 is not divisible by the number "
                                         r"of devices 8"):
        dp(state, _batch(0, n=12))


def test_pmap_wrapping_matches_mesh():
    """The same step built with axis_name='data' under jax.pmap (BN synchronised by the model's
    axis_name) gives the mesh path's params after 2 steps."""
    step_pmap = jax.pmap(make_train_step(softmax_cross_entropy, axis_name="data"),
                         axis_name="data")
    mesh = parallel.make_mesh()
    dp = parallel.data_parallel(make_train_step(softmax_cross_entropy), mesh)
    s_mesh = parallel.replicate(_state(TinyBNNet()), mesh)
    s_pmap = jax.tree.map(lambda x: np.stack([np.asarray(x)] * 8),
                          _state(TinyBNNet(axis_name="data")))
    for i in range(2):
        batch = _batch(10 + i)
        s_mesh, m_mesh = dp(s_mesh, batch)
        s_pmap, m_pmap = step_pmap(s_pmap, jax.tree.map(lambda a: a.reshape(8, -1, *a.shape[1:]),
                                                        batch))
        np.testing.assert_allclose(m_pmap["loss"][0], m_mesh["loss"], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(_np(s_mesh)), jax.tree.leaves(_np(s_pmap))):
        np.testing.assert_allclose(b[0], a, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(b[0], b[-1])  # replicas agree


def test_nan_batch_is_skipped_and_counted():
    state = _state(TinyBNNet(), ema=True)
    step = jax.jit(make_train_step(softmax_cross_entropy, ema_decay=0.99))
    state, _ = step(state, _batch(0))
    before = _np(state)
    bad = _batch(1)
    bad["image"][3, 2, 1, 0] = np.nan
    state, metrics = step(state, bad)
    assert float(metrics["finite"]) == 0.0 and int(state.skipped_steps) == 1
    assert int(state.step) == 2
    np.testing.assert_array_equal(state.skip_causes, [0, 1, 0])  # non-finite loss
    for name in ("params", "opt_state", "batch_stats", "ema_params"):
        for a, b in zip(jax.tree.leaves(getattr(before, name)),
                        jax.tree.leaves(getattr(state, name))):
            np.testing.assert_array_equal(np.asarray(b), a)
    state, metrics = step(state, _batch(2))
    assert float(metrics["finite"]) == 1.0 and int(state.skipped_steps) == 1
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state.params))


def test_float16_dynamic_loss_scale_backs_off_on_overflow():
    model = TinyBNNet(dtype=jnp.float16)
    state = _state(model, loss_scale=DynamicLossScale.create(2.0**15, period=2))
    step = jax.jit(make_train_step(softmax_cross_entropy))
    assert state.params["conv"]["kernel"].dtype == jnp.float32
    huge = _batch(0)
    huge["image"] *= 3e4  # float16 activations overflow -> non-finite gradients
    before = _np(state.params)
    state, m = step(state, huge)
    assert float(m["finite"]) == 0.0 and float(state.loss_scale.scale) == 2.0**14
    assert int(np.asarray(state.skip_causes)[0]) == 0 and int(state.skipped_steps) == 1
    jax.tree.map(np.testing.assert_array_equal, _np(state.params), before)
    for i in range(2):
        state, m = step(state, _batch(1 + i))
        assert float(m["finite"]) == 1.0
    assert float(state.loss_scale.scale) == 2.0**15  # doubled after `period` good steps
    assert state.params["conv"]["kernel"].dtype == jnp.float32
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state.opt_state)
               if jnp.issubdtype(x.dtype, jnp.floating))


def test_bfloat16_compute_keeps_float32_params():
    state = _state(TinyBNNet(dtype=jnp.bfloat16))
    state, m = jax.jit(make_train_step(softmax_cross_entropy))(state, _batch(0))
    assert np.isfinite(float(m["loss"]))
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state.params))


def test_gradient_accumulation_equals_one_big_batch():
    """MultiSteps over 2 half batches == one step on the whole batch (no BN, plain SGD)."""
    step = jax.jit(make_train_step(softmax_cross_entropy))
    tx_acc = make_optimizer("sgd", learning_rate=0.5, momentum=0.9, accumulate_steps=2)
    tx_one = make_optimizer("sgd", learning_rate=0.5, momentum=0.9)
    s_acc, s_one = _state(TinyMLP(), tx_acc), _state(TinyMLP(), tx_one)
    batch = _batch(3)
    half = lambda sl: jax.tree.map(lambda a: a[sl], batch)
    s_acc, _ = step(s_acc, half(slice(0, B // 2)))
    jax.tree.map(np.testing.assert_array_equal, _np(s_acc.params), _np(s_one.params))
    s_acc, _ = step(s_acc, half(slice(B // 2, B)))
    s_one, _ = step(s_one, batch)
    jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-7),
                 _np(s_acc.params), _np(s_one.params))


def test_dropout_uses_fold_in_of_step():
    """Dropout masks differ between steps but are a pure function of (rng, step)."""
    model = TinyMLP(dropout=0.5)
    step = jax.jit(make_train_step(softmax_cross_entropy))
    tx = make_optimizer("sgd", learning_rate=0.1)
    a, ma = step(_state(model, tx), _batch(0))
    b, mb = step(_state(model, tx), _batch(0))
    assert float(ma["loss"]) == float(mb["loss"])
    c = _state(model, tx).replace(step=jnp.asarray(5, jnp.int32))
    _, mc = step(c, _batch(0))
    assert float(mc["loss"]) != float(ma["loss"])


def test_eval_step_counts_with_mask():
    state = _state(TinyBNNet())
    metrics = lambda out, batch, mask: topk_counts(out[0], batch["label"], (1, 2), mask)
    ev = jax.jit(make_eval_step(metrics, loss_fn=softmax_cross_entropy))
    batch = _batch(4)
    batch["mask"] = (np.arange(B) < 10).astype(np.float32)
    sums = ev(state, batch)
    logits = np.asarray(state.apply_fn(state.variables(), batch["image"], train=False)[0])
    order = np.argsort(-logits, axis=1)
    top1 = order[:10, 0] == batch["label"][:10]
    top2 = (order[:10, :2] == batch["label"][:10, None]).any(1)
    assert float(sums["count"]) == 10
    assert float(sums["top1_correct"]) == top1.sum() and float(sums["top2_correct"]) == top2.sum()


def _unchanged_but_counters(before, after):
    for name in ("params", "opt_state", "batch_stats"):
        for a, b in zip(jax.tree.leaves(getattr(before, name)),
                        jax.tree.leaves(getattr(after, name))):
            np.testing.assert_array_equal(np.asarray(b), a)


def test_invalid_labels_make_the_loss_nan_and_skip_the_step():
    """A class id outside [0, C) is never trained on: with num_classes the step sees it (loss
    NaN, cause invalid_labels); the ignore label and masked-out examples are not counted;
    without num_classes the loss function's own NaN skips the step (cause nonfinite_loss)."""
    def masked_ce(outputs, batch):  # padded examples' labels do not reach the loss
        return softmax_cross_entropy(outputs, {"label": jnp.where(batch["mask"] > 0,
                                                                  batch["label"], 0)})

    step = jax.jit(make_train_step(masked_ce, num_classes=C, ignore_label=-1))
    state = _state(TinyMLP())
    before = _np(state)
    for bad_label in (C, -2):
        bad = dict(_batch(1), mask=np.ones(B, np.float32))
        bad["label"][5] = bad_label
        state, m = step(state, bad)
        assert np.isnan(float(m["loss"])) and float(m["finite"]) == 0.0
    _unchanged_but_counters(before, state)
    np.testing.assert_array_equal(state.skip_causes, [2, 0, 0])
    assert int(state.skipped_steps) == 2 and int(state.step) == 2
    # A padded (mask 0) example's label is not checked.
    padded = dict(_batch(2), mask=(np.arange(B) > 0).astype(np.float32))
    padded["label"][0] = C + 5
    state, m = step(state, padded)
    assert float(m["finite"]) == 1.0 and np.isfinite(float(m["loss"]))
    # Without num_classes, cross-entropy's NaN for the bad id skips the step all the same.
    plain = jax.jit(make_train_step(softmax_cross_entropy))
    bad = _batch(3)
    bad["label"][0] = C
    before = _np(state)
    state, m = plain(state, bad)
    assert float(m["finite"]) == 0.0
    _unchanged_but_counters(before, state)
    np.testing.assert_array_equal(state.skip_causes, [2, 1, 0])


def test_eval_step_with_invalid_labels_gives_nan_sums_and_their_count():
    state = _state(TinyMLP())
    sums_fn = lambda out, batch, mask: topk_counts(out[0], batch["label"], (1,), mask)
    ev = jax.jit(make_eval_step(sums_fn, num_classes=C))
    good = ev(state, _batch(4))
    assert float(good["invalid_labels"]) == 0 and float(good["count"]) == B
    bad = _batch(4)
    bad["label"][[2, 7]] = [C, -1]
    sums = ev(state, bad)
    assert float(sums["invalid_labels"]) == 2
    assert np.isnan(float(sums["count"])) and np.isnan(float(sums["top1_correct"]))


def test_step_arguments_are_checked():
    with pytest.raises(TypeError, match="num_classes must be an int; got float"):
        make_train_step(softmax_cross_entropy, num_classes=3.0)
    with pytest.raises(ValueError, match="num_classes must be an int >= 1; got 0"):
        make_eval_step(lambda o, b, m: {}, num_classes=0)
    with pytest.raises(TypeError, match="label_key must be a str"):
        make_train_step(softmax_cross_entropy, num_classes=3, label_key=0)
    with pytest.raises(ValueError, match=r"ema_decay must be a finite number >= 0.0 and <= 1.0"):
        make_train_step(softmax_cross_entropy, ema_decay=1.5)
    step = jax.jit(make_train_step(softmax_cross_entropy, num_classes=C, label_key="classes"))
    with pytest.raises(KeyError, match=r"checks batch\['classes'\] but the batch has keys "
                                       r"\['image', 'label'\]"):
        step(_state(TinyMLP()), _batch(0))
