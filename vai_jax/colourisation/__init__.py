"""Automatic colourisation (Iizuka, Simo-Serra & Ishikawa 2016, "Let there be Color!"): a network
from the CIE lightness L to the chrominance ab that fuses local features with a global image
vector, its inputs and targets in L*a*b*, the losses and the ab-error / PSNR metrics."""
from vai_jax.colourisation.inputs import grey_input, join_lab, split_lab
from vai_jax.colourisation.losses import ab_squared_error, colourisation_loss
from vai_jax.colourisation.metrics import colourisation_sums, psnr, summarise
from vai_jax.colourisation.models import ColourisationNet, fuse_global

__all__ = ["ColourisationNet", "ab_squared_error", "colourisation_loss", "colourisation_sums",
           "fuse_global", "grey_input", "join_lab", "psnr", "split_lab", "summarise"]
