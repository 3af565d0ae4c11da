"""Pure jax.numpy ops without parameters: numerics, coordinates, boxes, anchors, NMS, RoI ops,
keypoints. Each owner module adds its public names here."""
from vai_jax.ops import coords
from vai_jax.ops.numerics import (
    cross_entropy,
    gaussian_nll,
    l2_loss,
    log_softmax,
    logsumexp,
    nll,
    softmax,
)
