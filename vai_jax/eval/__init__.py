"""vai_jax.eval."""
