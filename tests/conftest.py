"""Test configuration: 8 simulated CPU devices for the data-parallel tests.

``chex.set_n_cpu_devices`` must run before JAX initialises its backends, hence at import.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import chex  # noqa: E402

chex.set_n_cpu_devices(8)

import jax  # noqa: E402

jax.config.update("jax_enable_x64", False)
