r"""Colourise grey shapes images with and without the global features of Iizuka et al. (2016).

  python experiments/colourisation/main.py --workdir W [--config experiments/colourisation/configs/default.py[:runlocal]]

Writes ``results.json``, ``results.md`` (the table), ``colourisation_examples.png`` and
``curves.png`` to the workdir.
"""
import os

from absl import app, flags
from ml_collections import config_flags

from experiments.colourisation import train

_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder (table, figures).", required=True)
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
