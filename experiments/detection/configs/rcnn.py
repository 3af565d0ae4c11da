r"""R-CNN (Girshick et al. 2014, arXiv:1311.2524): dense sliding-window proposals, every window
warped to 32x32 and run through the CNN (one forward pass per window), one-vs-rest SVMs (hinge)
and class-specific box regression, trained in two stages (CNN fine-tuning, then SVMs and
regressors on frozen features); the default config's data and backbone, 1,000 steps (500 +
500).

  python experiments/detection/main.py --workdir W --config experiments/detection/configs/rcnn.py

Expected: box AP 29.3, AP50 47.3, AP75 34.8 on the first 50 validation images
(``rcnn_num_val``), 593 ms per image (3,068 CNN passes), training 31.8 images/s; 10 min 4 s for
the command on the 2-core CPU (no GPU) at load average ~8 (2026-11-21). The region descriptor
is the crop's stage2 map pooled to 4x4 (``model.rcnn.descriptor_grid``); a global average
(``descriptor_grid=1``) gives box AP50 6.0. ``:runlocal`` is a smoke test.
"""
import ml_collections

from experiments.detection.configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = default.get_config(arg)
    c.models = ("rcnn",)
    if arg != "runlocal":
        c.num_steps = 1000
    return c
