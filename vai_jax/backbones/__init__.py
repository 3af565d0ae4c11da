"""Backbone zoo. ``create_model(name, ...)`` builds a Flax module whose ``apply`` returns
``(logits_or_None, features)``; see :mod:`vai_jax.backbones.registry`."""
from vai_jax.backbones.base import FeatureInfo
from vai_jax.backbones.registry import create_model, list_models

__all__ = ["FeatureInfo", "create_model", "list_models"]
