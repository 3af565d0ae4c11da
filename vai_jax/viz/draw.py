"""Matplotlib drawing of images with boxes, instance masks, keypoints (+ skeleton) and semantic masks.

Uses ``matplotlib.figure.Figure`` with the Agg canvas directly (no pyplot, no global backend
change), so it is safe in scripts, tests and worker processes.

The axes use the project's continuous pixel frame: images are drawn with
``extent=(0, W, H, 0)`` so that pixel (row i, col j) covers ``[j, j+1) x [i, i+1)`` in data
coordinates, and boxes ``[x1, y1, x2, y2]`` and keypoints ``[x, y, v]`` are drawn exactly where
they are defined (no half-pixel shift).
"""
from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from vai_jax.data.shapes_geometry import CLASS_NAMES, SKELETON

_PALETTE = colormaps["tab10"].colors


def _colour(i: int):
    return _PALETTE[int(i) % len(_PALETTE)]


def _as_image(image) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[-1] not in (3, 4)):
        raise ValueError(f"image must have shape [H, W], [H, W, 1], [H, W, 3] or [H, W, 4]; got {img.shape}")
    if np.issubdtype(img.dtype, np.floating):
        img = np.clip(img, 0.0, 1.0)
    return img


def draw_image(ax, image) -> None:
    """Show ``image`` (uint8 [H, W, 3] or float in [0, 1]) in the continuous pixel frame."""
    img = _as_image(image)
    h, w = img.shape[:2]
    ax.imshow(img, extent=(0, w, h, 0), interpolation="nearest", cmap="gray" if img.ndim == 2 else None)
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_axis_off()


def _valid(valid, n: int) -> np.ndarray:
    return np.ones(n, bool) if valid is None else np.asarray(valid, bool).reshape(n)


def draw_boxes(ax, boxes, *, classes=None, scores=None, valid=None,
               class_names: Sequence[str] | None = CLASS_NAMES, linewidth: float = 1.5) -> None:
    """Draw boxes float [M, 4] ``[x1, y1, x2, y2]`` (pixels) with optional class names and scores [M]."""
    boxes = np.asarray(boxes, np.float64)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must have shape [M, 4] ([x1, y1, x2, y2]); got {boxes.shape}")
    keep = _valid(valid, len(boxes))
    for m, (x1, y1, x2, y2) in enumerate(boxes):
        if not keep[m]:
            continue
        c = None if classes is None else int(np.asarray(classes).reshape(-1)[m])
        col = _colour(0 if c is None else c)
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=col, linewidth=linewidth))
        parts = []
        if c is not None:
            parts.append(class_names[c] if class_names is not None and 0 <= c < len(class_names) else str(c))
        if scores is not None:
            parts.append(f"{float(np.asarray(scores).reshape(-1)[m]):.2f}")
        if parts:
            ax.text(x1, y1, " ".join(parts), color="white", fontsize=6, va="bottom", ha="left",
                    bbox=dict(facecolor=col, alpha=0.8, pad=0.5, linewidth=0), clip_on=True)


def draw_masks(ax, masks, *, classes=None, valid=None, alpha: float = 0.45) -> None:
    """Overlay instance masks bool [M, H, W] as translucent colour (by class, else by instance)."""
    masks = np.asarray(masks, bool)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3:
        raise ValueError(f"masks must have shape [M, H, W] (or [H, W]); got {masks.shape}")
    m, h, w = masks.shape
    keep = _valid(valid, m)
    overlay = np.zeros((h, w, 4))
    for i in range(m):
        if not keep[i]:
            continue
        c = i if classes is None else int(np.asarray(classes).reshape(-1)[i])
        overlay[masks[i]] = (*_colour(c)[:3], alpha)
    ax.imshow(overlay, extent=(0, w, h, 0), interpolation="nearest")


def draw_semantic(ax, semantic, *, num_classes: int = len(CLASS_NAMES), alpha: float = 0.5) -> None:
    """Overlay a semantic mask int [H, W] (0 = background, c + 1 = class c) as translucent colour."""
    sem = np.asarray(semantic)
    if sem.ndim != 2:
        raise ValueError(f"semantic must have shape [H, W]; got {sem.shape}")
    h, w = sem.shape
    overlay = np.zeros((h, w, 4))
    for c in range(num_classes):
        overlay[sem == c + 1] = (*_colour(c)[:3], alpha)
    ax.imshow(overlay, extent=(0, w, h, 0), interpolation="nearest")


def draw_keypoints(ax, keypoints, *, classes=None, valid=None,
                   skeleton: Sequence[Sequence[tuple[int, int]]] | None = SKELETON, size: float = 12.0) -> None:
    """Draw keypoints float [M, K, 3] (or [K, 3]) ``[x, y, v]`` and their skeleton limbs.

    v = 2 (visible): filled marker; v = 1 (occluded): hollow marker; v = 0: not drawn.
    ``skeleton`` is a per-class list of (i, j) limbs (used when ``classes`` is given) or None.
    """
    kps = np.asarray(keypoints, np.float64)
    if kps.ndim == 2:
        kps = kps[None]
    if kps.ndim != 3 or kps.shape[-1] != 3:
        raise ValueError(f"keypoints must have shape [M, K, 3] or [K, 3]; got {np.shape(keypoints)}")
    keep = _valid(valid, len(kps))
    for m, pts in enumerate(kps):
        if not keep[m]:
            continue
        c = None if classes is None else int(np.asarray(classes).reshape(-1)[m])
        col = _colour(m if c is None else c)
        if skeleton is not None and c is not None and 0 <= c < len(skeleton):
            for i, j in skeleton[c]:
                if pts[i, 2] > 0 and pts[j, 2] > 0:
                    ax.plot([pts[i, 0], pts[j, 0]], [pts[i, 1], pts[j, 1]], color=col, linewidth=1.0)
        vis = pts[:, 2] >= 2
        occ = (pts[:, 2] > 0) & ~vis
        ax.scatter(pts[vis, 0], pts[vis, 1], s=size, c=[col], edgecolors="black", linewidths=0.5, zorder=3)
        ax.scatter(pts[occ, 0], pts[occ, 1], s=size, facecolors="none", edgecolors=[col], linewidths=1.0,
                   zorder=3)


def draw_record(ax, record: Mapping[str, np.ndarray], *, class_names: Sequence[str] | None = CLASS_NAMES,
                scores=None, show_boxes: bool = True, show_masks: bool = True,
                show_keypoints: bool = True, show_semantic: bool = False,
                skeleton=SKELETON, title: str | None = None) -> None:
    """Draw one record (dict of arrays, the shapes/COCO record convention) on ``ax``.

    Uses whatever keys are present: "image" (required), "boxes", "classes", "valid", "masks",
    "keypoints", "semantic", "label" (shown as the title when there are no boxes). ``scores`` [M]
    (e.g. detector confidences) are printed after the class names.
    """
    if "image" not in record:
        raise ValueError(f"record must have an 'image' key; got keys {sorted(record)}")
    draw_image(ax, record["image"])
    classes = record.get("classes")
    valid = record.get("valid")
    if show_semantic and "semantic" in record:
        draw_semantic(ax, record["semantic"], num_classes=len(class_names) if class_names else 256)
    if show_masks and "masks" in record:
        draw_masks(ax, record["masks"], classes=classes, valid=valid)
    if show_boxes and "boxes" in record:
        draw_boxes(ax, record["boxes"], classes=classes, scores=scores, valid=valid, class_names=class_names)
    if show_keypoints and "keypoints" in record:
        kp_classes = classes if classes is not None else record.get("label")
        draw_keypoints(ax, record["keypoints"], classes=kp_classes, valid=valid, skeleton=skeleton)
    if title is None and "label" in record and "boxes" not in record:
        c = int(np.asarray(record["label"]))
        title = class_names[c] if class_names is not None and 0 <= c < len(class_names) else str(c)
    if title:
        ax.set_title(title, fontsize=7)


def save_grid(records: Sequence[Mapping[str, np.ndarray]], path: str, *, ncols: int | None = None,
              titles: Sequence[str] | None = None, scores: Sequence | None = None,
              cell_inches: float = 2.0, dpi: int = 100, **draw_kwargs) -> str:
    """Render ``records`` as a grid of panels (see :func:`draw_record`) and save a PNG at ``path``.

    Args:
      records: sequence of record dicts (at least one).
      path: output file; parent folders are created.
      ncols: panels per row (default: about sqrt(len(records))).
      titles: optional per-panel titles; scores: optional per-record score arrays [M].
      cell_inches, dpi: panel size in inches and resolution.
      **draw_kwargs: forwarded to :func:`draw_record` (show_masks, show_semantic, ...).

    Returns:
      ``path``.
    """
    n = len(records)
    if n == 0:
        raise ValueError("records must not be empty")
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(cell_inches * ncols, cell_inches * nrows), dpi=dpi)
    FigureCanvasAgg(fig)
    for k in range(nrows * ncols):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        if k >= n:
            ax.set_axis_off()
            continue
        draw_record(ax, records[k], title=None if titles is None else titles[k],
                    scores=None if scores is None else scores[k], **draw_kwargs)
    fig.tight_layout(pad=0.3)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    fig.savefig(path, format="png")
    return path
