"""One process of the 2-process data-parallel test (launched by test_distributed.py).

Environment: JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID (read by
vai_jax.train.distributed) and XLA_FLAGS for the local CPU device count. argv[1]: output .npz.
"""
import os
import sys

import jax
import numpy as np

from vai_jax.train import distributed

if __name__ == "__main__":  # before any other JAX call
    assert distributed.initialize_from_env(), "expected a multi-process environment"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_testing_models import TinyBNNet  # noqa: E402
from vai_jax.classification.losses import softmax_cross_entropy  # noqa: E402
from vai_jax.train import parallel  # noqa: E402
from vai_jax.train.optim import make_optimizer  # noqa: E402
from vai_jax.train.state import TrainState, init_variables  # noqa: E402
from vai_jax.train.step import make_train_step  # noqa: E402

GLOBAL_BATCH, H = 16, 6


def global_batch(seed):
    r = np.random.default_rng(seed)
    return {"image": r.normal(1.0, 2.0, (GLOBAL_BATCH, H, H, 3)).astype(np.float32),
            "label": r.integers(0, 3, GLOBAL_BATCH).astype(np.int32)}


def main(out_path):
    mesh = parallel.make_mesh()
    model = TinyBNNet()
    variables = init_variables(model, (1, H, H, 3), rng=jax.random.PRNGKey(0))
    state = TrainState.create(apply_fn=model.apply, variables=variables,
                              tx=make_optimizer("sgd", learning_rate=0.1, momentum=0.9),
                              rng=jax.random.PRNGKey(1))
    state = parallel.replicate(state, mesh)
    step = parallel.data_parallel(make_train_step(softmax_cross_entropy), mesh)
    n, i = jax.process_count(), jax.process_index()
    local = GLOBAL_BATCH // n
    losses = []
    for s in range(2):
        batch = global_batch(s)
        mine = {k: v[i * local:(i + 1) * local] for k, v in batch.items()}  # this host's slice
        state, metrics = step(state, mine)
        losses.append(float(metrics["loss"]))
    flat = {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(
        jax.device_get(leaf.addressable_data(0)))
            for path, leaf in jax.tree_util.tree_flatten_with_path(
                {"params": state.params, "batch_stats": state.batch_stats})[0]}
    np.savez(out_path, losses=np.asarray(losses), process_count=n,
             device_count=jax.device_count(), **flat)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
