"""Data parallelism over all devices: a ``('data',)`` mesh, sharded batches, replicated state.

The step functions of :mod:`vai_jax.train.step` are jitted with the state replicated
(``P()``) and every batch array sharded along its leading axis (``P('data')``). XLA then
computes means over the *global* batch, so BatchNorm statistics and gradients are those of the
whole batch (synchronised BatchNorm) with no collective written by hand. The state argument is
donated: its buffers are reused for the new state.

On several hosts each process passes its own slice of the global batch (leading size
``global_batch / process_count``) and :func:`shard_batch` assembles the global array with
``jax.make_array_from_process_local_data``.
"""
from __future__ import annotations

from typing import Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def _check_mesh(mesh) -> Mesh:
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh (make_mesh()); got "
                        f"{type(mesh).__name__}")
    return mesh


def make_mesh(devices=None) -> Mesh:
    """A 1-D mesh named ``('data',)`` over ``devices`` (default: all devices of all hosts)."""
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("devices must hold at least one device (or be None for all of them)")
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    """Sharding of the train state: a full copy on every device."""
    _check_mesh(mesh)
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding of batch arrays: leading axis split along ``'data'``."""
    _check_mesh(mesh)
    return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(global_batch_size: int, mesh: Mesh, name: str = "global batch size") -> None:
    """ValueError unless ``global_batch_size`` is a positive multiple of the mesh's devices."""
    n = _check_mesh(mesh).devices.size
    if global_batch_size <= 0 or global_batch_size % n:
        raise ValueError(
            f"{name} {global_batch_size} is not divisible by the number of devices {n}: "
            f"data parallelism splits the batch evenly; use a multiple of {n} "
            f"(e.g. {max(n, global_batch_size // n * n)})")


def replicate(tree, mesh: Mesh):
    """Place a pytree (the train state) on every device of ``mesh``."""
    _check_mesh(mesh)
    return jax.device_put(tree, replicated(mesh))


def shard_batch(batch: dict, mesh: Mesh) -> dict:
    """Host batch (dict of arrays, this process's slice) -> global arrays sharded on ``'data'``.

    Args:
      batch: arrays with a common leading size ``b``; on ``P`` processes the global batch is
        ``b * P`` (each process passes a different slice).
      mesh: from :func:`make_mesh`.

    Raises:
      ValueError: leading sizes differ, or the global batch does not divide the device count.
    """
    sizes = {k: np.shape(v)[0] if np.ndim(v) else None for k, v in batch.items()}
    if None in sizes.values() or len(set(sizes.values())) != 1:
        raise ValueError(f"batch arrays must share one leading (batch) size; got {sizes}")
    local = next(iter(sizes.values()))
    check_batch_size(local * jax.process_count(), mesh)
    sharding = batch_sharding(mesh)
    if jax.process_count() == 1:
        return jax.device_put(dict(batch), sharding)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
            for k, v in batch.items()}


def data_parallel(step_fn: Callable, mesh: Mesh, *, donate_state: bool = True) -> Callable:
    """Jit ``step_fn(state, batch) -> out`` for the mesh; returns ``f(state, host_batch)``.

    The state must already be replicated (:func:`replicate`); ``host_batch`` is NumPy (or
    already-sharded ``jax.Array``s) and is validated and sharded by :func:`shard_batch`. Outputs
    are replicated. With ``donate_state`` the input state's buffers are donated (do not reuse
    it after the call).
    """
    if not callable(step_fn):
        raise TypeError(f"step_fn must be callable (state, batch) -> out; got "
                        f"{type(step_fn).__name__}")
    _check_mesh(mesh)
    jitted = jax.jit(step_fn, in_shardings=(replicated(mesh), batch_sharding(mesh)),
                     out_shardings=replicated(mesh),
                     donate_argnums=(0,) if donate_state else ())

    def run(state, batch):
        return jitted(state, shard_batch(batch, mesh))

    run.jitted = jitted
    return run
