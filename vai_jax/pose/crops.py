"""Top-down person (or object) crops for single-instance keypoint models.

A top-down pose model sees one instance per image: each annotated instance's box, enlarged
and made square, is cropped from its image and resized to a fixed size (as in Xiao et al.
2018, Simple Baselines, with the box aspect ratio fixed to 1). Host-side NumPy.
"""
from __future__ import annotations

import numpy as np

from vai_jax.data.affine import apply_affine, crop_resize_matrix


def top_down_crops(source, *, image_size: int, box_scale: float = 1.25, min_keypoints: int = 1,
                   limit: int | None = None) -> dict:
    """Crops of every annotated, non-crowd instance with at least ``min_keypoints`` labelled
    keypoints, in source order.

    The crop is the square of side ``box_scale · max(box width, box height, 1)`` centred on the
    box, resized to ``image_size × image_size`` by :func:`vai_jax.data.affine.apply_affine`,
    which maps the keypoints and the box into the crop's pixel frame (keypoints outside the
    crop become unlabelled: ``v = 0`` at ``(0, 0)``).

    Args:
      source: random-access records with ``"image"`` uint8 ``[H, W, 3]``, ``"boxes"``
        ``[M, 4]``, ``"keypoints"`` ``[M, K, 3]``, ``"classes"`` ``[M]`` and optionally
        ``"crowd"`` bool ``[M]`` (e.g. :class:`vai_jax.data.coco.CocoSource`).
      image_size: side of the square crops in pixels.
      box_scale: enlargement of the box side (context around the instance).
      min_keypoints: fewest keypoints with ``v > 0`` an instance needs.
      limit: stop after this many crops (``None``: all).

    Returns:
      dict of arrays over the ``N`` crops: ``"image"`` uint8 ``[N, S, S, 3]``, ``"keypoints"``
      float32 ``[N, K, 3]``, ``"boxes"`` float32 ``[N, 4]`` and ``"weights"`` float32
      ``[N, K]`` (visibility ``v > 0`` as 0/1). Raises ``ValueError`` when no instance
      qualifies.
    """
    s, out = int(image_size), {"image": [], "keypoints": [], "boxes": []}
    for i in range(len(source)):
        rec = source[i]
        for m in range(len(rec["boxes"])):
            kp = rec["keypoints"][m]
            if rec.get("crowd", np.zeros(len(rec["boxes"]), bool))[m] or \
                    (kp[:, 2] > 0).sum() < min_keypoints:
                continue
            x1, y1, x2, y2 = rec["boxes"][m]
            side = max(x2 - x1, y2 - y1, 1.0) * box_scale
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            one = {"image": rec["image"], "boxes": rec["boxes"][m:m + 1],
                   "keypoints": kp[None], "classes": rec["classes"][m:m + 1]}
            a = crop_resize_matrix(cx - side / 2, cy - side / 2, side, side, (s, s))
            crop = apply_affine(one, a, (s, s))
            out["image"].append(crop["image"])
            out["keypoints"].append(crop["keypoints"][0])
            out["boxes"].append(crop["boxes"][0])
            if limit is not None and len(out["image"]) >= limit:
                break
        if limit is not None and len(out["image"]) >= limit:
            break
    if not out["image"]:
        raise ValueError("no instance with labelled keypoints found in source")
    arr = {k: np.stack(v).astype(np.uint8 if k == "image" else np.float32)
           for k, v in out.items()}
    arr["weights"] = (arr["keypoints"][..., 2] > 0).astype(np.float32)
    return arr


__all__ = ["top_down_crops"]
