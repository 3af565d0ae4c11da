r"""Structured prediction over time: per-frame CNN, chain / latent-dynamic / hidden CRFs.

  python experiments/sequences/main.py --workdir W [--config experiments/sequences/configs/default.py[:runlocal]]

Writes ``results.json``, ``results.md`` (the table), ``sequences_decoding.png`` and
``sequences_transitions.png`` to the workdir.
"""
from experiments import cli
from experiments.sequences import train


def report(config, workdir):
    out = train.run(config, workdir)
    print(out["report"])
    print(f"results in {workdir}")


if __name__ == "__main__":
    cli.main(__file__, report)
