"""Two-stage object detectors: R-CNN, Fast R-CNN, Faster R-CNN (+ FPN), Mask R-CNN.

One concern per module: :mod:`targets` (anchor / RoI / mask targets), :mod:`proposals` (RPN
decoding, sliding windows), :mod:`postprocess` (detections), :mod:`roi_stage` (the shared second
stage), :mod:`rcnn`, :mod:`fast_rcnn`, :mod:`faster_rcnn`, :mod:`mask_rcnn`, :mod:`inputs`
(host-side checks of targets). Losses: :mod:`vai_jax.losses.detection`; COCO AP:
:mod:`vai_jax.eval.coco_eval`.
"""
from vai_jax.detection.fast_rcnn import FastRCNN
from vai_jax.detection.faster_rcnn import FasterRCNN
from vai_jax.detection.mask_rcnn import mask_rcnn
from vai_jax.detection.rcnn import RCNN
from vai_jax.detection.roi_stage import RoIStage
