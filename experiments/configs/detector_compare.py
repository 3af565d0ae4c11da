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

Measured in one run of the command above on the project's idle 2-core CPU (no GPU),
2026-11-21: **10 min 34 s wall** for all four.

  | model        | box AP | AP50 | AP75 | mask AP | train img/s | ms / image | CNN passes / image |
  | R-CNN        |  29.3  | 47.3 | 34.8 |    -    |   140.3     |   199.1    |  3,068             |
  | Fast R-CNN   |  51.7  | 79.7 | 59.6 |    -    |   266.4     |    22.5    |      1             |
  | Faster R-CNN |  62.3  | 86.6 | 75.5 |    -    |   242.3     |     2.4    |      1             |
  | Mask R-CNN   |  64.5  | 88.4 | 79.5 |  58.4   |    53.6     |     7.6    |      1             |

(R-CNN on 50 validation images, the others on 500; proposal recall@0.7 of the sliding windows
76.2 / 74.8 %, of the RPN 95.4 / 95.8 %.) Shared features make Fast R-CNN 9x faster per image
than R-CNN's 3,068 crops, the RPN another 9x; the mask branch costs Mask R-CNN 4.5x training
throughput here (its head runs on 128 foreground RoIs per step at 14x14).
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
