"""vai_jax.data."""
