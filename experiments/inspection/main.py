r"""Look inside a trained classifier: filters, activation maximisation, top patches, linear
probes (trained vs random), pruning, quantisation and per-position class evidence.

  python experiments/inspection/main.py --workdir W [--config experiments/inspection/configs/<c>.py[:runlocal]]

Writes ``report.md`` (every table), ``results.json`` and the PNG figures to the workdir.
"""
from experiments import cli
from experiments.inspection import run


def report(config, workdir):
    out = run.run(config, workdir)
    print(out["report"])
    print(f"done in {out['seconds']:.0f} s; results in {workdir}")


if __name__ == "__main__":
    cli.main(__file__, report, workdir_help="Output folder (report.md, results.json, PNGs).")
