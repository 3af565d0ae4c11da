r"""What deep embeddings encode: class, rotation and scale from pixels and from each stage.

  python experiments/embeddings/main.py --workdir W [--config experiments/embeddings/configs/default.py[:runlocal]]

Writes ``results.json``, ``results.md`` (the table), ``embeddings_pca.png`` and
``embeddings_depth.png`` to the workdir.
"""
import os

from absl import app, flags, logging
from ml_collections import config_flags

from experiments.embeddings import train

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
    print(out["report"])
    print(f"results in {_WORKDIR.value}")


if __name__ == "__main__":
    app.run(main)
