"""The network comparison's figure (``comparison.png``)."""
from __future__ import annotations

import numpy as np


def comparison(results: list, meta: dict, path: str) -> None:
    """Two panels. Left: top-1 accuracy vs GMACs with bubble area ∝ parameters when accuracies
    are given, else parameters vs GMACs with bubble area ∝ measured inference images/s.
    Right: measured inference and training-step images/s vs GMACs (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.5))
    with_acc = [r for r in results if r.top1 is not None]
    if with_acc:
        rs = with_acc
        y = np.array([100 * r.top1 for r in rs])
        size = np.array([r.params / 1e6 for r in rs])
        ax1.set_ylabel("top-1 accuracy (%)")
        ax1.set_title("Accuracy vs multiply-accumulates (bubble area ∝ parameters)", fontsize=10)
    else:
        rs = results
        y = np.array([r.params / 1e6 for r in rs])
        speed = np.array([r.infer_images_per_s or 0.0 for r in rs])
        size = 60 * speed / speed.max() if speed.max() > 0 else np.full(len(rs), 10.0)
        ax1.set_yscale("log")
        ax1.set_ylabel("parameters (M)")
        ax1.set_title("Parameters vs multiply-accumulates\n"
                      "(bubble area ∝ measured inference images/s)", fontsize=10)
    x = np.array([r.macs / 1e9 for r in rs])
    ax1.scatter(x, y, s=20 + 8 * size, alpha=0.45, c=np.arange(len(rs)) % 10, cmap="tab10",
                vmin=0, vmax=9, edgecolors="k")
    for r, xi, yi in zip(rs, x, y):
        ax1.annotate(r.model, (xi, yi), fontsize=8, ha="center", va="bottom",
                     xytext=(0, 7), textcoords="offset points")
    ax1.set_xlabel(f"GMACs per image at {meta['image_size']}x{meta['image_size']}")

    for attr, label, marker in (("infer_images_per_s", "inference", "o"),
                                ("train_images_per_s", "training step", "s")):
        pts = [(r.macs / 1e9, getattr(r, attr), r.model) for r in results if getattr(r, attr)]
        if pts:
            ax2.scatter([p[0] for p in pts], [p[1] for p in pts], marker=marker, label=label)
            for mx, v, name in pts:
                ax2.annotate(name, (mx, v), fontsize=7, xytext=(4, 2), textcoords="offset points")
    ax2.set_yscale("log")
    ax2.set_xlabel("GMACs per image")
    ax2.set_ylabel("images/s (measured)")
    ax2.set_title(f"Measured throughput, {meta['device']}, batch {meta['batch_size']}",
                  fontsize=10)
    if ax2.collections:
        ax2.legend()
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log":
                axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                axis.set_major_formatter(plain)
                axis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
