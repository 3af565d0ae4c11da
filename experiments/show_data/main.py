r"""Draw a grid of the built-in shapes data (boxes, masks, keypoints) to ``shapes_grid.png``.

  python experiments/show_data/main.py --workdir W [--config experiments/show_data/configs/default.py] [--config.data.task=keypoints]
"""
import os

from absl import app, flags
from ml_collections import config_flags

from experiments.show_data import run

_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder (shapes_grid.png).", required=True)
_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py"),
    "Path to an ml_collections config file.", lock_config=True)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    cfg = _CONFIG.value
    path = run.run(cfg, _WORKDIR.value)
    print(f"wrote {path} ({cfg.data.num_examples} {cfg.data.task} images of "
          f"{cfg.data.image_size}x{cfg.data.image_size}, split {cfg.data.split})")


if __name__ == "__main__":
    app.run(main)
