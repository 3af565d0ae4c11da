r"""Fast R-CNN: one backbone pass per image, the same sliding-window proposals given from outside, RoIPool to 7x7, softmax + box regression trained jointly.

  python experiments/train_detector.py --config=experiments/configs/detector_fast_rcnn.py --workdir /tmp/det_fast_rcnn

Base: detector_faster_rcnn.py (same data, backbone and schedule); ``:runlocal`` for a smoke test.
"""
import os
import runpy

import ml_collections

_BASE = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "detector_faster_rcnn.py"))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = _BASE["get_config"](arg)
    c.models = ("fast_rcnn",)
    c.pool_mode = "pool"
    return c
