r"""Look inside a trained classifier: filters, activation maximisation, top patches, linear
probes (trained vs random), pruning, quantisation and per-position class evidence.

  python experiments/inspection/main.py --workdir W [--config experiments/inspection/configs/<c>.py[:runlocal]]

Writes ``report.md`` (every table), ``results.json`` and the PNG figures to the workdir.
"""
import os

from absl import app, flags, logging
from ml_collections import config_flags

from experiments.inspection import run

_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder (report.md, results.json, PNGs).",
                               required=True)
_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py"),
    "Path to an ml_collections config file (optionally ':variant').", lock_config=True)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    out = run.run(_CONFIG.value, _WORKDIR.value)
    print(out["report"])
    print(f"done in {out['seconds']:.0f} s; results in {_WORKDIR.value}")


if __name__ == "__main__":
    app.run(main)
