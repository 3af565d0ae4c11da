r"""Colourise grey shapes images with and without the global features of Iizuka et al. (2016).

  python experiments/colourisation/main.py --workdir W [--config experiments/colourisation/configs/default.py[:runlocal]]

Writes ``results.json``, ``results.md`` (the table), ``colourisation_examples.png`` and
``curves.png`` to the workdir.
"""
import os

from experiments import cli
from experiments.colourisation import train


def report(config, workdir):
    train.run(config, workdir)
    cli.print_file(os.path.join(workdir, "results.md"))


if __name__ == "__main__":
    cli.main(__file__, report, workdir_help="Output folder (table, figures).", quiet=False)
