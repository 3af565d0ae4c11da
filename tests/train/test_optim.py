"""Optimisers, schedules and weight penalties against formulas written out in NumPy."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vai_jax.train.optim import make_optimizer, make_plateau, make_schedule
from vai_jax.train.regularization import make_weight_penalty

PARAMS = {"conv": {"kernel": jnp.asarray(np.linspace(-1, 1, 6).reshape(2, 3), jnp.float32),
                   "bias": jnp.asarray([0.5, -0.5, 1.0], jnp.float32)}}
GRADS = jax.tree.map(lambda p: jnp.cos(3 * p), PARAMS)


def _run(tx, steps=2):
    params, state = PARAMS, tx.init(PARAMS)
    for _ in range(steps):
        updates, state = tx.update(GRADS, state, params)
        params = optax.apply_updates(params, updates)
    return jax.tree.map(np.asarray, params)


def _np(tree):
    return jax.tree.map(lambda x: np.asarray(x, np.float64), tree)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_weight_decay_matches_formula(nesterov):
    lr, mu, wd = 1e-2, 0.9, 5e-4
    got = _run(make_optimizer("sgd", learning_rate=lr, momentum=mu, nesterov=nesterov,
                              weight_decay=wd))
    p, g = _np(PARAMS), _np(GRADS)
    buf = {k: 0.0 for k in p["conv"]}
    for _ in range(2):
        for k in p["conv"]:
            d = g["conv"][k] + (wd * p["conv"][k] if k == "kernel" else 0.0)  # kernels only
            buf[k] = mu * buf[k] + d
            step = d + mu * buf[k] if nesterov else buf[k]
            p["conv"][k] = p["conv"][k] - lr * step
    for k in p["conv"]:
        np.testing.assert_allclose(got["conv"][k], p["conv"][k], rtol=1e-6, atol=1e-7)


def test_adamw_decoupled_decay_matches_formula():
    lr, b1, b2, eps, wd = 1e-3, 0.9, 0.999, 1e-8, 0.1
    got = _run(make_optimizer("adamw", learning_rate=lr, weight_decay=wd, b1=b1, b2=b2,
                              eps=eps), steps=1)
    p, g = _np(PARAMS), _np(GRADS)
    for k in p["conv"]:
        m, v = (1 - b1) * g["conv"][k], (1 - b2) * g["conv"][k] ** 2
        upd = (m / (1 - b1)) / (np.sqrt(v / (1 - b2)) + eps)
        if k == "kernel":
            upd = upd + wd * p["conv"][k]
        np.testing.assert_allclose(got["conv"][k], p["conv"][k] - lr * upd, rtol=1e-5)


def test_clipping_bounds_the_global_norm():
    tx = make_optimizer("sgd", learning_rate=1.0, momentum=0.0, clip_grad_norm=0.1)
    updates, _ = tx.update(GRADS, tx.init(PARAMS), PARAMS)
    norm = np.sqrt(sum(np.sum(np.asarray(u) ** 2) for u in jax.tree.leaves(updates)))
    assert norm == pytest.approx(0.1, rel=1e-5)


def test_schedules():
    cos = make_schedule("cosine", base_lr=0.1, total_steps=100, warmup_steps=10)
    assert float(cos(0)) == 0.0 and float(cos(5)) == pytest.approx(0.05)
    assert float(cos(10)) == pytest.approx(0.1)
    t = (55 - 10) / 90
    assert float(cos(55)) == pytest.approx(0.05 * (1 + np.cos(np.pi * t)), rel=1e-5)
    assert float(cos(100)) == pytest.approx(0.0, abs=1e-7)
    step = make_schedule("step", base_lr=0.1, total_steps=100, warmup_steps=5,
                         boundaries=(50, 75))
    assert [round(float(step(s)), 6) for s in (0, 5, 49, 50, 74, 75, 99)] == [
        0.0, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    assert float(make_schedule("constant", base_lr=0.3, total_steps=10)(7)) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="schedule kind"):
        make_schedule("linear", base_lr=0.1, total_steps=10)
    with pytest.raises(ValueError, match="optimizer name"):
        make_optimizer("lamb", learning_rate=0.1)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"learning_rate": -0.1}, ValueError, r"learning_rate must be a finite number > 0.0; got -0.1"),
    ({"learning_rate": 0.0}, ValueError, "learning_rate must be a finite number > 0.0; got 0.0"),
    ({"learning_rate": "1e-3"}, TypeError, "learning_rate must be a real number; got str"),
    ({"momentum": 1.5}, ValueError, r"momentum must be a finite number >= 0.0 and <= 1.0; got 1.5"),
    ({"momentum": -0.1}, ValueError, "momentum must be a finite number >= 0.0"),
    ({"b2": 1.0}, ValueError, "b2 must be a finite number >= 0.0 and < 1.0; got 1.0"),
    ({"eps": 0.0}, ValueError, "eps must be a finite number > 0.0"),
    ({"weight_decay": -1e-4}, ValueError, "weight_decay must be a finite number >= 0.0"),
    ({"clip_grad_norm": 0.0}, ValueError, "clip_grad_norm must be a finite number > 0.0"),
    ({"accumulate_steps": 2.0}, TypeError, "accumulate_steps must be an int; got float"),
    ({"nesterov": "yes"}, TypeError, "nesterov must be a bool"),
])
def test_optimizer_arguments_are_checked_by_name(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_optimizer("sgd", **{"learning_rate": 0.1, **kwargs})
    # A schedule is a valid learning rate.
    make_optimizer("sgd", learning_rate=make_schedule("constant", base_lr=0.1, total_steps=1))


@pytest.mark.parametrize("fn, kwargs, error, match", [
    (make_schedule, {"base_lr": -1.0}, ValueError, "base_lr must be a finite number > 0.0"),
    (make_schedule, {"total_steps": 10.5}, TypeError, "total_steps must be an int; got float"),
    (make_schedule, {"warmup_steps": -1}, ValueError, "warmup_steps must be an int >= 0"),
    (make_schedule, {"boundaries": (5, "x")}, TypeError, "boundaries must be an int; got str"),
    (make_plateau, {"factor": 1.0}, ValueError, r"factor must be a finite number > 0.0 and < 1.0"),
    (make_plateau, {"patience": -1}, ValueError, "patience must be an int >= 0; got -1"),
])
def test_schedule_and_plateau_arguments_are_checked_by_name(fn, kwargs, error, match):
    base = {"kind": "step", "base_lr": 0.1, "total_steps": 10} if fn is make_schedule else {}
    with pytest.raises(error, match=match):
        fn(**{**base, **kwargs})


def test_weight_penalty_per_layer():
    params = {"stem": {"kernel": jnp.full((2, 2), 2.0), "bias": jnp.ones(2)},
              "fc": {"kernel": jnp.asarray([[1.0, -3.0]])}}
    pen = make_weight_penalty(l1=0.1, l2=0.01, per_layer={r"^fc/": (0.0, 1.0)})
    want = 0.1 * 8.0 + 0.5 * 0.01 * 16.0 + 0.5 * 1.0 * 10.0  # bias excluded (rank 1)
    assert float(pen(params)) == pytest.approx(want, rel=1e-6)
    grads = jax.grad(pen)(params)
    np.testing.assert_allclose(grads["fc"]["kernel"], [[1.0, -3.0]], rtol=1e-6)
    np.testing.assert_array_equal(grads["stem"]["bias"], 0.0)
