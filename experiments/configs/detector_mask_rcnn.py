r"""Mask R-CNN: Faster R-CNN + the 14x14 RoIAlign mask branch (28x28 per-class masks); reports box and mask AP.

  python experiments/train_detector.py --config=experiments/configs/detector_mask_rcnn.py --workdir /tmp/det_mask_rcnn

Base: detector_faster_rcnn.py (same data, backbone and schedule); ``:runlocal`` for a smoke test.
"""
import os
import runpy

import ml_collections

_BASE = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "detector_faster_rcnn.py"))

def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = _BASE["get_config"](arg)
    c.models = ("mask_rcnn",)

    return c
