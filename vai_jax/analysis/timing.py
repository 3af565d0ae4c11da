"""Timing of jitted calls, and a description of the machine the times were taken on.

JAX dispatches asynchronously: a call returns before its arrays are computed. ``time_calls``
therefore blocks on the last output of the warm-up calls (the first call compiles) and of the
timed calls, so that the figure is the compute time per call, compilation excluded.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import time
from typing import Any, Callable

import jax


@dataclasses.dataclass(frozen=True)
class CallTime:
    """Seconds per call: ``wall_s`` by the wall clock, ``cpu_s`` in process CPU time (all
    threads; on an otherwise idle machine about ``wall_s`` times the cores in use)."""

    wall_s: float
    cpu_s: float


def time_calls(fn: Callable[[], Any], *, num_steps: int, warmup_steps: int = 1) -> CallTime:
    """Seconds per call of ``fn`` (a zero-argument call returning arrays).

    ``max(warmup_steps, 1)`` untimed calls come first (the first one compiles), then
    ``num_steps`` timed calls; both phases end with ``jax.block_until_ready`` on the last output.
    A stateful step is timed by a closure that stores the new state, e.g.
    ``def one(): state[0], m = step(state[0], batch); return m``.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1; got {num_steps}")
    out = None
    for _ in range(max(warmup_steps, 1)):
        out = fn()
    jax.block_until_ready(out)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(num_steps):
        out = fn()
    jax.block_until_ready(out)
    return CallTime(wall_s=(time.perf_counter() - wall0) / num_steps,
                    cpu_s=(time.process_time() - cpu0) / num_steps)


def describe_devices() -> str:
    """JAX's devices in words: ``"8 x NVIDIA H200"``, or for the CPU backend
    ``"1 x cpu (x86_64, 2 cores visible)"``."""
    devices = jax.devices()
    text = f"{len(devices)} x {devices[0].device_kind}"
    if devices[0].platform == "cpu":
        text += f" ({platform.processor() or platform.machine()}, {os.cpu_count()} cores visible)"
    return text


def machine_info() -> dict:
    """What a benchmark's JSON records about the machine: devices, JAX backend and version, CPU
    cores (count and this process's affinity), processor, platform and the load average (1, 5,
    15 min; ``None`` where the OS has none) at the time of the call."""
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    load = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return {"devices": describe_devices(), "backend": jax.default_backend(),
            "jax_version": jax.__version__, "cpu_count": os.cpu_count(), "cpu_affinity": affinity,
            "processor": platform.processor() or platform.machine(),
            "platform": platform.platform(), "load_average": load}
