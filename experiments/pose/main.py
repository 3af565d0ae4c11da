r"""2D keypoints: pose heads at an equal budget, heatmap resolution, σ calibration, PAF grouping.

  python experiments/pose/main.py --workdir W [--config experiments/pose/configs/<c>.py[:variant]]

Writes ``results.json`` and ``results.md`` (the tables), ``pose_predictions.png``,
``pose_heatmaps.png``, ``pose_subpixel_stride.png``, ``pose_two_maxima.png``,
``pose_density_calibration.png`` and ``pose_multi_paf.png`` to the workdir.
"""
import os

from absl import app, flags
from ml_collections import config_flags

from experiments.pose import train

_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder (tables, figures).",
                               required=True)
_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py"),
    "Path to an ml_collections config file (optionally ':variant').", lock_config=True)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    train.run(_CONFIG.value, _WORKDIR.value)
    with open(os.path.join(_WORKDIR.value, "results.md")) as f:
        print(f.read())


if __name__ == "__main__":
    app.run(main)
