r"""Train an image classifier: data-parallel over all devices, checkpointed, resumable.

  python experiments/classifier/main.py --workdir W [--config experiments/classifier/configs/<c>.py[:variant]]

Running it again with the same ``--workdir`` resumes from the latest checkpoint (Ctrl-C or
SIGTERM saves first). Writes ``metrics.jsonl``, ``tensorboard/``, ``checkpoints/``,
``curves.png`` and ``results.json`` to the workdir.
"""
import os

from absl import app, flags, logging
from ml_collections import config_flags

from experiments.classifier import train

_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder (checkpoints, metrics, curves).",
                               required=True)
_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py"),
    "Path to an ml_collections config file (optionally ':variant').", lock_config=True)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    summary = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    print(train.summary_line(summary, _WORKDIR.value))


if __name__ == "__main__":
    app.run(main)
