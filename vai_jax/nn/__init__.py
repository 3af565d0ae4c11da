"""vai_jax.nn."""
