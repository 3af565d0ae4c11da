"""vai_jax.analysis."""
