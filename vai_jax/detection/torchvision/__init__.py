"""torchvision's R-CNN detectors (Faster, Mask and Keypoint R-CNN with a ResNet-50-FPN
backbone) at inference, computing what torchvision computes with the same weights; see
:mod:`vai_jax.detection.torchvision.rcnn`."""
from vai_jax.detection.torchvision.rcnn import (BUILDERS, TorchvisionRCNN,
                                                fasterrcnn_resnet50_fpn,
                                                keypointrcnn_resnet50_fpn, maskrcnn_resnet50_fpn)

__all__ = ["BUILDERS", "TorchvisionRCNN", "fasterrcnn_resnet50_fpn", "keypointrcnn_resnet50_fpn",
           "maskrcnn_resnet50_fpn"]
