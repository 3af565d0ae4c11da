"""CheckpointManager: round trip, keep-last-k + best, corrupt fallback, checksums, shape
mismatch."""
import json
import logging
import os

import jax
import numpy as np
import pytest
from flax import serialization

from tests.train.train_testing_models import TinyBNNet
from vai_jax.train.checkpoint import CheckpointManager, CorruptCheckpointError, restore_params
from vai_jax.train.optim import make_optimizer, make_plateau
from vai_jax.train.state import TrainState, init_variables


def _state(width=6, seed=0):
    model = TinyBNNet()
    variables = init_variables(model, (1, width, width, 3), rng=jax.random.PRNGKey(seed))
    return TrainState.create(apply_fn=model.apply, variables=variables,
                             tx=make_optimizer("sgd", learning_rate=0.1, weight_decay=1e-4),
                             rng=jax.random.PRNGKey(seed + 1), plateau=make_plateau())


def _shifted(state, k):
    return state.replace(step=state.step + k,
                         params=jax.tree.map(lambda p: p + k, state.params))


def _equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_round_trip_keeps_everything(tmp_path):
    mgr = CheckpointManager(str(tmp_path), save_every=1)
    state = _shifted(_state(), 3)
    assert mgr.save(3, state, data_state=b'{"pos": 3}', extra={"best": 0.5})
    mgr.wait_until_finished()
    restored, data, meta = mgr.restore(_state(seed=5))
    _equal(restored, state)
    assert data == b'{"pos": 3}' and meta["extra"] == {"best": 0.5} and meta["step"] == 3
    assert restored.apply_fn is not None and restored.tx is not None
    raw = restore_params(str(tmp_path))
    np.testing.assert_array_equal(raw["params"]["conv"]["kernel"], state.params["conv"]["kernel"])
    mgr.close()


def test_keeps_last_k_and_best(tmp_path):
    mgr = CheckpointManager(str(tmp_path), save_every=1, max_to_keep=2, best_metric="accuracy")
    accuracy = {1: 0.3, 2: 0.9, 3: 0.5, 4: 0.4, 5: 0.6}
    base = _state()
    for step, acc in accuracy.items():
        mgr.save(step, _shifted(base, step), metrics={"accuracy": acc})
    mgr.wait_until_finished()
    assert mgr.all_steps() == [2, 4, 5] and mgr.best_step() == 2
    mgr.close()


def test_corrupt_latest_falls_back_with_warning(tmp_path, caplog):
    mgr = CheckpointManager(str(tmp_path), save_every=1)
    base = _state()
    for step in (1, 2):
        mgr.save(step, _shifted(base, step))
    mgr.wait_until_finished()
    # Corrupt every file of the latest step's state item.
    for root, _, files in os.walk(tmp_path / "2" / "state"):
        for name in files:
            with open(os.path.join(root, name), "wb") as f:
                f.write(b"garbage")
    with caplog.at_level(logging.WARNING):
        restored, _, meta = CheckpointManager(str(tmp_path), save_every=1).restore(base)
    assert meta["step"] == 1
    _equal(restored, _shifted(base, 1))
    assert any("step 2" in r.getMessage() and "corrupt" in r.getMessage() for r in caplog.records)


def test_partial_latest_falls_back(tmp_path, caplog):
    mgr = CheckpointManager(str(tmp_path), save_every=1)
    base = _state()
    for step in (1, 2):
        mgr.save(step, _shifted(base, step))
    mgr.wait_until_finished()
    os.remove(tmp_path / "2" / "state" / "_METADATA")  # an interrupted copy, say
    with caplog.at_level(logging.WARNING):
        _, _, meta = CheckpointManager(str(tmp_path), save_every=1).restore(base)
    assert meta["step"] == 1
    assert any("step 2" in r.getMessage() for r in caplog.records)


def test_shape_mismatch_names_the_parameter(tmp_path):
    mgr = CheckpointManager(str(tmp_path), save_every=1)
    mgr.save(1, _state())
    mgr.wait_until_finished()
    wider = _state()
    wider = wider.replace(params={**wider.params, "head": {
        "kernel": np.zeros((4, 5), np.float32), "bias": np.zeros((5,), np.float32)}})
    with pytest.raises(ValueError, match=r"params/head/(bias|kernel).*\(3,\).*\(5,\)|"
                                         r"params/head/kernel.*\(4, 3\).*\(4, 5\)"):
        mgr.restore(wider)
    mgr.close()


def test_no_checkpoint_returns_none(tmp_path):
    assert CheckpointManager(str(tmp_path / "new"), save_every=1).restore(_state()) is None


def _with_big(state, k=0):
    """``state`` plus a 64 x 64 parameter: large enough for orbax to write its data to an array
    file of its own (small arrays are stored inline in the checksummed index)."""
    w = np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32) + k
    return state.replace(params={**state.params, "big": {"kernel": w}})


def _files(step_dir):
    return {os.path.join(r, f): open(os.path.join(r, f), "rb").read()
            for r, _, names in os.walk(step_dir) for f in names}


def _flip_one_bit_in_array_data(step_dir):
    """Flip one bit in the middle of the step's largest state file, the one holding the 64 x 64
    array's (compressed) bytes, and check that exactly that bit changed on disk."""
    before = _files(step_dir)
    path = max((p for p in before if f"{os.sep}state{os.sep}" in p), key=lambda p: len(before[p]))
    assert len(before[path]) > 64 * 64 * 4 // 2, "no array data file found"
    data = bytearray(before[path])
    data[len(data) // 2] ^= 0x04
    with open(path, "wb") as f:
        f.write(data)
    after = _files(step_dir)
    changed = [p for p in before if before[p] != after[p]]
    assert changed == [path]
    diff = np.bitwise_xor(np.frombuffer(before[path], np.uint8), np.frombuffer(after[path], np.uint8))
    assert int(np.unpackbits(diff).sum()) == 1


def _save_steps(directory, steps, base):
    mgr = CheckpointManager(str(directory), save_every=1)
    for step in steps:
        mgr.save(step, _shifted(base, step), data_state=f"{step}".encode())
    mgr.close()


def test_bit_flip_in_array_data_falls_back_with_warning(tmp_path, caplog):
    base = _with_big(_state())
    _save_steps(tmp_path, (1, 2), base)
    _flip_one_bit_in_array_data(tmp_path / "2")
    with caplog.at_level(logging.WARNING):
        restored, data, meta = CheckpointManager(str(tmp_path), save_every=1).restore(base)
    assert meta["step"] == 1 and data == b"1" and "integrity" not in meta
    _equal(restored, _shifted(base, 1))
    messages = [r.getMessage() for r in caplog.records]
    assert any("step 2" in m and "params/big/kernel" in m and "checksum" in m for m in messages)
    # The raw reader verifies too: the latest intact step, or an error for the corrupt one.
    assert int(restore_params(str(tmp_path))["step"]) == int(base.step) + 1
    with pytest.raises(CorruptCheckpointError, match=r"step 2 .*params/big/kernel"):
        restore_params(str(tmp_path), step=2)
    with pytest.raises(CorruptCheckpointError, match=r"step 2 .*params/big/kernel"):
        CheckpointManager(str(tmp_path), save_every=1).restore(base, step=2)


def test_every_step_corrupt_raises(tmp_path):
    base = _with_big(_state())
    _save_steps(tmp_path, (1, 2), base)
    _flip_one_bit_in_array_data(tmp_path / "1")
    _flip_one_bit_in_array_data(tmp_path / "2")
    with pytest.raises(CorruptCheckpointError, match=r"no intact checkpoint.*step 2.*step 1"):
        CheckpointManager(str(tmp_path), save_every=1).restore(base)
    with pytest.raises(CorruptCheckpointError, match="no intact checkpoint"):
        restore_params(str(tmp_path))


def test_edited_meta_fails_its_checksum(tmp_path, caplog):
    base = _state()
    _save_steps(tmp_path, (1, 2), base)
    path = tmp_path / "2" / "meta" / "metadata"
    meta = json.loads(path.read_text())
    meta["data_state"] = "7"  # valid JSON, wrong data position
    path.write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING):
        _, data, meta = CheckpointManager(str(tmp_path), save_every=1).restore(base)
    assert meta["step"] == 1 and data == b"1"
    assert any("step 2" in r.getMessage() and "'meta'" in r.getMessage() for r in caplog.records)


def test_checkpoint_without_checksums_is_restored_with_warning(tmp_path, caplog):
    """Checkpoints saved before checksums were recorded are accepted, unverified."""
    base = _state()
    _save_steps(tmp_path, (1,), base)
    path = tmp_path / "1" / "meta" / "metadata"
    meta = json.loads(path.read_text())
    del meta["integrity"]
    path.write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING):
        restored, data, meta = CheckpointManager(str(tmp_path), save_every=1).restore(base)
    assert meta["step"] == 1 and data == b"1"
    _equal(restored, _shifted(base, 1))
    assert any("step 1" in r.getMessage() and "no checksums" in r.getMessage()
               for r in caplog.records)


def test_delete_all(tmp_path):
    _save_steps(tmp_path, (1, 2), _state())
    mgr = CheckpointManager(str(tmp_path), save_every=1)
    assert mgr.delete_all() == [1, 2] and mgr.all_steps() == []
    assert mgr.restore(_state()) is None
    mgr.close()


def test_checkpoint_without_skip_causes_restores_them_as_zeros(tmp_path):
    """A state saved before TrainState had skip_causes resumes with the counts at zero; the
    skipped-step total and everything else come back from the checkpoint."""
    old = _shifted(_state(), 2).replace(skip_causes=None,
                                        skipped_steps=np.asarray(4, np.int32))
    without_key = serialization.to_state_dict(old)
    del without_key["skip_causes"]  # the layout of such checkpoints
    for i, saved in enumerate((old, without_key)):
        mgr = CheckpointManager(str(tmp_path / str(i)), save_every=1)
        mgr.save(2, saved)
        mgr.wait_until_finished()
        restored, _, meta = mgr.restore(_state(seed=3))
        assert meta["step"] == 2 and int(restored.skipped_steps) == 4
        np.testing.assert_array_equal(restored.skip_causes, [0, 0, 0])
        _equal(restored.params, old.params)
        mgr.close()


@pytest.mark.parametrize("kwargs, error, match", [
    ({"save_every": 0}, ValueError, "save_every must be an int >= 1; got 0"),
    ({"save_every": "10"}, TypeError, "save_every must be an int; got str"),
    ({"save_every": 10, "max_to_keep": 2.0}, TypeError, "max_to_keep must be an int; got float"),
    ({"save_every": 10, "best_metric": 1}, TypeError, "best_metric must be a metric name"),
    ({"save_every": 10, "best_mode": "up"}, ValueError, "best_mode must be 'max' or 'min'"),
])
def test_manager_arguments_are_checked_by_name(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        CheckpointManager(str(tmp_path), **kwargs)
