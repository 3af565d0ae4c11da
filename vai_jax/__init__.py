"""vai_jax: JAX/Flax visual AI — backbones, pose, detection and segmentation heads, training.

Models are Flax Linen modules (pure ``init``/``apply`` functions of their variables); ops are pure
``jax.numpy`` functions usable under ``jit``, ``vmap`` and ``grad``.
"""
__version__ = "0.1.0"


def create_model(name, **kwargs):
    """Build a backbone by name; see :func:`vai_jax.backbones.create_model`."""
    from vai_jax.backbones import create_model as _create

    return _create(name, **kwargs)


def list_models():
    """Names accepted by :func:`create_model`, sorted."""
    from vai_jax.backbones import list_models as _list

    return _list()


__all__ = ["create_model", "list_models", "__version__"]
