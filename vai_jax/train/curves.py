"""Training curves as a PNG (a matplotlib ``Figure``, no pyplot state) from ``metrics.jsonl``."""
from __future__ import annotations

import os

from matplotlib.figure import Figure

from vai_jax.train.metrics_writer import read_metrics
from vai_jax.viz.figures import save_figure

# (panel title, metric key) in display order; panels without data are left out.
PANELS = (("loss", "loss"), ("accuracy", "accuracy"), ("top-1 accuracy", "top1"),
          ("learning rate", "learning_rate"), ("gradient norm", "grad_norm"),
          ("images / s", "images_per_sec"))


def plot_curves(metrics_path: str, png_path: str, *, title: str | None = None) -> str:
    """Plot every metric of :data:`PANELS` found in ``metrics_path``, one line per split.

    Returns ``png_path``. FileNotFoundError names a missing ``metrics_path``.
    """
    if not os.path.isfile(metrics_path):
        raise FileNotFoundError(f"metrics_path {metrics_path!r} is not a file")
    records = read_metrics(metrics_path)
    panels = [(t, k) for t, k in PANELS
              if any(isinstance(r.get(k), (int, float)) for r in records)]
    n = max(len(panels), 1)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, (label, key) in zip(axes.flat, panels):
        for split in sorted({r.get("split", "train") for r in records}):
            pts = [(r["step"], r[key]) for r in records
                   if r.get("split", "train") == split and isinstance(r.get(key), (int, float))]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="o" if len(pts) < 20 else None, ms=3, label=split)
        ax.set_title(label)
        ax.set_xlabel("step")
        if key == "learning_rate":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, png_path, dpi=100)
