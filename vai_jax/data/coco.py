"""COCO-format annotation files (boxes, polygon/RLE masks, keypoints) as a random-access source.

``CocoSource(annotation_file, image_dir)[i]`` is the record of the ``i``-th image (images sorted
by id) in the project convention (see :mod:`vai_jax.data.pipeline`), read with pycocotools:

- ``image`` uint8 ``[H, W, 3]`` (PIL, converted to RGB);
- ``boxes`` float32 ``[M, 4]``: COCO ``[x, y, w, h]`` -> ``[x, y, x + w, y + h]`` (COCO boxes are
  already in the continuous pixel frame of :mod:`vai_jax.ops.coords`);
- ``classes`` int32 ``[M]``: category ids mapped to contiguous ``0..C-1`` in increasing id order
  (``category_ids[c]`` is the COCO id of class ``c``; ``class_of`` the reverse map);
- ``valid`` bool ``[M]`` (``w > 0`` and ``h > 0``), ``crowd`` bool ``[M]``, ``areas`` float32 ``[M]``;
- ``masks`` bool ``[M, H, W]`` from ``annToMask`` (polygons and RLE, crowd included);
- ``keypoints`` float32 ``[M, K, 3]`` ``[x, y, v]`` with ``K`` the longest category keypoint list.
  COCO stores keypoints as integer pixel indices, so ``keypoint_offset = 0.5`` is added to put
  them on pixel centres in the continuous frame (as Detectron2 does); subtract it again when
  writing results for COCO evaluation. :mod:`vai_jax.data.coco_export` writes keypoints the
  same way (minus 0.5), so its files read back exactly with the default.
  Points with ``v = 0`` are ``(0, 0, 0)``;
- ``image_id`` int32 ``[]``: the COCO image id.
"""
from __future__ import annotations

import contextlib
import io
import os
from typing import Sequence

import numpy as np
from PIL import Image

Record = dict


def _flip_permutation(names: Sequence[str], k: int) -> np.ndarray:
    """Permutation ``[K]`` swapping ``left_*`` and ``right_*`` keypoint names (identity elsewhere)."""
    perm = np.arange(k)
    index = {n: i for i, n in enumerate(names)}
    for i, n in enumerate(names):
        for a, b in (("left", "right"), ("right", "left")):
            if a in n:
                j = index.get(n.replace(a, b))
                if j is not None:
                    perm[i] = j
    return perm


class CocoSource:
    """Random-access source over a COCO-format ``(annotation json, image folder)`` pair.

    Args:
      annotation_file: path of the COCO json (``images``, ``annotations``, ``categories``).
      image_dir: folder holding the ``file_name`` of every image.
      with_masks: decode instance masks into ``masks`` bool ``[M, H, W]``.
      with_keypoints: add ``keypoints``; ``None`` = when some category lists keypoints.
      skip_crowd: leave out ``iscrowd = 1`` annotations.
      keypoint_offset: added to the ``x, y`` of labelled keypoints (0.5: pixel index -> centre).

    Attributes:
      category_ids: list of COCO category ids; index = contiguous class.
      class_names: category names in the same order.
      class_of: dict COCO category id -> contiguous class.
      keypoint_names: names of the ``K`` keypoints (of the first category that has the most).
      flip_permutation: int ``[C, K]``, per class, swapping ``left_*``/``right_*`` names; pass it
        to the flip transforms of :mod:`vai_jax.data.transforms`.
      image_ids: COCO image ids in source order.

    Raises:
      FileNotFoundError: missing annotation file or image folder (named); ValueError: a json that
      is not COCO-format.
    """

    def __init__(
        self,
        annotation_file: str | os.PathLike,
        image_dir: str | os.PathLike,
        *,
        with_masks: bool = True,
        with_keypoints: bool | None = None,
        skip_crowd: bool = False,
        keypoint_offset: float = 0.5,
    ):
        from pycocotools.coco import COCO

        self.annotation_file = os.fspath(annotation_file)
        self.image_dir = os.fspath(image_dir)
        if not os.path.isfile(self.annotation_file):
            raise FileNotFoundError(f"annotation_file not found: {self.annotation_file}")
        if not os.path.isdir(self.image_dir):
            raise FileNotFoundError(f"image_dir is not a folder: {self.image_dir}")
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
                self.coco = COCO(self.annotation_file)
        except (ValueError, KeyError, TypeError, AssertionError) as e:
            raise ValueError(f"annotation_file {self.annotation_file} is not a COCO-format json: {e!r}") from e
        if "images" not in self.coco.dataset or "categories" not in self.coco.dataset:
            raise ValueError(
                f"annotation_file {self.annotation_file} must have 'images' and 'categories' lists"
            )
        self.with_masks = bool(with_masks)
        self.skip_crowd = bool(skip_crowd)
        self.keypoint_offset = float(keypoint_offset)

        self.category_ids = sorted(self.coco.getCatIds())
        self.class_of = {cid: c for c, cid in enumerate(self.category_ids)}
        cats = [self.coco.cats[cid] for cid in self.category_ids]
        self.class_names = [c.get("name", str(c["id"])) for c in cats]
        kp_lists = [list(c.get("keypoints", [])) for c in cats]
        self.num_keypoints = max((len(k) for k in kp_lists), default=0)
        self.keypoint_names = max(kp_lists, key=len) if kp_lists else []
        self.with_keypoints = self.num_keypoints > 0 if with_keypoints is None else bool(with_keypoints)
        if self.with_keypoints and self.num_keypoints == 0:
            raise ValueError(f"with_keypoints=True but no category in {self.annotation_file} lists keypoints")
        k = self.num_keypoints
        self.flip_permutation = np.stack(
            [_flip_permutation(names, k) for names in kp_lists]
        ) if cats else np.zeros((0, k), np.int64)
        self.image_ids = sorted(self.coco.getImgIds())

    def __len__(self) -> int:
        return len(self.image_ids)

    def __repr__(self) -> str:
        return f"CocoSource(annotation_file={self.annotation_file!r}, len={len(self)})"

    def load_image(self, image_id: int) -> np.ndarray:
        """uint8 ``[H, W, 3]`` of image ``image_id``; FileNotFoundError names a missing file."""
        info = self.coco.imgs[image_id]
        path = os.path.join(self.image_dir, info["file_name"])
        if not os.path.isfile(path):
            raise FileNotFoundError(f"image file of image id {image_id} not found: {path}")
        with Image.open(path) as im:
            image = np.asarray(im.convert("RGB"), dtype=np.uint8)
        want = (info.get("height", image.shape[0]), info.get("width", image.shape[1]))
        if image.shape[:2] != tuple(want):
            raise ValueError(
                f"image {path} is {image.shape[0]}x{image.shape[1]} (HxW) but the annotation file "
                f"says {want[0]}x{want[1]}"
            )
        return image

    def __getitem__(self, index: int) -> Record:
        index = int(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for CocoSource of length {len(self)}")
        image_id = self.image_ids[index]
        image = self.load_image(image_id)
        h, w = image.shape[:2]
        anns = self.coco.loadAnns(self.coco.getAnnIds(imgIds=[image_id]))
        if self.skip_crowd:
            anns = [a for a in anns if not a.get("iscrowd", 0)]
        m = len(anns)
        xywh = np.array([a["bbox"] for a in anns], np.float64).reshape(m, 4)
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1).astype(np.float32)
        rec: Record = {
            "image": image,
            "boxes": boxes,
            "classes": np.array([self.class_of[a["category_id"]] for a in anns], np.int32).reshape(m),
            "valid": (xywh[:, 2] > 0) & (xywh[:, 3] > 0),
            "crowd": np.array([bool(a.get("iscrowd", 0)) for a in anns], bool).reshape(m),
            "areas": np.array([a.get("area", 0.0) for a in anns], np.float32).reshape(m),
            "image_id": np.int32(image_id),
        }
        if self.with_masks:
            masks = np.zeros((m, h, w), bool)
            for i, a in enumerate(anns):
                if a.get("segmentation"):
                    masks[i] = self.coco.annToMask(a).astype(bool)
            rec["masks"] = masks
        if self.with_keypoints:
            kp = np.zeros((m, self.num_keypoints, 3), np.float32)
            for i, a in enumerate(anns):
                flat = np.asarray(a.get("keypoints", []), np.float32).reshape(-1, 3)
                kp[i, : len(flat)] = flat
            labelled = kp[..., 2] > 0
            kp[..., :2] = np.where(labelled[..., None], kp[..., :2] + self.keypoint_offset, 0.0)
            kp[..., 2] = np.where(labelled, kp[..., 2], 0.0)
            rec["keypoints"] = kp
        return rec
