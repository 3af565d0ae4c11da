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
from vai_jax.ops.keypoints import (
    bin_centers,
    decode_bins,
    encode_bins,
    gaussian_heatmaps,
    heatmap_argmax,
    heatmap_peaks,
    heatmap_weights,
    soft_argmax,
    spatial_softmax,
)
from vai_jax.ops.paf import group_keypoints, limb_dots, limb_score, part_affinity_fields
