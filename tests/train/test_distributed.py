"""Two JAX processes on this machine (gloo collectives over localhost) train like one."""
import os
import subprocess
import sys

import jax
import numpy as np
import portpicker

from tests.train.train_distributed_worker import GLOBAL_BATCH, H, global_batch
from tests.train.train_testing_models import TinyBNNet
from vai_jax.classification.losses import softmax_cross_entropy
from vai_jax.train import distributed
from vai_jax.train.optim import make_optimizer
from vai_jax.train.state import TrainState, init_variables
from vai_jax.train.step import make_train_step
from tests.subprocess_env import subprocess_env

HERE = os.path.dirname(os.path.abspath(__file__))


def test_two_processes_match_single_process(tmp_path):
    port = portpicker.pick_unused_port()
    procs, outs = [], []
    for pid in range(2):
        env = subprocess_env(devices=2, JAX_COORDINATOR_ADDRESS=f"localhost:{port}",
                             JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(pid))
        outs.append(str(tmp_path / f"proc{pid}.npz"))
        procs.append(subprocess.Popen([sys.executable, os.path.join(HERE,
                                                                    "train_distributed_worker.py"),
                                       outs[-1]], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    logs = [p.communicate(timeout=240)[0] for p in procs]
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    results = [dict(np.load(o)) for o in outs]
    assert all(int(r["process_count"]) == 2 and int(r["device_count"]) == 4 for r in results)

    # Reference: the same 2 steps on one device with the whole global batch.
    model = TinyBNNet()
    variables = init_variables(model, (1, H, H, 3), rng=jax.random.PRNGKey(0))
    state = TrainState.create(apply_fn=model.apply, variables=variables,
                              tx=make_optimizer("sgd", learning_rate=0.1, momentum=0.9),
                              rng=jax.random.PRNGKey(1))
    step = jax.jit(make_train_step(softmax_cross_entropy))
    losses = []
    for s in range(2):
        state, m = step(state, global_batch(s))
        losses.append(float(m["loss"]))
    assert GLOBAL_BATCH % 4 == 0
    ref = {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(leaf)
           for path, leaf in jax.tree_util.tree_flatten_with_path(
               {"params": state.params, "batch_stats": state.batch_stats})[0]}
    for r in results:
        np.testing.assert_allclose(r["losses"], losses, rtol=1e-5)
        for name, value in ref.items():
            np.testing.assert_allclose(r[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
    for name in ref:  # the two hosts hold identical replicas
        np.testing.assert_array_equal(results[0][name], results[1][name])


def test_single_process_environment_is_a_no_op(monkeypatch):
    for var in (distributed.ENV_COORDINATOR, "SLURM_JOB_ID", "SLURM_NTASKS",
                "OMPI_COMM_WORLD_SIZE", "JOBSET_NAME"):
        monkeypatch.delenv(var, raising=False)
    assert distributed.initialize_from_env() is False


def test_incomplete_environment_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(distributed.ENV_COORDINATOR, "localhost:1234")
    monkeypatch.delenv(distributed.ENV_NUM_PROCESSES, raising=False)
    import pytest

    with pytest.raises(ValueError, match="JAX_NUM_PROCESSES"):
        distributed.initialize_from_env()
