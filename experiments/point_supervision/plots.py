"""Figures of the point-supervision experiment: predicted test masks per run, the simulated
annotations of a few training images, and mIoU against the annotation cost."""
from __future__ import annotations

import matplotlib
import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

from experiments.segmentation.plots import _colourise, _palette


def plot_predictions(images, truth, preds: dict, num_classes, ignore_label, path):
    """One row per test image: the image, the true mask and each run's predicted mask."""
    colours = _palette(num_classes)
    n, cols = len(images), 2 + len(preds)
    fig = Figure(figsize=(1.7 * cols, 1.75 * n + 0.3))
    axes = fig.subplots(n, cols, squeeze=False)
    for i in range(n):
        panels = [("image", images[i]), ("truth", _colourise(truth[i], colours, ignore_label))]
        panels += [(k, _colourise(v[i], colours, ignore_label)) for k, v in preds.items()]
        for j, (title, im) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(im, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(title.replace("_", "\n"), fontsize=8)
    fig.suptitle("Test masks of the network trained from each annotation", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_annotations(data: dict, num_classes, ignore_label, path):
    """Per training image: the image, its full mask, the clicked points (one per object, one on
    the background; drawn enlarged in their class colour, background points white-ringed) with
    the image-level labels in the title, and the objectness prior."""
    colours = _palette(num_classes)
    n = len(data["image"])
    fig = Figure(figsize=(7.2, 1.9 * n + 0.2))
    axes = fig.subplots(n, 4, squeeze=False)
    for i in range(n):
        present = [str(c) for c in np.flatnonzero(data["present"][i])]
        a = axes[i]
        a[0].imshow(data["image"][i])
        a[1].imshow(_colourise(data["semantic"][i], colours, ignore_label),
                    interpolation="nearest")
        a[2].imshow(data["image"][i], alpha=0.5)
        ys, xs = np.nonzero(data["points"][i] != ignore_label)
        cls = data["points"][i][ys, xs]
        a[2].scatter(xs, ys, c=colours[cls], s=40, edgecolors="white", linewidths=1.0)
        im = a[3].imshow(data["objectness"][i], cmap="magma", vmin=0, vmax=1)
        titles = ["image", "full mask", f"points; present: {{{', '.join(present)}}}",
                  "objectness prior"]
        for ax, t in zip(a, titles):
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0 or ax is a[2]:
                ax.set_title(t, fontsize=7)
    fig.colorbar(im, ax=axes[:, 3].tolist(), fraction=0.05)
    fig.savefig(path, dpi=110)


def plot_cost(rows, path):
    """Test mIoU against the hours of annotation of each run's training set (Bearman et al.'s
    seconds per image times the images; log scale), and against the pixels labelled per
    image."""
    fig = Figure(figsize=(10, 3.8))
    axes = fig.subplots(1, 2)
    cmap = matplotlib.colormaps["tab10"]
    for i, r in enumerate(rows):
        for ax, key in zip(axes, ("annotation_hours", "pixels_per_image")):
            x = r[key]
            ax.scatter([x], [r["miou"]], color=cmap(i % 10), s=40, zorder=3)
            ax.annotate(r["run"], (x, r["miou"]), textcoords="offset points", xytext=(5, 3),
                        fontsize=7)
    axes[0].set_xscale("log")
    axes[0].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[0].xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axes[0].xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axes[0].set_xlabel("annotation hours for the training images\n(seconds per image measured "
                       "on PASCAL VOC by Bearman et al. 2016)")
    axes[1].set_xscale("symlog", linthresh=1.0)
    axes[1].set_xlabel("pixels labelled per training image (symmetric log scale)")
    for ax in axes:
        ax.set_ylabel("test mIoU")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
