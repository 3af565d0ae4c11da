"""Generic pure jax.numpy ops without parameters: numerics, coordinates, boxes, NMS, RoIAlign,
RoIPool and FPN poolers, keypoint heatmaps and soft-argmax, up-sampling, sRGB ↔ L*a*b*
colour conversion. Task-specific functions live with their task (anchors and matching in
:mod:`vai_jax.detection`, part affinity fields in :mod:`vai_jax.pose`)."""
from vai_jax.ops import coords
from vai_jax.ops.color import lab_to_rgb, rgb_to_lab
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
from vai_jax.ops.boxes import (
    box_area,
    box_cxcywh_to_xyxy,
    box_iou,
    box_xywh_to_xyxy,
    box_xyxy_to_cxcywh,
    box_xyxy_to_xywh,
    clip_boxes,
    decode_boxes,
    encode_boxes,
    generalized_box_iou,
    paired_box_iou,
    paired_generalized_box_iou,
    valid_box_mask,
)
from vai_jax.ops.nms import batched_nms, nms
from vai_jax.ops.roi_align import roi_align, roi_align_batched
from vai_jax.ops.roi_pool import roi_pool
from vai_jax.ops.poolers import fpn_levels, multilevel_roi_align
from vai_jax.ops.upsample import (
    align_to,
    bilinear_kernel,
    bilinear_kernel_1d,
    bilinear_kernel_size,
    bilinear_padding,
    bilinear_upsample,
    conv_transpose,
    max_pool_with_argmax,
    max_unpool,
    resize_bilinear,
    transposed_conv_output_size,
)
from vai_jax.ops.crf import (
    chain_label_marginals,
    chain_log_likelihood,
    chain_log_partition,
    chain_marginals,
    chain_sequence_log_probs,
    chain_viterbi,
)
from vai_jax.ops.dense_crf import bilateral_filter, dense_crf, spatial_filter
