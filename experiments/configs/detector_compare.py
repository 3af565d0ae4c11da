r"""R-CNN vs Fast R-CNN vs Faster R-CNN vs Mask R-CNN on the same shapes data at the same budget
(1,000 steps x 16 images each; R-CNN: 500 fine-tuning + 500 SVM/regressor steps): box AP,
AP50, AP75, mask AP, proposal recall, training and inference images/s, ms per image and CNN
passes per image (R-CNN: one per sliding window, 3,068), as results.md and comparison.png.

  python experiments/train_detector.py --config=experiments/configs/detector_compare.py --workdir /tmp/det_compare

Everything else is detector_faster_rcnn.py's (stride-4 features, 500 validation images).
R-CNN is evaluated on the first ``rcnn_num_val`` = 50 validation images only (the table's
"eval images" column): 3,068 CNN passes per image is the point of the comparison. Fast R-CNN
and R-CNN take the 3,068 dense sliding windows (sizes 8-24 px, stride 4) as proposals; all
four use RoIAlign here (detector_fast_rcnn.py has Fast R-CNN's RoIPool).

Measured (2-core CPU, no GPU, load average 6-9, other runs of ours alongside; 1,000 steps):
R-CNN (from detector_rcnn.py, same seed and budget) box AP 29.3 / AP50 47.3 on 50 images,
31.8 training images/s, 593 ms per image, 10 min wall; Fast R-CNN AP 51.7 / AP50 79.7,
172 training images/s, 107 ms per image, 3.5 min wall; Faster R-CNN AP 62.3 / AP50 86.6,
113 training images/s, 3.9 ms per image, 3.4 min wall; Mask R-CNN (300 steps only, 100
images) 17.5 training images/s, box AP 25.4, mask AP 21.7, 14.5 ms per image, so ~16 min for
1,000 steps under that load. Whole command: ~33 min under load 6-9, expected ~20-30 min on
an idle 2-core CPU (not timed there).
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
