r"""R-CNN: dense sliding-window proposals, every window warped to 32x32 and run through the CNN (one forward pass per window), one-vs-rest SVMs (hinge) + class-specific box regression, trained in two stages (CNN fine-tuning, then SVMs/regressors on frozen features).

  python experiments/train_detector.py --config=experiments/configs/detector_rcnn.py --workdir /tmp/det_rcnn

Base: detector_faster_rcnn.py (same data and backbone); ``:runlocal`` for a smoke test.
The region descriptor is the crop's stage2 map (8x8) pooled to 4x4 and flattened
(``rcnn_descriptor_grid``); with a global average instead, box AP50 was 6.0 (the SVMs cannot
tell a centred window from a shifted one).

Measured (2-core CPU, no GPU, load ~8 with two other runs of ours; 1,000 steps = 500 + 500):
10 min 4 s wall, training 31.8 images/s, box AP 29.3, AP50 47.3, AP75 34.8 on the first 50
validation images (``rcnn_num_val``), 593 ms per image (3,068 CNN passes).
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
