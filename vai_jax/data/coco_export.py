"""Export the shapes data set (or any source of detection records) to COCO format.

The result loads with ``pycocotools.coco.COCO`` and evaluates with ``COCOeval`` (bbox, segm and
keypoints), so the built-in data can be scored with the standard COCO tools.

Conventions of the export:

* image ids are ``index + 1`` (COCO tools treat id 0 as missing), annotation ids run from 1;
  category ids are ``class_id + 1``.
* ``bbox`` is COCO's ``[x, y, width, height]`` from the record's ``[x1, y1, x2, y2]``; both
  are continuous (pixel (row i, col j) covers ``[j, j+1) x [i, i+1)``), so no offset applies.
* ``keypoints`` follow COCO's convention of pixel *indices* (the centre of pixel j is x = j),
  so ``KEYPOINT_OFFSET = 0.5`` is subtracted from labelled keypoints; :class:`vai_jax.data.coco.
  CocoSource` adds it back by default, so an export reads back exactly.
* ``segmentation`` is the RLE of the visible instance mask (``pycocotools.mask.encode``,
  ``counts`` decoded to str for JSON); ``area`` is its pixel count; ``iscrowd`` is 0.
* every category lists ``K = NUM_KEYPOINTS`` keypoint names (classes with fewer real keypoints
  are padded with ``"unused_<k>"``, whose visibility is always 0) and its skeleton, 1-based.
"""
from __future__ import annotations

import json
import os
from typing import Mapping, Sequence

import numpy as np
from pycocotools import mask as mask_utils
from tqdm import tqdm

from vai_jax.data.shapes_geometry import CLASS_NAMES, KEYPOINT_NAMES, NUM_KEYPOINTS, SKELETON

# COCO keypoints are pixel indices: our frame's (j + 0.5) is COCO's j.
KEYPOINT_OFFSET = 0.5

_REQUIRED = ("image", "boxes", "classes", "valid", "masks", "keypoints")


def _check_record(record: Mapping[str, np.ndarray]) -> None:
    missing = [k for k in _REQUIRED if k not in record]
    if missing:
        raise ValueError(f"record must have keys {_REQUIRED}; missing {missing} (classification records "
                         "have no objects to export: use task='detection', 'keypoints' or 'multi_keypoints')")


def coco_categories(class_names: Sequence[str] = CLASS_NAMES,
                    keypoint_names: Sequence[Sequence[str]] = KEYPOINT_NAMES,
                    skeleton: Sequence[Sequence[tuple[int, int]]] = SKELETON,
                    num_keypoints: int = NUM_KEYPOINTS) -> list[dict]:
    """COCO ``categories``: id = class + 1, keypoint names padded to ``num_keypoints``, 1-based skeleton.

    Raises:
      ValueError: ``keypoint_names`` or ``skeleton`` without one entry per class, or a class with
      more than ``num_keypoints`` keypoint names.
    """
    for name, per_class in (("keypoint_names", keypoint_names), ("skeleton", skeleton)):
        if len(per_class) != len(class_names):
            raise ValueError(f"{name} must have one entry per class ({len(class_names)}); got "
                             f"{len(per_class)}")
    for c, names in enumerate(keypoint_names):
        if len(names) > num_keypoints:
            raise ValueError(f"keypoint_names[{c}] has {len(names)} names, more than "
                             f"num_keypoints={num_keypoints}")
    cats = []
    for c, name in enumerate(class_names):
        names = list(keypoint_names[c]) + [f"unused_{k}" for k in range(len(keypoint_names[c]), num_keypoints)]
        cats.append({"id": c + 1, "name": name, "supercategory": "shape", "keypoints": names,
                     "skeleton": [[i + 1, j + 1] for i, j in skeleton[c]]})
    return cats


def record_annotations(record: Mapping[str, np.ndarray], image_id: int, first_ann_id: int) -> list[dict]:
    """COCO annotations (dicts) for the valid objects of one record; ids from ``first_ann_id``.

    Args:
      record: dict with "boxes" [M, 4] float (x1, y1, x2, y2), "classes" [M] int, "valid" [M] bool,
        "masks" [M, H, W] bool, "keypoints" [M, K, 3] float.
      image_id: COCO image id of the record.
      first_ann_id: id of the first annotation written.
    """
    _check_record(record)
    anns = []
    valid = np.asarray(record["valid"], bool)
    for m in np.nonzero(valid)[0]:
        x1, y1, x2, y2 = (float(v) for v in record["boxes"][m])
        mask = np.asarray(record["masks"][m], np.uint8)
        rle = mask_utils.encode(np.asfortranarray(mask))
        rle["counts"] = rle["counts"].decode("ascii")
        kp = np.array(record["keypoints"][m], np.float64)
        labelled = kp[:, 2] > 0
        kp[labelled, :2] -= KEYPOINT_OFFSET
        anns.append({
            "id": first_ann_id + len(anns),
            "image_id": int(image_id),
            "category_id": int(record["classes"][m]) + 1,
            "bbox": [x1, y1, x2 - x1, y2 - y1],
            "area": float(mask.sum()),
            "segmentation": rle,
            "iscrowd": 0,
            "keypoints": [float(v) if i % 3 != 2 else int(v) for i, v in enumerate(kp.reshape(-1))],
            "num_keypoints": int((kp[:, 2] > 0).sum()),
        })
    return anns


def to_coco(dataset, *, indices: Sequence[int] | None = None, image_dir: str | None = None,
            batch_size: int = 64, class_names: Sequence[str] = CLASS_NAMES,
            keypoint_names: Sequence[Sequence[str]] = KEYPOINT_NAMES,
            skeleton: Sequence[Sequence[tuple[int, int]]] = SKELETON, progress: bool = True) -> dict:
    """COCO-format dict of ``dataset`` (a ShapesDataset with objects, or any record source).

    Args:
      dataset: random-access source (``len``, ``[i]`` -> record with the keys of
        :func:`record_annotations` and "image" uint8 [H, W, 3]); ``get_batch`` is used when present.
      indices: which examples (default: all).
      image_dir: if given, each image is also written there as ``<image_id>.png``.
      batch_size: examples generated per ``get_batch`` call.
      class_names, keypoint_names, skeleton: category metadata (default: the shapes tables).
      progress: show a tqdm bar.

    Returns:
      dict with "info", "images", "annotations", "categories" (JSON-serialisable).
    """
    if indices is None:
        indices = range(len(dataset))
    indices = [int(i) for i in indices]
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    if image_dir is not None:
        os.makedirs(image_dir, exist_ok=True)
        from PIL import Image
    num_kp = NUM_KEYPOINTS
    if indices:
        first = dataset[indices[0]]
        _check_record(first)
        num_kp = np.asarray(first["keypoints"]).shape[-2]
    images, anns = [], []
    chunks = [indices[s:s + batch_size] for s in range(0, len(indices), batch_size)]
    for chunk in tqdm(chunks, desc="coco export", disable=not progress or len(chunks) < 2):
        if hasattr(dataset, "get_batch"):
            batch = dataset.get_batch(chunk)
            records = [{k: v[i] for k, v in batch.items()} for i in range(len(chunk))]
        else:
            records = [dataset[i] for i in chunk]
        for index, rec in zip(chunk, records):
            image_id = index + 1
            h, w = np.asarray(rec["image"]).shape[:2]
            file_name = f"{image_id:08d}.png"
            images.append({"id": image_id, "file_name": file_name, "height": int(h), "width": int(w)})
            if image_dir is not None:
                Image.fromarray(np.asarray(rec["image"], np.uint8)).save(os.path.join(image_dir, file_name))
            anns.extend(record_annotations(rec, image_id, len(anns) + 1))
    return {
        "info": {"description": f"vai_jax export of {dataset!r}"},
        "images": images,
        "annotations": anns,
        "categories": coco_categories(class_names, keypoint_names, skeleton, num_kp),
    }


def export_coco(dataset, path: str, **kwargs) -> str:
    """Write :func:`to_coco` of ``dataset`` as JSON to ``path`` (folders created); returns ``path``."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ValueError(f"path must be a non-empty file path; got {path!r}")
    coco = to_coco(dataset, **kwargs)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(coco, f)
    return path
