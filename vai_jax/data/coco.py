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

Files are validated whole on load (:func:`validate_coco`): every annotation with a missing or
malformed ``bbox``, an ``image_id`` absent from ``images`` or a ``category_id`` absent from
``categories`` is reported, with its id, in one ValueError.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import numbers
import os
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image

Record = dict


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _ids(entries, what: str, problems: list) -> set:
    """The integer ``id`` of each entry of ``images`` / ``categories``; problems appended."""
    ids = set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), int) \
                or isinstance(entry.get("id"), bool):
            problems.append(f"{what}[{i}] must be an object with an integer 'id'; got "
                            f"{entry!r:.80}")
            continue
        if entry["id"] in ids:
            problems.append(f"{what}[{i}]: duplicate id {entry['id']}")
        ids.add(entry["id"])
    return ids


def _bbox_problem(bbox) -> str | None:
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        return f"bbox must be a list of 4 numbers [x, y, w, h]; got {bbox!r:.80}"
    if not all(_is_number(v) for v in bbox):
        return f"bbox must hold 4 finite numbers [x, y, w, h]; got {list(bbox)!r:.80}"
    if bbox[2] < 0 or bbox[3] < 0:
        return f"bbox width and height must be >= 0; got {list(bbox)!r}"
    return None


def validate_coco(dataset: Any, *, source: str = "COCO data", results: bool = False) -> None:
    """Check a whole COCO-format dict and report every problem at once.

    Ground truth (``results=False``): ``images`` and ``categories`` lists of objects with unique
    integer ids, an ``annotations`` list (may be empty or absent); every annotation an object
    with an ``id``, an ``image_id`` present in ``images``, a ``category_id`` present in
    ``categories`` and a ``bbox`` ``[x, y, w, h]`` of four finite numbers with ``w, h >= 0``.
    Detection results (``results=True``): ``dataset`` is the list of result dicts, each with
    ``image_id``, ``category_id``, ``bbox`` as above and a finite ``score`` (image and category
    ids are checked by :func:`vai_jax.detection.coco_eval.coco_ap` against the ground truth).

    Args:
      dataset: the parsed JSON.
      source: what to call it in the message (the file name).
      results: validate a results list instead of ground truth.

    Raises:
      ValueError: listing every bad annotation (by its ``id``, or by its index when it has
      none) with what is wrong, after a count.
    """
    problems: list[str] = []
    if results:
        if not isinstance(dataset, list):
            raise ValueError(f"{source} must be a list of detection results; got "
                             f"{type(dataset).__name__}")
        for i, r in enumerate(dataset):
            if not isinstance(r, Mapping):
                problems.append(f"result {i} must be an object; got {r!r:.80}")
                continue
            for key in ("image_id", "category_id"):
                if not isinstance(r.get(key), int) or isinstance(r.get(key), bool):
                    problems.append(f"result {i}: {key} must be an integer; got {r.get(key)!r}")
            if "bbox" in r:
                problem = _bbox_problem(r["bbox"])
                if problem:
                    problems.append(f"result {i}: {problem}")
            elif "segmentation" not in r:
                problems.append(f"result {i}: missing 'bbox' (and no 'segmentation')")
            if not _is_number(r.get("score")):
                problems.append(f"result {i}: score must be a finite number; got "
                                f"{r.get('score')!r}")
        _raise(problems, source)
        return
    if not isinstance(dataset, Mapping):
        raise ValueError(f"{source} must be a COCO-format object with 'images', 'annotations' "
                         f"and 'categories'; got {type(dataset).__name__}")
    for key in ("images", "categories"):
        if not isinstance(dataset.get(key), list):
            raise ValueError(f"{source} must have {key!r} as a list; got "
                             f"{type(dataset.get(key)).__name__}")
    image_ids = _ids(dataset["images"], "images", problems)
    category_ids = _ids(dataset["categories"], "categories", problems)
    annotations = dataset.get("annotations", [])
    if not isinstance(annotations, list):
        raise ValueError(f"{source} must have 'annotations' as a list; got "
                         f"{type(annotations).__name__}")
    seen = set()
    for i, a in enumerate(annotations):
        if not isinstance(a, Mapping):
            problems.append(f"annotation at index {i} must be an object; got {a!r:.80}")
            continue
        name = f"annotation id {a['id']}" if "id" in a else f"annotation at index {i} (no id)"
        if "id" in a:
            if a["id"] in seen:
                problems.append(f"{name}: duplicate id")
            seen.add(a["id"])
        if "bbox" not in a:
            problems.append(f"{name}: missing 'bbox'")
        else:
            problem = _bbox_problem(a["bbox"])
            if problem:
                problems.append(f"{name}: {problem}")
        if a.get("image_id") not in image_ids:
            problems.append(f"{name}: image_id {a.get('image_id')!r} is not in images")
        if a.get("category_id") not in category_ids:
            problems.append(f"{name}: category_id {a.get('category_id')!r} is not in categories "
                            f"(ids {sorted(category_ids)})")
    _raise(problems, source)


def _raise(problems: list, source: str) -> None:
    if problems:
        raise ValueError(f"{source} is not valid COCO data: {len(problems)} problem(s):\n  "
                         + "\n  ".join(problems))


def load_coco_json(path: str | os.PathLike) -> dict:
    """Read and :func:`validate_coco` a COCO-format ground-truth file (FileNotFoundError for a
    missing file, ValueError naming the file for invalid JSON or invalid COCO data)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"annotation_file not found: {path}")
    try:
        with open(path) as f:
            dataset = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"annotation_file {path} is not valid JSON: {e}") from e
    validate_coco(dataset, source=f"annotation_file {path}")
    return dataset


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
      is not COCO-format, listing every bad annotation by id (:func:`validate_coco`).
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
        if not os.path.isdir(self.image_dir):
            raise FileNotFoundError(f"image_dir is not a folder: {self.image_dir}")
        dataset = load_coco_json(self.annotation_file)
        self.coco = COCO()
        self.coco.dataset = dataset
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            self.coco.createIndex()
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
