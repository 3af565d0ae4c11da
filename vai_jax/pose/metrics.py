"""2D keypoint metrics: mean pixel error, PCK@α, COCO keypoint AP (OKS) via pycocotools, the
calibration of predicted uncertainties, and the grouping quality of multi-instance predictions.

Coordinates are ``(x, y)`` image pixels in the frame of :mod:`vai_jax.ops.coords`. Metrics run
on host NumPy values (after training / inference), not inside ``jit``.
"""
from __future__ import annotations

import contextlib
import copy
import io

import numpy as np

# The 17 COCO person keypoint OKS constants (pycocotools' default ``kpt_oks_sigmas``).
COCO_PERSON_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07,
                               1.07, .87, .87, .89, .89]) / 10.0

COCO_KEYPOINT_STATS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def _split(predictions, targets, visible):
    p = np.asarray(predictions, np.float64)
    t = np.asarray(targets, np.float64)
    if p.ndim < 2 or p.shape[-1] not in (2, 3):
        raise ValueError(f"predictions must have shape [..., K, 2]; got {p.shape}")
    if t.ndim < 2 or t.shape[-1] not in (2, 3) or t.shape[:-1] != p.shape[:-1]:
        raise ValueError(f"targets must have shape {p.shape[:-1] + (3,)} (or (..., 2) with "
                         f"`visible`); got {t.shape}")
    if visible is None:
        if t.shape[-1] != 3:
            raise ValueError("visible is required when targets have no visibility column")
        visible = t[..., 2] > 0
    visible = np.asarray(visible, bool)
    if visible.shape != p.shape[:-1]:
        raise ValueError(f"visible must have shape {p.shape[:-1]}; got {visible.shape}")
    if not np.all(np.isfinite(p[..., :2])):
        raise ValueError("predictions must be finite")
    return p[..., :2], t[..., :2], visible


def keypoint_distances(predictions, targets):
    """Euclidean distance per keypoint: ``[..., K, ≥2]`` × 2 → float64 ``[..., K]``."""
    p = np.asarray(predictions, np.float64)[..., :2]
    t = np.asarray(targets, np.float64)[..., :2]
    return np.sqrt(np.sum((p - t) ** 2, axis=-1))


def mean_pixel_error(predictions, targets, visible=None):
    """Mean Euclidean distance in pixels over the visible keypoints.

    Args:
      predictions: ``[..., K, 2]``.
      targets: keypoints ``[..., K, 3]`` (visible where ``v > 0``) or ``[..., K, 2]`` with
        ``visible``.
      visible: optional bool ``[..., K]`` overriding the visibility column.

    Returns:
      float. Raises ValueError when no keypoint is visible (the mean is undefined).
    """
    p, t, vis = _split(predictions, targets, visible)
    if not vis.any():
        raise ValueError("mean_pixel_error: no visible keypoint (all visibility 0)")
    return float(keypoint_distances(p, t)[vis].mean())


def pck(predictions, targets, *, alpha, reference, visible=None):
    """Percentage of Correct Keypoints: the fraction of visible keypoints whose distance to the
    target is at most ``alpha · reference``.

    Args:
      predictions, targets, visible: as :func:`mean_pixel_error`.
      alpha: threshold as a fraction of the reference size (e.g. 0.05).
      reference: per-example reference length in pixels, scalar or ``[...]`` (the leading axes
        of ``targets``; e.g. the object box size, :func:`box_reference_size`).

    Returns:
      float in ``[0, 1]``. Raises ValueError when no keypoint is visible.
    """
    if not float(alpha) > 0:
        raise ValueError(f"alpha must be > 0; got {alpha}")
    p, t, vis = _split(predictions, targets, visible)
    if not vis.any():
        raise ValueError("pck: no visible keypoint (all visibility 0)")
    ref = np.asarray(reference, np.float64)
    if np.any(~np.isfinite(ref)) or np.any(ref <= 0):
        raise ValueError("reference must be finite and > 0")
    thr = float(alpha) * np.broadcast_to(ref[..., None] if ref.ndim else ref, vis.shape)
    return float((keypoint_distances(p, t) <= thr)[vis].mean())


def box_reference_size(boxes):
    """``max(x2 − x1, y2 − y1)`` of ``[..., 4]`` boxes, the PCK reference length."""
    b = np.asarray(boxes, np.float64)
    return np.maximum(b[..., 2] - b[..., 0], b[..., 3] - b[..., 1])


def to_coco_results(image_ids, keypoints, scores, category_ids=1, *, keypoint_offset=0.5):
    """Predictions as a COCO keypoint results list.

    Args:
      image_ids: ``[N]`` ints. keypoints: ``[N, K, 2 or 3]`` ``(x, y)`` in our continuous frame
        (image pixels, pixel centres at ``+0.5``). scores: ``[N]``.
      category_ids: int or ``[N]``.
      keypoint_offset: subtracted from x and y when writing: COCO files store keypoints as
        pixel indices (centre = integer), so the default 0.5 matches real COCO files and
        :func:`to_coco_ground_truth` / ``vai_jax.data.coco_export`` (project convention).

    Returns:
      list of ``{"image_id", "category_id", "keypoints": [x1, y1, 1, ...], "score"}``.
    """
    kp = np.asarray(keypoints, np.float64)
    n = len(kp)
    cats = np.broadcast_to(np.asarray(category_ids), (n,))
    out = []
    for i in range(n):
        xy = kp[i, :, :2] - float(keypoint_offset)
        flat = np.concatenate([xy, np.ones((kp.shape[1], 1))], -1).reshape(-1)
        out.append({"image_id": int(image_ids[i]), "category_id": int(cats[i]),
                    "keypoints": [float(v) for v in flat], "score": float(scores[i])})
    return out


def to_coco_ground_truth(keypoints, boxes, valid=None, *, image_size, areas=None,
                         keypoint_offset=0.5, category_id=1, keypoint_names=None):
    """A COCO keypoint ground-truth dict from arrays (images get ids ``1 … N``).

    Args:
      keypoints: ``[N, M, K, 3]`` ``[x, y, v]`` in our continuous frame; ``v > 0`` counts as
        labelled (written as 2 for visible, 1 for occluded; 0 entries are written as 0, 0, 0).
      boxes: ``[N, M, 4]`` ``[x1, y1, x2, y2]`` (written as COCO ``[x, y, w, h]``).
      valid: bool ``[N, M]`` (default all); invalid objects are skipped.
      image_size: ``(H, W)``.
      areas: ``[N, M]`` object areas for OKS (default: box areas).
      keypoint_offset: subtracted from labelled x, y (see :func:`to_coco_results`).

    Returns:
      COCO dict with ``images``, ``annotations`` (``id`` from 1) and one category.
    """
    kp = np.asarray(keypoints, np.float64)
    bx = np.asarray(boxes, np.float64)
    if kp.ndim != 4 or kp.shape[-1] != 3:
        raise ValueError(f"keypoints must have shape [N, M, K, 3]; got {kp.shape}")
    if bx.shape != kp.shape[:2] + (4,):
        raise ValueError(f"boxes must have shape {kp.shape[:2] + (4,)}; got {bx.shape}")
    n, m, k = kp.shape[:3]
    valid = np.ones((n, m), bool) if valid is None else np.asarray(valid, bool)
    wh = np.clip(bx[..., 2:] - bx[..., :2], 0, None)
    areas = wh[..., 0] * wh[..., 1] if areas is None else np.asarray(areas, np.float64)
    h, w = (int(s) for s in image_size)
    images, anns = [], []
    for i in range(n):
        images.append({"id": i + 1, "width": w, "height": h, "file_name": f"{i + 1:06d}.png"})
        for j in range(m):
            if not valid[i, j]:
                continue
            labelled = kp[i, j, :, 2] > 0
            flat = np.zeros((k, 3))
            flat[labelled, :2] = kp[i, j, labelled, :2] - float(keypoint_offset)
            flat[labelled, 2] = np.where(kp[i, j, labelled, 2] >= 2, 2, 1)
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": category_id,
                         "iscrowd": 0, "bbox": [float(bx[i, j, 0]), float(bx[i, j, 1]),
                                                float(wh[i, j, 0]), float(wh[i, j, 1])],
                         "area": float(areas[i, j]), "num_keypoints": int(labelled.sum()),
                         "keypoints": [float(v) for v in flat.reshape(-1)]})
    names = list(keypoint_names) if keypoint_names is not None else [f"kp{t}" for t in range(k)]
    return {"images": images, "annotations": anns,
            "categories": [{"id": category_id, "name": "object", "keypoints": names,
                            "skeleton": []}]}


def coco_keypoint_ap(ground_truth, results, *, sigmas=None, verbose: bool = False):
    """COCO keypoint AP/AR from Object Keypoint Similarity, computed by pycocotools.

    Args:
      ground_truth: a COCO-format dict (``images``, ``annotations`` with ``keypoints``,
        ``num_keypoints``, ``area``, ``bbox``, ``iscrowd``; ``categories``), or a path to such a
        JSON file.
      results: COCO keypoint results (e.g. :func:`to_coco_results`).
      sigmas: per-keypoint OKS constants ``[K]``; defaults to :data:`COCO_PERSON_SIGMAS`, and
        is required when ``K != 17``.
      verbose: print pycocotools' summary.

    Returns:
      dict with the keys of :data:`COCO_KEYPOINT_STATS` (floats; pycocotools reports ``-1``
      where a statistic has no ground truth). With no results every statistic is 0.0.

    Raises:
      ValueError: ground truth that is not valid COCO data, every bad annotation listed by id
      (:func:`vai_jax.data.coco.validate_coco`); ``sigmas`` of the wrong length.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from vai_jax.data.coco import load_coco_json, validate_coco

    if isinstance(ground_truth, (str, bytes)) or hasattr(ground_truth, "__fspath__"):
        ground_truth = load_coco_json(ground_truth)
    else:
        validate_coco(ground_truth, source="ground_truth")
    anns = ground_truth.get("annotations", [])
    num_kp = len(anns[0]["keypoints"]) // 3 if anns else 17
    sig = COCO_PERSON_SIGMAS if sigmas is None else np.asarray(sigmas, np.float64)
    if sig.shape != (num_kp,):
        raise ValueError(f"sigmas must have shape ({num_kp},) (one per keypoint); got "
                         f"{sig.shape}" + ("" if sigmas is not None else
                                            " from the COCO default — pass sigmas"))
    if not results:
        return {k: 0.0 for k in COCO_KEYPOINT_STATS}
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        gt = COCO()
        gt.dataset = copy.deepcopy(ground_truth)
        gt.createIndex()
        dt = gt.loadRes(copy.deepcopy(list(results)))
        ev = COCOeval(gt, dt, iouType="keypoints")
        ev.params.kpt_oks_sigmas = sig
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    if verbose:
        print(sink.getvalue())
    return {k: float(v) for k, v in zip(COCO_KEYPOINT_STATS, ev.stats)}


def density_calibration(predictions, log_std, targets, *, num_bins: int = 10) -> dict:
    """How well predicted standard deviations match the errors of a density head.

    Per visible coordinate (``x`` and ``y`` separately) the absolute error ``|e|`` and the
    predicted ``σ = exp(log_std)``. For a calibrated Gaussian, ``|e| <= σ`` for 68.3% and
    ``<= 2σ`` for 95.4% of the coordinates, and ``E|e| = σ·√(2/π)``.

    Args:
      predictions: ``[..., K, 2]`` means (image pixels).
      log_std: ``[..., K, 2]`` natural log of σ (image pixels).
      targets: keypoints ``[..., K, 3]``; coordinates of keypoints with ``v > 0`` count.
      num_bins: coordinates sorted by σ and split into this many equal-count bins.

    Returns:
      dict: ``spearman_sigma_vs_error`` (rank correlation of σ and ``|e|``; ties ranked in
      sort order), ``coverage_1sigma``, ``coverage_2sigma``, ``mean_sigma``,
      ``mean_abs_error``, ``binned_sigma`` and ``binned_abs_error`` (per-bin means, lists),
      ``sigma`` and ``abs_error`` (float64 ``[N]`` per coordinate, for plots).
    """
    t = np.asarray(targets)
    vis = t[..., 2] > 0
    if not vis.any():
        raise ValueError("density_calibration: no visible keypoint (all visibility 0)")
    err = np.abs(np.asarray(predictions) - t[..., :2])[vis].reshape(-1)
    sd = np.exp(np.asarray(log_std))[vis].reshape(-1)
    bins = np.array_split(np.argsort(sd), num_bins)
    mean_sd = np.array([sd[b].mean() for b in bins])
    mean_err = np.array([err[b].mean() for b in bins])
    rank = lambda a: np.argsort(np.argsort(a))
    return {"spearman_sigma_vs_error": float(np.corrcoef(rank(sd), rank(err))[0, 1]),
            "coverage_1sigma": float(np.mean(err <= sd)),
            "coverage_2sigma": float(np.mean(err <= 2 * sd)),
            "mean_sigma": float(sd.mean()), "mean_abs_error": float(err.mean()),
            "binned_sigma": mean_sd.tolist(), "binned_abs_error": mean_err.tolist(),
            "sigma": sd, "abs_error": err}


def grouping_stats(predictions, targets, boxes, peaks, peaks_valid, *, tolerance) -> dict:
    """Quality of grouped multi-instance keypoints on one image.

    A keypoint is correct within ``max(2, tolerance · box size)`` pixels of its target
    (:func:`box_reference_size`). Predicted and target instances are matched one-to-one,
    greedily by the number of visible target keypoints a prediction reproduces (ties in index
    order); ``grouped_correct`` sums the matched counts. ``detected`` counts the visible target
    keypoints that some detected peak of the same keypoint type reaches, before grouping.

    Args:
      predictions: ``[P, K, 3]`` grouped instances ``[x, y, v]`` (``v > 0``: present), image
        pixels.
      targets: ``[G, K, 3]`` target instances (``v > 0``: visible).
      boxes: ``[G, 4]`` target boxes.
      peaks: ``[K, N, 2]`` detected peaks per keypoint type, image pixels.
      peaks_valid: bool ``[K, N]``.
      tolerance: fraction of the box size.

    Returns:
      dict of ints: ``gt_keypoints`` (visible target keypoints), ``grouped_correct``,
      ``detected``, ``gt_instances``, ``pred_instances`` and ``count_exact`` (1 when
      ``P == G``).
    """
    pred, gt = np.asarray(predictions), np.asarray(targets)
    peaks, peaks_valid = np.asarray(peaks), np.asarray(peaks_valid, bool)
    tol = np.maximum(2.0, tolerance * box_reference_size(boxes))  # [G]
    g_vis = gt[..., 2] > 0  # [G, K]
    hits = np.zeros((len(gt), len(pred)), np.int64)
    for g in range(len(gt)):
        for p in range(len(pred)):
            d = np.linalg.norm(pred[p, :, :2] - gt[g, :, :2], axis=-1)
            hits[g, p] = int(np.sum(g_vis[g] & (pred[p, :, 2] > 0) & (d <= tol[g])))
    correct, used_g, used_p = 0, set(), set()
    for flat in np.argsort(-hits, axis=None, kind="stable") if hits.size else []:
        g, p = divmod(int(flat), len(pred))
        if hits[g, p] == 0:
            break
        if g in used_g or p in used_p:
            continue
        used_g.add(g), used_p.add(p)
        correct += int(hits[g, p])
    detected = 0
    for g in range(len(gt)):
        for k in np.flatnonzero(g_vis[g]):
            cand = peaks[k][peaks_valid[k]]
            if len(cand) and np.min(np.linalg.norm(cand - gt[g, k, :2], axis=-1)) <= tol[g]:
                detected += 1
    return {"gt_keypoints": int(g_vis.sum()), "grouped_correct": correct, "detected": detected,
            "gt_instances": len(gt), "pred_instances": len(pred),
            "count_exact": int(len(gt) == len(pred))}


__all__ = ["COCO_KEYPOINT_STATS", "COCO_PERSON_SIGMAS", "box_reference_size",
           "coco_keypoint_ap", "density_calibration", "grouping_stats", "keypoint_distances",
           "mean_pixel_error", "pck", "to_coco_ground_truth", "to_coco_results"]
