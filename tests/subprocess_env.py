"""The environment of a process that a test launches (an experiment script, a benchmark, a
multi-process job, a README block): CPU only, the run's compilation cache and XLA's
fast-compiling options from ``tests/conftest.py``, and ``devices`` simulated CPU devices in
place of the test run's eight."""
import os


def subprocess_env(devices: int = 1, drop=(), **extra: str) -> dict:
    """``os.environ`` for a child process, with ``devices`` CPU devices.

    Args:
      devices: simulated host devices (``--xla_force_host_platform_device_count``; 1 adds none).
      drop: names of variables of this process not to pass on.
      **extra: variables to set.
    """
    if devices < 1:
        raise ValueError(f"devices must be >= 1, got {devices}")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
    if devices > 1:
        flags.append(f"--xla_force_host_platform_device_count={devices}")
    return dict(env, JAX_PLATFORMS="cpu", XLA_FLAGS=" ".join(flags), **extra)
