"""Helpers for the analysis tests: variables without compiling ``model.init``."""
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util


def random_variables(model, input_shape, *, seed: int = 0, bias_std: float = 0.0):
    """He-normal kernels, BN scale 1 / bias 0 (or N(0, bias_std²) biases), running mean 0 and
    variance 1: built from ``eval_shape`` in NumPy (no compilation, no zero weights)."""
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0),
                                               jnp.zeros(input_shape), train=False))
    rng = np.random.default_rng(seed)
    out = {}
    for collection, tree in shapes.items():
        flat = {}
        for key, s in traverse_util.flatten_dict(dict(tree)).items():
            leaf = key[-1]
            if leaf == "kernel":
                fan_in = int(np.prod(s.shape[:-1]))
                v = rng.normal(0, np.sqrt(2.0 / fan_in), s.shape)
            elif leaf in ("scale", "var"):
                v = np.ones(s.shape)
            elif leaf == "bias" and bias_std:
                v = rng.normal(0, bias_std, s.shape)
            else:
                v = np.zeros(s.shape)
            flat[key] = jnp.asarray(v, s.dtype)
        out[collection] = traverse_util.unflatten_dict(flat)
    return out
