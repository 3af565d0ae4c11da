r"""Train and evaluate two-stage detectors (R-CNN, Fast R-CNN, Faster R-CNN, Mask R-CNN) on the
built-in shapes data (or COCO-format files / tfds VOC) and compare them with COCO AP.

  python experiments/detection/main.py --workdir W [--config experiments/detection/configs/<c>.py[:runlocal]]

Writes ``results.json``, ``results.md`` (the comparison table), ``comparison.png`` and
``detections_<model>.png`` to the workdir.
"""
import os

from absl import app, flags
from ml_collections import config_flags

from experiments.detection import train

_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder (tables, figures).", required=True)
_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py"),
    "Path to an ml_collections config file (optionally ':variant').", lock_config=True)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    rows = train.run(_CONFIG.value, _WORKDIR.value)
    print(train.results_table(rows))


if __name__ == "__main__":
    app.run(main)
