"""Object detection: R-CNN, Fast R-CNN, Faster R-CNN (+ FPN), Mask R-CNN, and everything they
are made of.

One concern per module: :mod:`anchors` (anchor grids), :mod:`matching` (IoU matching and
balanced sampling), :mod:`targets` (anchor / RoI / mask targets), :mod:`levels` (feature maps
chosen by ``in_features`` and their strides), :mod:`rpn` (the region proposal head and
network), :mod:`proposals` (RPN decoding, sliding windows, proposal recall), :mod:`roi_heads`
(the shared second stage: RoI pooling, box and mask heads), :mod:`postprocess` (detections,
mask pasting), :mod:`losses`, :mod:`inputs` (host-side checks of targets, preprocessing, the
training batches), :mod:`coco_eval` (COCO box / mask AP), and the models :mod:`rcnn`,
:mod:`fast_rcnn`, :mod:`faster_rcnn`, :mod:`mask_rcnn`. The feature pyramid is
:class:`vai_jax.nn.fpn.FPN`. :mod:`vai_jax.detection.torchvision` computes torchvision's
pretrained Faster / Mask / Keypoint R-CNN (ResNet-50-FPN) at inference.

Modules on backbone features take the backbone's dict of named maps and choose their inputs
with ``in_features``; :class:`BoxHead` and :class:`MaskHead` take RoI-pooled tensors.
"""
from vai_jax.detection.fast_rcnn import FastRCNN
from vai_jax.detection.faster_rcnn import FasterRCNN
from vai_jax.detection.mask_rcnn import mask_rcnn
from vai_jax.detection.rcnn import RCNN
from vai_jax.detection.roi_heads import BoxHead, MaskHead, RoIStage
from vai_jax.detection.rpn import RegionProposalNetwork, RPNHead

__all__ = ["BoxHead", "FastRCNN", "FasterRCNN", "MaskHead", "RCNN", "RPNHead",
           "RegionProposalNetwork", "RoIStage", "mask_rcnn"]
