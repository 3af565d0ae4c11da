r"""Segmenter config on PASCAL VOC 2012 masks (21 classes incl. background, 255 ignored),
read through ``tfds.data_source`` from the ``voc_segmentation/2012`` builder of
:mod:`vai_jax.data.segmentation_sources` (prepare it once with
``load_segmentation_source(..., download=True)``), images and masks resized to
``image_size`` (masks with nearest neighbour).

Command::

  python experiments/train_segmenter.py --config=experiments/configs/segmenter_voc.py \
      --workdir /tmp/seg_voc

Tested end to end under ``tfds.testing.mock_data``
(tests/heads/test_train_segmenter.py, the ``runlocal`` variant). No measured result on real VOC (no data or accelerator on the development machine).
"""
import os
import runpy

import ml_collections

# The shared base next to this file (configs are loaded by path, not as a package).
_BASE = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "segmenter_shapes.py"))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = _BASE["get_config"]("runlocal" if arg == "runlocal" else None)
    c.dataset = "voc"
    c.tfds_name = "voc_segmentation/2012"
    c.train_split = "train"
    c.test_split = "validation"
    if arg == "runlocal":
        return c
    if arg:
        raise ValueError(f"unknown config variant {arg!r}; use 'runlocal' or nothing")
    c.image_size = 256
    c.num_steps = 20_000
    c.batch_size = 16
    c.lr = 1e-3
    c.backbone.widths = (64, 128, 256, 512)
    c.backbone.stage_sizes = (2, 2, 2, 2)
    c.backbone.stem_width = 64
    c.fcn.fc_features = (1024, 1024)
    c.deeplab.features = 256
    c.deeplab.rates = (6, 12, 18)
    c.espnet.alpha, c.espnet.beta = 2, 8
    return c
