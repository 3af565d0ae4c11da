r"""2D keypoints: pose heads at an equal budget, heatmap resolution, σ calibration, PAF grouping.

  python experiments/pose/main.py --workdir W [--config experiments/pose/configs/<c>.py[:variant]]

Writes ``results.json`` and ``results.md`` (the tables), ``pose_predictions.png``,
``pose_heatmaps.png``, ``pose_subpixel_stride.png``, ``pose_two_maxima.png``,
``pose_density_calibration.png`` and ``pose_multi_paf.png`` to the workdir.
"""
import os

from experiments import cli
from experiments.pose import train


def report(config, workdir):
    train.run(config, workdir)
    cli.print_file(os.path.join(workdir, "results.md"))


if __name__ == "__main__":
    cli.main(__file__, report, quiet=False)
