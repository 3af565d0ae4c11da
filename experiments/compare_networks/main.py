r"""Compare backbones: parameter and multiply-accumulate counts, measured images/s of inference
and of a training step, and the top-1 accuracy of trained runs when given.

  python experiments/compare_networks/main.py --workdir W [--config experiments/compare_networks/configs/<c>.py]

Writes ``comparison.md``, ``comparison.json`` and ``comparison.png`` to the workdir and prints
the table.
"""
from experiments import cli
from experiments.compare_networks import run


def report(config, workdir):
    print(run.run(config, workdir)["markdown"])


if __name__ == "__main__":
    cli.main(__file__, report, workdir_help="Output folder (comparison.md/json/png).")
