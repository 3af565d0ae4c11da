"""vai_jax.viz."""
