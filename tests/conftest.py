"""Test configuration: 8 simulated CPU devices for the data-parallel tests, and one JAX
compilation cache shared by every process of a test run.

``chex.set_n_cpu_devices`` must run before JAX initialises its backends, hence at import.

The compilation cache lives in a temporary directory made by the first process of the run (the
pytest controller) and handed to the xdist workers and to the subprocesses that tests launch
(experiment scripts, benchmarks, the multi-process job) through ``JAX_COMPILATION_CACHE_DIR``:
a computation compiled once in the run is loaded, not recompiled, wherever it appears again.
The controller deletes the directory at the end, so no run reads another run's cache.

The tests' programs are tiny and compiled once, so compilation dominates their time: XLA's CPU
backend runs no LLVM optimisation (``--xla_backend_optimization_level=0``) and emits fused
element-wise code with its older elemental emitter (``--xla_cpu_use_fusion_emitters=false``);
the HLO passes are unchanged. One core compiling the gradient of MobileNetV1 (width 0.25, 32x32)
takes 1.8 s instead of 7.1 s at level 1 without LLVM's expensive passes, DenseNet-121 (growth 8)
11 s instead of 42 s; the whole suite 11.5 instead of 15 minutes on an idle 2-core CPU. Level 0
with the fusion emitters on changes the float rounding of vectorised reductions enough to move 2
of the 20 boxes of the torchvision Faster R-CNN parity test beyond its tolerance; with the
elemental emitter every parity test passes. ``VAI_JAX_TEST_XLA_FLAGS=default`` keeps XLA's
defaults. Processes that tests launch get the same options (``tests/subprocess_env.py``); the
few programs that run longer than they compile take other options (``tests/xla_options.py``).
"""
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_CACHE_OWNER = "VAI_JAX_TEST_CACHE_OWNER"
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="vai_jax_jit_cache_")
    os.environ[_CACHE_OWNER] = str(os.getpid())
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
if os.environ.get("VAI_JAX_TEST_XLA_FLAGS") != "default":
    from tests.xla_options import FAST_COMPILE_FLAGS as _fast
    _flags = os.environ.get("XLA_FLAGS", "").split()
    os.environ["XLA_FLAGS"] = " ".join(_flags + [f for f in _fast if f not in _flags])

import chex  # noqa: E402

chex.set_n_cpu_devices(8)

import jax  # noqa: E402

jax.config.update("jax_enable_x64", False)


def pytest_unconfigure(config):
    if os.environ.get(_CACHE_OWNER) == str(os.getpid()):
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
