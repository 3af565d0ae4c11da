"""vai_jax.losses."""
