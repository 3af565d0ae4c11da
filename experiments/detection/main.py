r"""Train and evaluate two-stage detectors (R-CNN, Fast R-CNN, Faster R-CNN, Mask R-CNN) on the
built-in shapes data (or COCO-format files / tfds VOC) and compare them with COCO AP.

  python experiments/detection/main.py --workdir W [--config experiments/detection/configs/<c>.py[:runlocal]]

Writes ``results.json``, ``results.md`` (the comparison table), ``comparison.png`` and
``detections_<model>.png`` to the workdir.
"""
from experiments import cli
from experiments.detection import train


def report(config, workdir):
    print(train.results_table(train.run(config, workdir)))


if __name__ == "__main__":
    cli.main(__file__, report, quiet=False)
