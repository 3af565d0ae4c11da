"""vai_jax: JAX/Flax visual AI — backbones, pose, detection and segmentation heads, training.

Models are Flax Linen modules (pure ``init``/``apply`` functions of their variables); ops are pure
``jax.numpy`` functions usable under ``jit``, ``vmap`` and ``grad``.

Every subpackage is reachable from here (``vai_jax.ops``, ``vai_jax.detection``, …); each is
imported on first use, so ``import vai_jax`` itself stays fast.
"""
import importlib

__version__ = "0.1.0"

SUBPACKAGES = ("analysis", "backbones", "classification", "colourisation", "data", "detection",
               "nn", "ops", "pose", "segmentation", "train", "viz", "weights")


def create_model(name, **kwargs):
    """Build a backbone by name; see :func:`vai_jax.backbones.create_model`."""
    from vai_jax.backbones import create_model as _create

    return _create(name, **kwargs)


def list_models():
    """Names accepted by :func:`create_model`, sorted."""
    from vai_jax.backbones import list_models as _list

    return _list()


def __getattr__(name):
    if name in SUBPACKAGES:
        module = importlib.import_module(f"vai_jax.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'vai_jax' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(SUBPACKAGES))


__all__ = ["create_model", "list_models", "__version__", *SUBPACKAGES]
