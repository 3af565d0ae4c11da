r"""Semantic segmentation: FCN-32s/16s/8s, DeepLab v3 and ESPNet (with and without hierarchical
feature fusion) trained at an equal budget and compared.

  python experiments/segmentation/main.py --workdir W [--config experiments/segmentation/configs/<c>.py[:runlocal]]

Writes ``results.json``, ``results.md`` (the comparison table), ``comparison.png``,
``predictions.png`` and ``gridding.png`` to the workdir.
"""
from experiments import cli
from experiments.segmentation import train


def report(config, workdir):
    out = train.run(config, workdir)
    print(train.results_table(out["rows"]))
    print(train.summary_line(out, workdir))


if __name__ == "__main__":
    cli.main(__file__, report)
