r"""Train an image classifier: data-parallel over all devices, checkpointed, resumable.

  python experiments/classifier/main.py --workdir W [--config experiments/classifier/configs/<c>.py[:variant]]

Running it again with the same ``--workdir`` resumes from the latest checkpoint (Ctrl-C or
SIGTERM saves first). Writes ``metrics.jsonl``, ``tensorboard/``, ``checkpoints/``,
``curves.png`` and ``results.json`` to the workdir.
"""
from experiments import cli
from experiments.classifier import train


def report(config, workdir):
    summary = train.train_and_evaluate(config, workdir)
    print(train.summary_line(summary, workdir))


if __name__ == "__main__":
    cli.main(__file__, report, workdir_help="Output folder (checkpoints, metrics, curves).")
