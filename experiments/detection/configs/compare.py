r"""R-CNN vs Fast R-CNN vs Faster R-CNN vs Mask R-CNN on the same shapes data at the same budget:
1,000 steps x 16 images each (R-CNN: 500 fine-tuning + 500 SVM / regressor steps), the default
config's data and backbone, RoIAlign for all four; R-CNN and Fast R-CNN take the 3,068 dense
sliding windows (sizes 8-24 px, stride 4) as proposals, R-CNN is evaluated on the first 50
validation images (3,068 CNN passes per image), the others on 500.

  python experiments/detection/main.py --workdir W --config experiments/detection/configs/compare.py

Expected, in 10 min 34 s for the command on the idle 2-core CPU (no GPU), 2026-11-21:

  | model        | box AP | AP50 | AP75 | mask AP | train img/s | ms / image | CNN passes / image |
  | R-CNN        |  29.3  | 47.3 | 34.8 |    -    |   140.3     |   199.1    |  3,068             |
  | Fast R-CNN   |  51.7  | 79.7 | 59.6 |    -    |   266.4     |    22.5    |      1             |
  | Faster R-CNN |  62.3  | 86.6 | 75.5 |    -    |   242.3     |     2.4    |      1             |
  | Mask R-CNN   |  64.5  | 88.4 | 79.5 |  58.4   |    53.6     |     7.6    |      1             |

Proposal recall@0.7: sliding windows 76.2 / 74.8 % (R-CNN / Fast R-CNN), RPN 95.4 / 95.8 %.
``:runlocal`` is a smoke test of all four.
"""
import ml_collections

from experiments.detection.configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = default.get_config(arg)
    c.models = ("rcnn", "fast_rcnn", "faster_rcnn", "mask_rcnn")
    if arg != "runlocal":
        c.num_steps = 1000
    return c
