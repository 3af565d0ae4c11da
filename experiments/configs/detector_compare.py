r"""R-CNN vs Fast R-CNN vs Faster R-CNN vs Mask R-CNN on the same shapes data: AP, AP50,
training and inference images/s, time per image (R-CNN's one CNN pass per proposal against
shared features), as results.md and comparison.png.

  python experiments/train_detector.py --config=experiments/configs/detector_compare.py --workdir /tmp/det_compare
"""
import os
import runpy

import ml_collections

_BASE = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "detector_faster_rcnn.py"))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = _BASE["get_config"](arg)
    c.models = ("rcnn", "fast_rcnn", "faster_rcnn", "mask_rcnn")
    if arg != "runlocal":
        c.num_steps = 1000          # the same budget for all four (R-CNN: 500 fine-tuning + 500 SVM steps)
    return c
