r"""Compare backbones: parameter and multiply-accumulate counts, measured images/s of inference
and of a training step, and the top-1 accuracy of trained runs when given.

  python experiments/compare_networks/main.py --workdir W [--config experiments/compare_networks/configs/<c>.py]

Writes ``comparison.md``, ``comparison.json`` and ``comparison.png`` to the workdir and prints
the table.
"""
import os

from absl import app, flags, logging
from ml_collections import config_flags

from experiments.compare_networks import run

_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder (comparison.md/json/png).",
                               required=True)
_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py"),
    "Path to an ml_collections config file.", lock_config=True)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    print(run.run(_CONFIG.value, _WORKDIR.value)["markdown"])


if __name__ == "__main__":
    app.run(main)
