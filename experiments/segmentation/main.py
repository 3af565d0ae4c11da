r"""Semantic segmentation: FCN-32s/16s/8s, DeepLab v3 and ESPNet (with and without hierarchical
feature fusion) trained at an equal budget and compared.

  python experiments/segmentation/main.py --workdir W [--config experiments/segmentation/configs/<c>.py[:runlocal]]

Writes ``results.json``, ``results.md`` (the comparison table), ``comparison.png``,
``predictions.png`` and ``gridding.png`` to the workdir.
"""
import os

from absl import app, flags, logging
from ml_collections import config_flags

from experiments.segmentation import train

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
