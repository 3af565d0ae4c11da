r"""Semantic segmentation from full masks, image-level labels, points and an objectness
prior: mIoU against the annotation cost (Bearman et al. 2016).

  python experiments/point_supervision/main.py --workdir W [--config experiments/point_supervision/configs/default.py[:runlocal]]

Writes ``results.json``, ``results.md``, ``predictions.png``, ``annotations.png`` and
``cost.png`` to the workdir.
"""
import os

from absl import app, flags, logging
from ml_collections import config_flags

from experiments.point_supervision import train

_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder (tables, figures).",
                               required=True)
_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py"),
    "Path to an ml_collections config file (optionally ':variant').", lock_config=True)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    out = train.run(_CONFIG.value, _WORKDIR.value)
    print(train.results_table(out["rows"]))
    print(train.summary_line(out, _WORKDIR.value))


if __name__ == "__main__":
    app.run(main)
