r"""What deep embeddings encode: class, rotation and scale from pixels and from each stage.

  python experiments/embeddings/main.py --workdir W [--config experiments/embeddings/configs/default.py[:runlocal]]

Writes ``results.json``, ``results.md`` (the table), ``embeddings_pca.png`` and
``embeddings_depth.png`` to the workdir.
"""
from experiments import cli
from experiments.embeddings import train


def report(config, workdir):
    out = train.run(config, workdir)
    print(out["report"])
    print(f"results in {workdir}")


if __name__ == "__main__":
    cli.main(__file__, report)
