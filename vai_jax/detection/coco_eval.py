"""COCO box and mask AP through pycocotools ``COCOeval``.

Ground truth is a COCO-format dict or JSON path (e.g. :func:`vai_jax.data.coco_export.to_coco`
of the shapes data: image id = index + 1, category id = class + 1). Detections are converted
from the detectors' padded arrays by :func:`detections_to_coco` (boxes ``[x1, y1, x2, y2]``
input pixels -> COCO ``[x, y, w, h]``, no offset; masks pasted into the image and RLE-encoded).
"""
from __future__ import annotations

import contextlib
import copy
import io
import os
from typing import Sequence

import numpy as np

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def detections_to_coco(image_ids, boxes, scores, classes, valid, *, masks=None,
                       category_ids: Sequence[int] | None = None) -> list[dict]:
    """Padded detections -> COCO result dicts.

    Args:
      image_ids: ``[B]`` COCO image ids. boxes ``[B, D, 4]`` xyxy pixels; scores ``[B, D]``;
      classes ``[B, D]`` int in ``[0, C)``; valid ``[B, D]`` bool.
      masks: optional ``[B, D, H, W]`` image-sized masks (bool, or probabilities thresholded at
        0.5) -> ``"segmentation"`` RLE.
      category_ids: COCO id of each class (default ``class + 1``, the shapes export).

    Returns:
      list of ``{"image_id", "category_id", "bbox", "score"[, "segmentation"]}``.
    """
    from pycocotools import mask as mask_utils

    boxes, scores, classes, valid = (np.asarray(a) for a in (boxes, scores, classes, valid))
    out = []
    for b, img in enumerate(np.asarray(image_ids).reshape(-1)):
        for d in np.nonzero(valid[b])[0]:
            c = int(classes[b, d])
            x1, y1, x2, y2 = (float(v) for v in boxes[b, d])
            r = {"image_id": int(img), "category_id": int(category_ids[c]) if category_ids is not None else c + 1,
                 "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(scores[b, d])}
            if masks is not None:
                m = np.asarray(masks[b, d])
                m = m if m.dtype == bool else m >= 0.5
                rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
                rle["counts"] = rle["counts"].decode("ascii")
                r["segmentation"] = rle
            out.append(r)
    return out


def _load_gt(ground_truth):
    from pycocotools.coco import COCO

    from vai_jax.data.coco import load_coco_json, validate_coco

    if isinstance(ground_truth, (str, os.PathLike)):
        ground_truth = load_coco_json(ground_truth)
    else:
        validate_coco(ground_truth, source="ground_truth")
    gt = COCO()
    gt.dataset = copy.deepcopy(ground_truth)
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def coco_ap(ground_truth, results: list[dict], *, iou_type: str = "bbox",
            image_ids: Sequence[int] | None = None, verbose: bool = False) -> dict:
    """COCO AP of ``results`` against ``ground_truth`` with pycocotools ``COCOeval``.

    Args:
      ground_truth: COCO dict or JSON path.
      results: list of result dicts (:func:`detections_to_coco`).
      iou_type: ``"bbox"`` or ``"segm"`` (results need ``"segmentation"``).
      image_ids: evaluate only these images (default: all ground-truth images).
      verbose: print pycocotools' summary table.

    Returns:
      ``{"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm",
      "ARl"}`` as fractions in ``[0, 1]`` (``-1`` where a size range has no ground truth, the
      pycocotools convention). No results -> all AP/AR 0.

    Raises:
      ValueError: invalid ground truth (every bad annotation listed by id, see
      :func:`vai_jax.data.coco.validate_coco`) or results (every bad result listed by index:
      malformed ``bbox`` or ``score``, an ``image_id`` or ``category_id`` absent from the
      ground truth); an unknown ``iou_type``.
    """
    from pycocotools.cocoeval import COCOeval

    from vai_jax.data.coco import validate_coco

    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"iou_type must be 'bbox' or 'segm'; got {iou_type!r}")
    if iou_type == "segm" and any("segmentation" not in r for r in results):
        raise ValueError("iou_type='segm' needs a 'segmentation' in every result")
    gt = _load_gt(ground_truth)
    validate_coco(results, source="results", results=True)
    unknown = [f"result {i}: {key} {r[key]!r} is not in the ground truth's {where}"
               for i, r in enumerate(results)
               for key, where, known in (("image_id", "images", gt.imgs),
                                         ("category_id", "categories", gt.cats))
               if r[key] not in known]
    if unknown:
        raise ValueError(f"results do not match the ground truth: {len(unknown)} problem(s):\n  "
                         + "\n  ".join(unknown))
    if not results:
        return {k: 0.0 for k in STAT_NAMES}
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        dt = gt.loadRes(copy.deepcopy(results))
        ev = COCOeval(gt, dt, iou_type)
        if image_ids is not None:
            ev.params.imgIds = [int(i) for i in image_ids]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    if verbose:
        print(sink.getvalue())
    return {k: float(v) for k, v in zip(STAT_NAMES, ev.stats)}


def ground_truth_from_records(records, *, image_ids: Sequence[int], class_names: Sequence[str],
                              category_ids: Sequence[int] | None = None) -> dict:
    """COCO ground-truth dict (boxes only) from records of any detection source.

    Args:
      records: records with ``image [H, W, 3]``, ``boxes [M, 4]`` xyxy pixels, ``classes [M]``
        and optional ``valid``, ``crowd`` / ``difficult`` (both become ``iscrowd=1``: matched
        detections are then neither rewarded nor penalised, the closest COCO has to VOC's
        "difficult").
      image_ids: COCO id per record. class_names: category names; category_ids: COCO id per
        class (default ``class + 1``).

    Returns:
      dict with ``images``, ``annotations`` (bbox, area = box area), ``categories``.
    """
    cats = list(category_ids) if category_ids is not None else [c + 1 for c in range(len(class_names))]
    images, anns = [], []
    for rec, img in zip(records, image_ids):
        h, w = np.asarray(rec["image"]).shape[:2]
        images.append({"id": int(img), "height": int(h), "width": int(w), "file_name": f"{int(img)}"})
        boxes = np.asarray(rec["boxes"], np.float64).reshape(-1, 4)
        valid = np.asarray(rec.get("valid", np.ones(len(boxes), bool)), bool)
        crowd = np.zeros(len(boxes), bool)
        for k in ("crowd", "difficult"):
            if k in rec:
                crowd |= np.asarray(rec[k], bool)
        for m in np.nonzero(valid)[0]:
            x1, y1, x2, y2 = (float(v) for v in boxes[m])
            anns.append({"id": len(anns) + 1, "image_id": int(img), "category_id": int(cats[int(rec["classes"][m])]),
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                         "iscrowd": int(crowd[m])})
    return {"images": images, "annotations": anns,
            "categories": [{"id": int(i), "name": str(n)} for i, n in zip(cats, class_names)]}
