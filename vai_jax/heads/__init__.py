"""vai_jax.heads."""
