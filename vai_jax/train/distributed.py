"""Multi-host start-up: ``jax.distributed.initialize`` from the launcher's environment.

Call :func:`initialize_from_env` first thing in a training script (before any other JAX call).
It recognises, in order:

1. explicit variables ``JAX_COORDINATOR_ADDRESS`` (``host:port`` of process 0),
   ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` (any launcher, ``torchrun``-style scripts,
   Kubernetes indexed Jobs with ``JAX_PROCESS_ID=$JOB_COMPLETION_INDEX``);
2. clusters JAX detects itself (SLURM via ``SLURM_*``, Open MPI via ``OMPI_*``, Kubernetes
   JobSets, Cloud TPU): ``jax.distributed.initialize()`` with no arguments;
3. otherwise a single process: nothing to do.

After it, ``jax.devices()`` lists every host's devices, each process feeds its own slice of the
global batch (``make_loader`` shards by ``jax.process_index()``) and
:func:`vai_jax.train.parallel.shard_batch` assembles the global array.
"""
from __future__ import annotations

import logging
import os

import jax

logger = logging.getLogger(__name__)

ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"


def _detected_cluster() -> str | None:
    """Name of the cluster environment JAX would auto-detect, or None."""
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_JOB_ID" in os.environ:
        return "slurm"
    if int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
        return "ompi"
    if "JOBSET_NAME" in os.environ:
        return "kubernetes"
    return None


def initialize_from_env(*, cpu_collectives: str | None = "gloo") -> bool:
    """Initialise JAX's distributed runtime when the environment describes several processes.

    Args:
      cpu_collectives: on CPU-only hosts, the cross-process collectives implementation to
        select (``"gloo"``; ``None`` leaves JAX's default). Ignored on GPU/TPU.

    Returns:
      True if ``jax.distributed.initialize`` was called (now or before), False for one process.

    Raises:
      ValueError: the explicit variables are incomplete or inconsistent.
    """
    if jax.distributed.is_initialized():
        return True
    coordinator = os.environ.get(ENV_COORDINATOR)
    if coordinator:
        try:
            num = int(os.environ[ENV_NUM_PROCESSES])
            pid = int(os.environ[ENV_PROCESS_ID])
        except (KeyError, ValueError) as err:
            raise ValueError(
                f"{ENV_COORDINATOR} is set, so {ENV_NUM_PROCESSES} and {ENV_PROCESS_ID} must be "
                f"integers too; got {ENV_NUM_PROCESSES}={os.environ.get(ENV_NUM_PROCESSES)!r}, "
                f"{ENV_PROCESS_ID}={os.environ.get(ENV_PROCESS_ID)!r}") from err
        if not 0 <= pid < num:
            raise ValueError(f"{ENV_PROCESS_ID} must be in [0, {ENV_NUM_PROCESSES}={num}); "
                             f"got {pid}")
        _select_cpu_collectives(cpu_collectives)
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num,
                                   process_id=pid)
    elif _detected_cluster() is not None:
        _select_cpu_collectives(cpu_collectives)
        jax.distributed.initialize()
    else:
        return False
    logger.info("distributed: process %d of %d, %d local / %d global devices",
                jax.process_index(), jax.process_count(), jax.local_device_count(),
                jax.device_count())
    return True


def _select_cpu_collectives(name: str | None) -> None:
    if name:  # only affects the CPU backend; must precede backend initialisation
        jax.config.update("jax_cpu_collectives_implementation", name)
