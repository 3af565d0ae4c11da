r"""R-CNN: dense sliding-window proposals, every window warped to 32x32 and run through the CNN (one forward pass per window), one-vs-rest SVMs (hinge) + class-specific box regression, trained in two stages (CNN fine-tuning, then SVMs/regressors on frozen features).

  python experiments/train_detector.py --config=experiments/configs/detector_rcnn.py --workdir /tmp/det_rcnn

Base: detector_faster_rcnn.py (same data, backbone and schedule); ``:runlocal`` for a smoke test.
"""
import os
import runpy

import ml_collections

_BASE = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "detector_faster_rcnn.py"))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = _BASE["get_config"](arg)
    c.models = ("rcnn",)
    c.num_steps = 1000
    return c
