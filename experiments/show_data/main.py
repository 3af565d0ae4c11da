r"""Draw a grid of the built-in shapes data (boxes, masks, keypoints) to ``shapes_grid.png``.

  python experiments/show_data/main.py --workdir W [--config experiments/show_data/configs/default.py] [--config.data.task=keypoints]
"""
from experiments import cli
from experiments.show_data import run


def report(config, workdir):
    path = run.run(config, workdir)
    print(f"wrote {path} ({config.data.num_examples} {config.data.task} images of "
          f"{config.data.image_size}x{config.data.image_size}, split {config.data.split})")


if __name__ == "__main__":
    cli.main(__file__, report, workdir_help="Output folder (shapes_grid.png).", quiet=False)
