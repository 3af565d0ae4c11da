r"""Sixteen 128x128 images of the built-in shapes detection data (``vai_jax.data.shapes``), their
boxes, instance masks and keypoints drawn over them.

  python experiments/show_data/main.py --workdir workdir/data

Expected: ``workdir/data/shapes_grid.png`` in a few seconds on the 2-core CPU. Another task,
split or size: ``--config.data.task=keypoints`` (``classification``, ``keypoints``,
``detection``, ``multi_keypoints``), ``--config.data.split=validation``,
``--config.data.image_size=64``; ``--config.semantic=True`` overlays the semantic mask.
"""
import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.data = ml_collections.ConfigDict(dict(  # ShapesDataset's arguments
        task="detection", split="train", num_examples=16, image_size=128, seed=0))
    c.semantic = False  # overlay the semantic mask instead of the instance masks
    if arg:
        raise ValueError(f"unknown config variant {arg!r}; this config has none")
    return c
