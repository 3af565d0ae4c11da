r"""Fast R-CNN (Girshick 2015, arXiv:1504.08083): one backbone pass per image, dense
sliding-window proposals given from outside, RoIPool to 7x7, softmax classifier and box
regression trained jointly; the default config's data, backbone and schedule.

  python experiments/detection/main.py --workdir W --config experiments/detection/configs/fast_rcnn.py

Expected: not measured with RoIPool alone; with RoIAlign at 1,000 steps see compare.py (box
AP50 79.7). ``:runlocal`` is a smoke test.
"""
import ml_collections

from experiments.detection.configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = default.get_config(arg)
    c.models = ("fast_rcnn",)
    c.model.roi_stage.pool_mode = "pool"
    return c
