"""fit(): SIGTERM saves and stops, corrupt checkpoints stop the run unless restart=True, early
stopping, plateau reductions, padded evaluation, skipped steps reported by cause, bad arguments."""
import logging
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.train.train_testing_models import TinyMLP
from vai_jax.classification.metrics import topk_counts
from vai_jax.classification.losses import softmax_cross_entropy
from vai_jax.train.checkpoint import CheckpointManager, CorruptCheckpointError
from vai_jax.train.loop import EarlyStopping, Plateau, evaluate, fit
from vai_jax.train.metrics_writer import MetricsWriter, read_metrics
from vai_jax.train.optim import make_optimizer, make_plateau, plateau_update
from vai_jax.train.state import TrainState, init_variables
from vai_jax.train.step import make_eval_step, make_train_step


class _Iter:
    """A resumable iterator of random batches (position = number of batches drawn)."""

    def __init__(self, n=8):
        self.pos, self.n = 0, n

    def __next__(self):
        r = np.random.default_rng(self.pos)
        self.pos += 1
        return {"image": r.normal(size=(self.n, 4, 4, 3)).astype(np.float32),
                "label": r.integers(0, 3, self.n).astype(np.int32)}

    def get_state(self):
        return str(self.pos).encode()

    def set_state(self, s):
        self.pos = int(s.decode())


def _state(plateau=None):
    model = TinyMLP()
    v = init_variables(model, (1, 4, 4, 3), rng=jax.random.PRNGKey(0))
    return TrainState.create(apply_fn=model.apply, variables=v,
                             tx=make_optimizer("sgd", learning_rate=0.1),
                             rng=jax.random.PRNGKey(1), plateau=plateau)


_STEP = jax.jit(make_train_step(softmax_cross_entropy))


def test_sigterm_saves_and_stops(tmp_path):
    def step(state, batch):
        if int(state.step) == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives "during" step 4
        return _STEP(state, batch)

    ckpt = CheckpointManager(str(tmp_path), save_every=100)
    it = _Iter()
    result = fit(_state(), train_step=step, train_iter=it, num_steps=50, batch_size=8,
                 checkpoints=ckpt, progress=False)
    assert result.stopped_by == "signal" and result.step == 4
    assert ckpt.all_steps() == [4]
    assert signal.getsignal(signal.SIGTERM) is not None  # handler restored
    # Resuming continues at step 4 with the data position after 4 batches.
    it2 = _Iter()
    result = fit(_state(), train_step=_STEP, train_iter=it2, num_steps=6, batch_size=8,
                 checkpoints=ckpt, progress=False)
    assert result.step == 6 and it2.pos == 6 and result.stopped_by == "completed"
    ckpt.close()


def _all_corrupt_workdir(directory):
    """A checkpoint directory with steps 2 and 4 whose state files are all overwritten."""
    ckpt = CheckpointManager(str(directory), save_every=2)
    fit(_state(), train_step=_STEP, train_iter=_Iter(), num_steps=4, batch_size=8,
        checkpoints=ckpt, progress=False)
    ckpt.close()
    for step in ("2", "4"):
        for root, _, files in os.walk(directory / step / "state"):
            for name in files:
                with open(os.path.join(root, name), "wb") as f:
                    f.write(b"garbage")


def test_all_checkpoints_corrupt_stops_fit_unless_restart(tmp_path):
    _all_corrupt_workdir(tmp_path)
    it = _Iter()
    with pytest.raises(CorruptCheckpointError, match=r"cannot resume.*step 4.*step 2.*restart=True"):
        fit(_state(), train_step=_STEP, train_iter=it, num_steps=6, batch_size=8,
            checkpoints=CheckpointManager(str(tmp_path), save_every=2), progress=False)
    assert it.pos == 0  # nothing was trained
    # restart=True deletes the corrupt checkpoints and trains from step 0.
    ckpt = CheckpointManager(str(tmp_path), save_every=2)
    result = fit(_state(), train_step=_STEP, train_iter=it, num_steps=6, batch_size=8,
                 checkpoints=ckpt, progress=False, restart=True)
    assert result.step == 6 and it.pos == 6 and ckpt.all_steps() == [2, 4, 6]
    assert ckpt.restore(_state())[2]["step"] == 6
    ckpt.close()
    with pytest.raises(ValueError, match="restart=True .*checkpoints"):
        fit(_state(), train_step=_STEP, train_iter=_Iter(), num_steps=1, batch_size=8,
            progress=False, restart=True)


def test_early_stopping_rule():
    es = EarlyStopping("top1", patience=2)
    assert [es.update(v) for v in (0.5, 0.6, 0.6, 0.55)] == [False, False, False, True]
    es2 = EarlyStopping("loss", patience=1, mode="min")
    es2.load_state_dict(es.state_dict() | {"best": 1.0, "bad_evals": 0})
    assert es2.update(1.5) is True
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping("x", patience=1, mode="up")


def test_fit_stops_early_and_reduces_lr_on_plateau():
    """A constant validation metric: the plateau divides the scale by 10 at most 3 times
    (patience 1), and early stopping (patience 6) ends the run."""
    plateau = make_plateau(factor=0.1, patience=1, max_reductions=3)
    seen = []

    def eval_fn(state):
        seen.append(float(state.plateau_state.scale))
        return {"top1": 0.5}

    result = fit(_state(plateau), train_step=_STEP, train_iter=_Iter(), num_steps=100,
                 batch_size=8, eval_fn=eval_fn, eval_every=1, plateau=Plateau(plateau, "top1"),
                 early_stopping=EarlyStopping("top1", patience=6), progress=False)
    assert result.stopped_by == "early_stopping" and result.step == 7
    np.testing.assert_allclose(seen, [1, 1, 0.1, 0.01, 1e-3, 1e-3, 1e-3], rtol=1e-5)
    assert float(result.state.plateau_state.scale) == pytest.approx(1e-3, rel=1e-5)


def test_plateau_scale_multiplies_updates():
    plateau = make_plateau(factor=0.1, patience=0)
    s0 = _state(plateau)
    ps = plateau_update(plateau, s0.plateau_state, 1.0)
    ps = plateau_update(plateau, ps, 1.0)
    assert float(ps.scale) == pytest.approx(0.1)
    batch = next(_Iter())
    full, _ = _STEP(_state(plateau), batch)
    scaled, _ = _STEP(_state(plateau).replace(plateau_state=ps), batch)
    for a, b, p in zip(jax.tree.leaves(full.params), jax.tree.leaves(scaled.params),
                       jax.tree.leaves(s0.params)):
        np.testing.assert_allclose(np.asarray(b) - p, 0.1 * (np.asarray(a) - p), rtol=1e-4,
                                   atol=1e-7)


def test_evaluate_pads_the_last_batch():
    state = _state()
    ev = jax.jit(make_eval_step(lambda out, b, m: topk_counts(out[0], b["label"], (1,), m)))
    r = np.random.default_rng(0)
    images = r.normal(size=(11, 4, 4, 3)).astype(np.float32)
    labels = r.integers(0, 3, 11).astype(np.int32)
    batches = [{"image": images[:8], "label": labels[:8]},
               {"image": images[8:], "label": labels[8:]}]
    out = evaluate(ev, state, batches, batch_size=8)
    logits = np.asarray(state.apply_fn(state.variables(), jnp.asarray(images), train=False)[0])
    assert out["count"] == 11
    assert out["top1"] == pytest.approx(np.mean(logits.argmax(1) == labels))


class _BadLabelIter(_Iter):
    """Batches 2 and 4 (0-based) hold the class id 3 with 3 classes."""

    def __next__(self):
        batch = super().__next__()
        if self.pos - 1 in (2, 4):
            batch["label"][0] = 3
        return batch


def test_fit_reports_skipped_steps_and_their_cause(tmp_path, caplog):
    step = jax.jit(make_train_step(softmax_cross_entropy, num_classes=3))
    writer = MetricsWriter(str(tmp_path), tensorboard=False)
    with caplog.at_level(logging.WARNING, logger="vai_jax.train.loop"):
        result = fit(_state(), train_step=step, train_iter=_BadLabelIter(), num_steps=6,
                     batch_size=8, writer=writer, log_every=3, progress=False)
    assert result.step == 6 and result.skipped_steps == 2
    assert result.skip_causes == {"invalid_labels": 2}
    assert any("2 of 6 train steps were skipped" in r.getMessage()
               and "invalid_labels: 2" in r.getMessage() for r in caplog.records)
    record = [r for r in read_metrics(writer.path) if r["split"] == "skipped"]
    assert record == [{"step": 6, "split": "skipped", "skipped_steps": 2.0,
                       "skipped_invalid_labels": 2.0, "skipped_nonfinite_loss": 0.0,
                       "skipped_nonfinite_gradients": 0.0}]
    writer.close()
    clean = fit(_state(), train_step=step, train_iter=_Iter(), num_steps=2, batch_size=8,
                progress=False)
    assert clean.skipped_steps == 0 and clean.skip_causes == {}


@pytest.mark.parametrize("kwargs, error, match", [
    ({"num_steps": -1}, ValueError, "num_steps must be an int >= 0; got -1"),
    ({"num_steps": 2.5}, TypeError, "num_steps must be an int; got float"),
    ({"batch_size": "8"}, TypeError, "batch_size must be an int; got str"),
    ({"batch_size": 0}, ValueError, "batch_size must be an int >= 1; got 0"),
    ({"log_every": 0}, ValueError, "log_every must be an int >= 1; got 0"),
    ({"eval_every": -2}, ValueError, "eval_every must be an int >= 0; got -2"),
    ({"train_step": None}, TypeError, "train_step must be callable"),
    ({"eval_fn": "top1"}, TypeError, "eval_fn must be callable"),
    ({"train_iter": [1, 2]}, TypeError, "train_iter must be an iterator with __next__; list "
                                        "lacks __next__"),
    ({"restart": "yes"}, TypeError, "restart must be a bool"),
])
def test_fit_rejects_bad_arguments(kwargs, error, match):
    args = dict(train_step=_STEP, train_iter=_Iter(), num_steps=1, batch_size=8,
                progress=False)
    with pytest.raises(error, match=match):
        fit(_state(), **{**args, **kwargs})


def test_evaluate_reports_invalid_labels(caplog):
    state = _state()
    ev = jax.jit(make_eval_step(lambda out, b, m: topk_counts(out[0], b["label"], (1,), m),
                                num_classes=3))
    good, bad = next(_Iter()), next(_Iter())
    bad["label"][1] = -4
    with caplog.at_level(logging.WARNING, logger="vai_jax.train.loop"):
        out = evaluate(ev, state, [good, bad], batch_size=8)
    assert out["invalid_labels"] == 1 and np.isnan(out["top1"])
    assert any("1 class id(s) outside" in r.getMessage() for r in caplog.records)
    with pytest.raises(TypeError, match="batch_size must be an int; got float"):
        evaluate(ev, state, [good], batch_size=8.0)
