"""vai_jax.train."""
