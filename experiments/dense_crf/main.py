r"""Dense CRF on segmentation networks: post-processing (parameters chosen on a validation
split) vs CRF-as-RNN (trained end to end), with mIoU, pixel, trimap and boundary accuracy.

  python experiments/dense_crf/main.py --workdir W [--config experiments/dense_crf/configs/default.py[:runlocal]]

Writes ``results.json``, ``results.md``, ``crf_examples.png`` and ``trimap.png`` to the workdir.
"""
from experiments import cli
from experiments.dense_crf import train


def report(config, workdir):
    out = train.run(config, workdir)
    print(train.results_table(out["rows"], out["trimap_widths"]))
    print(train.summary_line(out, workdir))


if __name__ == "__main__":
    cli.main(__file__, report)
