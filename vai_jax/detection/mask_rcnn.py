"""Mask R-CNN (He et al., 2017): Faster R-CNN with RoIAlign and a mask branch (RoIAlign 14x14,
fully convolutional, transposed conv to 28x28, one binary mask per class, BCE on the RoI's
class only). Masks are pasted back into the image with :func:`vai_jax.detection.postprocess.paste_masks`."""
from __future__ import annotations

from vai_jax.detection.faster_rcnn import FasterRCNN
from vai_jax.detection.roi_heads import RoIStage
from vai_jax.detection.rpn import RegionProposalNetwork
from vai_jax.nn.fpn import FPN


def mask_rcnn(*, backbone, rpn: RegionProposalNetwork, roi_stage: RoIStage,
              fpn: FPN | None = None) -> FasterRCNN:
    """A :class:`FasterRCNN` whose ``roi_stage`` has the mask branch on (RoIAlign pooling).

    ``roi_stage`` is copied with ``with_masks=True, pool_mode="align"``. Training inputs then
    also need ``masks [B, M, H, W]``; inference outputs add ``masks [B, D, 28, 28]``
    (probabilities in each detected box's frame).
    """
    for name, value, cls in (("rpn", rpn, RegionProposalNetwork), ("roi_stage", roi_stage, RoIStage)):
        if not isinstance(value, cls):
            raise TypeError(f"{name} must be a {cls.__name__}; got {type(value).__name__}")
    if fpn is not None and not isinstance(fpn, FPN):
        raise TypeError(f"fpn must be an FPN or None; got {type(fpn).__name__}")
    stage = roi_stage.clone(with_masks=True, pool_mode="align")
    return FasterRCNN(backbone=backbone, rpn=rpn, roi_stage=stage, fpn=fpn)
