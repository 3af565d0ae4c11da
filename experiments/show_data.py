"""Render a grid of the built-in shapes data (boxes, masks, keypoints drawn) to a PNG.

The README's placeholder main job::

  python experiments/show_data.py --workdir /tmp/show_data --task detection --num 16

writes <workdir>/shapes_grid.png and prints its path.
"""
from __future__ import annotations

import os

from absl import app, flags
from tqdm import tqdm

from vai_jax.data.shapes import TASKS, ShapesDataset
from vai_jax.viz.draw import save_grid

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "/tmp/show_data", "Output folder.")
flags.DEFINE_enum("task", "detection", list(TASKS), "Which variant of the data set to show.")
flags.DEFINE_integer("num", 16, "Number of images in the grid.", lower_bound=1)
flags.DEFINE_integer("image_size", 128, "Image height and width in pixels.", lower_bound=16)
flags.DEFINE_enum("split", "train", ["train", "validation", "test"], "Split to show.")
flags.DEFINE_integer("seed", 0, "Data set seed.", lower_bound=0)
flags.DEFINE_bool("semantic", False, "Overlay the semantic mask instead of instance masks.")


def main(argv):
    del argv
    ds = ShapesDataset(FLAGS.task, split=FLAGS.split, num_examples=FLAGS.num, image_size=FLAGS.image_size,
                       seed=FLAGS.seed)
    records = [ds[i] for i in tqdm(range(FLAGS.num), desc="generating", disable=FLAGS.num < 64)]
    path = os.path.join(FLAGS.workdir, "shapes_grid.png")
    save_grid(records, path, show_masks=not FLAGS.semantic, show_semantic=FLAGS.semantic)
    print(f"wrote {path} ({FLAGS.num} {FLAGS.task} images of {ds.height}x{ds.width}, split {FLAGS.split})")


if __name__ == "__main__":
    app.run(main)
