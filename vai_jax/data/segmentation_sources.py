"""PASCAL VOC 2012 semantic segmentation as a tfds data source.

tfds's own ``voc/2012`` carries only boxes and image-level labels, not the
``SegmentationClass`` masks. :class:`VocSegmentation` is a tfds builder (registered as
``voc_segmentation/2012`` when this module is imported) over the same ``VOCtrainval`` archive
that reads the ``ImageSets/Segmentation`` splits (train 1,464 / validation 1,449 images) and
their palette PNG masks (palette index = class id: 0 background, 1…20 the VOC classes, 255
"void"/object borders). Prepare once with ``download=True`` (or ``tfds build``); reading needs
no TensorFlow.

:func:`load_segmentation_source` returns records ``{"image": uint8 [H, W, 3], "semantic":
int32 [H, W]}`` (255 kept: the losses and metrics take it as ``ignore_label``).
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np
import tensorflow_datasets as tfds

from vai_jax.data.sources import NormalisedSource, load_source, to_rgb_uint8

VOC_CLASS_NAMES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
                   "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
                   "pottedplant", "sheep", "sofa", "train", "tvmonitor")
NUM_VOC_CLASSES = len(VOC_CLASS_NAMES)  # 21, background included
VOC_IGNORE_LABEL = 255
_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar"


class VocSegmentation(tfds.core.GeneratorBasedBuilder):
    """PASCAL VOC 2012 segmentation (``SegmentationClass`` masks)."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name="2012", description="VOC 2012 segmentation")]

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3)),
                "image/filename": tfds.features.Text(),
                "segmentation_mask": tfds.features.Image(shape=(None, None, 1)),
            }),
            homepage="http://host.robots.ox.ac.uk/pascal/VOC/voc2012/",
        )

    def _split_generators(self, dl_manager):
        root = os.path.join(dl_manager.download_and_extract(_URL), "VOCdevkit", "VOC2012")
        return {"train": self._generate_examples(root, "train"),
                "validation": self._generate_examples(root, "val")}

    def _generate_examples(self, root, split):
        from PIL import Image

        with open(os.path.join(root, "ImageSets", "Segmentation", f"{split}.txt")) as f:
            ids = [line.strip() for line in f if line.strip()]
        for image_id in ids:
            mask = np.asarray(Image.open(os.path.join(root, "SegmentationClass",
                                                      f"{image_id}.png")))  # palette indices
            yield image_id, {
                "image": os.path.join(root, "JPEGImages", f"{image_id}.jpg"),
                "image/filename": f"{image_id}.jpg",
                "segmentation_mask": mask.astype(np.uint8)[:, :, None],
            }


def normalise_segmentation(record: Mapping[str, Any]) -> dict:
    """tfds segmentation record (``image``, ``segmentation_mask`` ``[H, W]`` or ``[H, W, 1]``)
    -> ``{"image": uint8 [H, W, 3], "semantic": int32 [H, W]}``.

    Raises ValueError when the mask's size differs from the image's.
    """
    image = to_rgb_uint8(record["image"])
    mask = np.asarray(record["segmentation_mask"])
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2 or mask.shape != image.shape[:2]:
        raise ValueError(f"segmentation_mask must have the image's size {image.shape[:2]} "
                         f"([H, W] or [H, W, 1]); got shape {mask.shape}")
    return {"image": image, "semantic": mask.astype(np.int32)}


def load_segmentation_source(name: str = "voc_segmentation/2012", split: str = "train", *,
                             data_dir: str | None = None,
                             download: bool = False) -> NormalisedSource:
    """A tfds segmentation data set (default VOC 2012) as a source of ``{"image",
    "semantic"}`` records; see :func:`vai_jax.data.sources.load_source` for the arguments and
    errors."""
    return load_source(name, split, data_dir=data_dir, download=download,
                       normaliser=normalise_segmentation)
