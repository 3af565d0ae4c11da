"""Figures of the detection experiment: the comparison bars and a grid of detections."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vai_jax.viz.draw import save_grid


def plot_comparison(rows: Sequence[dict], path: str, *, names: Sequence[str]) -> None:
    """Box AP50, box AP and inference ms per image (log scale) of each row, as bars."""
    fig = Figure(figsize=(9, 3.2), dpi=110)
    FigureCanvasAgg(fig)
    for i, (key, label, log) in enumerate((("AP50", "box AP50 (%)", False),
                                           ("AP", "box AP (%)", False),
                                           ("ms", "inference ms / image (log)", True))):
        ax = fig.add_subplot(1, 3, i + 1)
        vals = [1000 * r["seconds_per_image"] if key == "ms" else 100 * r["box"][key] for r in rows]
        ax.bar(range(len(rows)), vals, color=["C0", "C1", "C2", "C3"][:len(rows)])
        ax.set_xticks(range(len(rows)), names, rotation=20, fontsize=7)
        ax.set_title(label, fontsize=8)
        if log:
            ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(path)


def plot_detections(images: np.ndarray, scales: np.ndarray, out: dict, path: str, *,
                    class_names: Sequence[str], titles: Sequence[str],
                    min_score: float = 0.5) -> None:
    """Detections scoring at least ``min_score`` drawn on ``images [n, S, S, 3]``.

    ``out`` holds the model's outputs for (at least) those images, boxes in source pixels
    (multiplied by ``scales [n]`` back onto the letterboxed images); ``pasted_masks`` when
    present are drawn too.
    """
    recs, scores = [], []
    for i in range(len(images)):
        v = out["valid"][i] & (out["scores"][i] >= min_score)
        rec = {"image": images[i], "boxes": out["boxes"][i][v] * scales[i],
               "classes": out["classes"][i][v]}
        if "pasted_masks" in out:
            rec["masks"] = out["pasted_masks"][i][v]
        recs.append(rec)
        scores.append(out["scores"][i][v])
    save_grid(recs, path, scores=scores, ncols=4, class_names=list(class_names), titles=list(titles))
