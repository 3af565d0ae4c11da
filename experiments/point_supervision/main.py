r"""Semantic segmentation from full masks, image-level labels, points and an objectness
prior: mIoU against the annotation cost (Bearman et al. 2016).

  python experiments/point_supervision/main.py --workdir W [--config experiments/point_supervision/configs/default.py[:runlocal]]

Writes ``results.json``, ``results.md``, ``predictions.png``, ``annotations.png`` and
``cost.png`` to the workdir.
"""
from experiments import cli
from experiments.point_supervision import train


def report(config, workdir):
    out = train.run(config, workdir)
    print(train.results_table(out["rows"]))
    print(train.summary_line(out, workdir))


if __name__ == "__main__":
    cli.main(__file__, report)
