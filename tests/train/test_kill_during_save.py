"""SIGKILL while an asynchronous checkpoint save is in flight, then a bit-identical resume.

The training run is this file executed as a script (``python <file> WORKDIR``): a tiny MLP with
dropout, momentum SGD and a resumable data iterator, trained by :func:`vai_jax.train.loop.fit`
for 12 steps with a checkpoint every 3. With ``--signal-after-save=S`` it writes one byte to
file descriptor ``--signal-fd`` as soon as ``save(S)`` has returned; the victim run also sets
``VAI_JAX_CHECKPOINT_WRITE_DELAY_S`` so that the background write of step S is still in flight
when the test sends SIGKILL.
"""
import argparse
import os
import select
import signal
import subprocess
import sys

NUM_STEPS, SAVE_EVERY, KILL_AT = 12, 3, 6


def _train(workdir: str, signal_after_save: int, signal_fd: int) -> None:
    import flax.linen as nn
    import jax
    import numpy as np

    from vai_jax.classification.losses import softmax_cross_entropy
    from vai_jax.train.checkpoint import CheckpointManager
    from vai_jax.train.loop import fit
    from vai_jax.train.optim import make_optimizer
    from vai_jax.train.state import TrainState, init_variables
    from vai_jax.train.step import make_train_step

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, *, train: bool):
            x = nn.relu(nn.Dense(16, name="hidden")(x.reshape(x.shape[0], -1)))
            x = nn.Dropout(0.25, deterministic=not train)(x)
            return nn.Dense(3, name="head")(x), {}

    class Batches:
        """Deterministic batches; the position is the number of batches drawn."""

        def __init__(self):
            self.pos = 0

        def __next__(self):
            r = np.random.default_rng(self.pos)
            self.pos += 1
            return {"image": r.normal(size=(8, 4, 4, 3)).astype(np.float32),
                    "label": r.integers(0, 3, 8).astype(np.int32)}

        def get_state(self):
            return str(self.pos).encode()

        def set_state(self, state):
            self.pos = int(state.decode())

    class SignallingCheckpoints(CheckpointManager):
        def save(self, step, state, **kwargs):
            saved = super().save(step, state, **kwargs)
            if saved and step == signal_after_save:
                os.write(signal_fd, b"s")  # save() returned; the files are still being written
            return saved

    model = Net()
    variables = init_variables(model, (1, 4, 4, 3), rng=jax.random.PRNGKey(0))
    state = TrainState.create(apply_fn=model.apply, variables=variables,
                              tx=make_optimizer("sgd", learning_rate=0.1, momentum=0.9),
                              rng=jax.random.PRNGKey(1))
    checkpoints = SignallingCheckpoints(os.path.join(workdir, "checkpoints"),
                                        save_every=SAVE_EVERY, max_to_keep=10)
    fit(state, train_step=jax.jit(make_train_step(softmax_cross_entropy)), train_iter=Batches(),
        num_steps=NUM_STEPS, batch_size=8, checkpoints=checkpoints, progress=False)
    checkpoints.close()


def _command(workdir, *extra):
    return [sys.executable, os.path.abspath(__file__), str(workdir), *extra]


def _env(**extra):
    from tests.subprocess_env import subprocess_env  # not needed when this file runs as a script

    return subprocess_env(drop=("VAI_JAX_CHECKPOINT_WRITE_DELAY_S",), TF_CPP_MIN_LOG_LEVEL="3",
                          **extra)


def _entries(directory):
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def test_sigkill_during_async_save_resumes_bit_identically(tmp_path):
    import jax
    import numpy as np

    from vai_jax.train.checkpoint import restore_params

    full, broken = tmp_path / "full", tmp_path / "broken"
    ref = subprocess.Popen(_command(full), env=_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    read_fd, write_fd = os.pipe()
    log = tmp_path / "victim.log"
    with open(log, "w") as out:
        victim = subprocess.Popen(
            _command(broken, f"--signal-after-save={KILL_AT}", f"--signal-fd={write_fd}"),
            env=_env(VAI_JAX_CHECKPOINT_WRITE_DELAY_S="2"), pass_fds=(write_fd,),
            stdout=out, stderr=subprocess.STDOUT)
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], 180)
        signalled = bool(ready) and os.read(read_fd, 1) == b"s"
        if signalled:
            os.kill(victim.pid, signal.SIGKILL)
    finally:
        os.close(read_fd)
        if victim.poll() is None:
            victim.kill()
        victim.wait()
    assert signalled, "the run never reached the save:\n" + log.read_text()[-3000:]
    assert victim.returncode == -signal.SIGKILL
    ckpt = broken / "checkpoints"
    entries = _entries(ckpt)
    # Step 3 is committed; step 6 was killed mid-write and exists only as a temporary directory.
    assert [e for e in entries if e.isdigit()] == ["3"], entries
    assert any(e.startswith(f"{KILL_AT}.") and "tmp" in e for e in entries), entries

    resumed = subprocess.run(_command(broken), env=_env(), capture_output=True, text=True,
                             timeout=180)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert "resumed from checkpoint step 3" in resumed.stdout + resumed.stderr
    out = ref.communicate(timeout=180)[0]
    assert ref.returncode == 0, out[-3000:]

    a = restore_params(str(full / "checkpoints"), step=NUM_STEPS)
    b = restore_params(str(ckpt), step=NUM_STEPS)
    assert int(a["step"]) == int(b["step"]) == NUM_STEPS
    flat_a = jax.tree_util.tree_flatten_with_path(a)[0]
    flat_b = jax.tree.leaves(b)
    assert len(flat_a) == len(flat_b) and len(flat_a) > 4
    for (path, x), y in zip(flat_a, flat_b):
        np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir")
    parser.add_argument("--signal-after-save", type=int, default=-1)
    parser.add_argument("--signal-fd", type=int, default=-1)
    args = parser.parse_args()
    _train(args.workdir, args.signal_after_save, args.signal_fd)
