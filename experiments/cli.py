"""The command line every experiment shares.

``python experiments/<name>/main.py --workdir W [--config FILE[:variant]] [--config.field=value]``:
``--workdir`` is the output folder, ``--config`` an ml_collections config file (default: the
experiment's ``configs/default.py``; ``:variant`` is passed to its ``get_config``; fields can be
overridden on the command line). An experiment's ``main.py`` only says what to print::

    def report(config, workdir):
        out = train.run(config, workdir)
        print(out["report"])

    if __name__ == "__main__":
        cli.main(__file__, report)
"""
from __future__ import annotations

import os
from typing import Callable

from absl import app, flags, logging
from ml_collections import config_flags


def main(main_file: str, report: Callable[[object, str], object], *,
         workdir_help: str = "Output folder (tables, figures).", quiet: bool = True) -> None:
    """Defines ``--workdir`` and ``--config`` (default ``configs/default.py`` beside
    ``main_file``), parses the command line and calls ``report(config, workdir)``. ``quiet``
    lowers absl logging to warnings (the experiments show progress bars instead)."""
    workdir = flags.DEFINE_string("workdir", None, workdir_help, required=True)
    config = config_flags.DEFINE_config_file(
        "config", os.path.join(os.path.dirname(os.path.abspath(main_file)), "configs",
                               "default.py"),
        "Path to an ml_collections config file (optionally ':variant').", lock_config=True)

    def run(argv):
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")
        if quiet:
            logging.set_verbosity(logging.WARNING)
        report(config.value, workdir.value)

    app.run(run)


def print_file(path: str) -> None:
    """Prints a text file the experiment wrote (its markdown tables)."""
    with open(path) as f:
        print(f.read())
