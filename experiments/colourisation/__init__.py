"""Automatic colourisation with and without global features (Iizuka et al. 2016)."""
