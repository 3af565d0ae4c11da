r"""Mask R-CNN (He et al. 2017, arXiv:1703.06870): Faster R-CNN + the 14x14 RoIAlign mask branch
(28x28 per-class masks); box and mask AP; the default config's data, backbone and schedule.

  python experiments/detection/main.py --workdir W --config experiments/detection/configs/mask_rcnn.py

Expected: not measured at these 2,500 steps; at 1,000 steps see compare.py (box AP50 88.4, mask
AP 58.4, 53.6 training images/s on the idle 2-core CPU). ``:runlocal`` is a smoke test.
"""
import ml_collections

from experiments.detection.configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = default.get_config(arg)
    c.models = ("mask_rcnn",)
    return c
