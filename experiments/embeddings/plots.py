"""The figures of the embeddings study (``run`` in :mod:`experiments.embeddings.train` calls
them).

``plot_pca`` projects each chosen representation of the test images on two principal
components: all images coloured by class, then one class's images coloured by rotation and by
scale. ``plot_depth`` draws each decoding score against the stage, one line per network, with
the pixels' score as a dashed level.
"""
from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from vai_jax.viz.figures import save_figure


def save(fig, path):
    """Write ``fig`` as a PNG (110 dpi) and log the path."""
    save_figure(fig, path, dpi=110, tight=True, announce=True)


def plot_pca(path, panels: dict, labels, rotation_k, log_scale, class_names, class_name, *,
             method: str = "PCA"):
    """Rows: representations (``panels[name]`` from ``pca_panels`` or ``tsne_panels``);
    columns: all test images by class, then the ``class_name`` images by ``k·θ`` (cyclic
    colours) and by log scale. The PCA titles give the variance the two components keep."""
    def share(p, key):
        return f" ({100 * p[key].sum():.0f}% var.)" if key in p else ""

    names = list(panels)
    fig = Figure(figsize=(11.5, 3.2 * len(names)))
    tab = colormaps["tab10"]
    for r, name in enumerate(names):
        p = panels[name]
        ax = fig.add_subplot(len(names), 3, 3 * r + 1)
        for c, cname in enumerate(class_names):
            sel = labels == c
            ax.scatter(p["all"][sel, 0], p["all"][sel, 1], s=4, color=tab(c), label=cname)
        ax.set_title(f"{name}: all classes{share(p, 'all_ratio')}", fontsize=8)
        if r == 0:
            ax.legend(fontsize=6, markerscale=2, loc="best")
        for j, (values, cmap, what) in enumerate(
                [(rotation_k, "twilight", f"{class_name}s by rotation k·θ"),
                 (log_scale, "viridis", f"{class_name}s by log scale")]):
            ax = fig.add_subplot(len(names), 3, 3 * r + 2 + j)
            sc = ax.scatter(p["class"][:, 0], p["class"][:, 1], s=6, c=values, cmap=cmap)
            ax.set_title(f"{name}: {what}{share(p, 'class_ratio')}", fontsize=8)
            fig.colorbar(sc, ax=ax, fraction=0.046, pad=0.03)
    for ax in fig.axes:
        if ax.get_label() != "<colorbar>":
            ax.set_xticks([])
            ax.set_yticks([])
    fig.subplots_adjust(top=0.95)
    fig.suptitle("test images on the first two principal components of each representation"
                 if method == "PCA" else
                 f"test images in a 2-D {method} map of each representation",
                 fontsize=10, y=0.98)
    save(fig, path)


def plot_depth(path, rows: dict, networks, stages, pixels: str, chance: dict):
    """Four panels (class probe, k-NN agreement, rotation R², log-scale R²) against the stage,
    one line per network, the pixels' value dashed and chance dotted."""
    metrics = [("class_probe", "class: linear probe", chance["majority_class"]),
               ("class_knn", "class: k-NN agreement", chance["knn_unrelated"]),
               ("rotation_r2", "rotation (cos kθ, sin kθ) R²", 0.0),
               ("log_scale_r2", "log-scale R²", 0.0)]
    fig = Figure(figsize=(13, 3.0))
    x = np.arange(len(stages))
    for i, (key, title, floor) in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), i + 1)
        for net in networks:
            ax.plot(x, [rows[f"{net} {s}"][key] for s in stages], marker="o", label=net)
        ax.axhline(rows[pixels][key], color="k", ls="--", lw=1, label=pixels)
        ax.axhline(floor, color="grey", ls=":", lw=1, label="chance")
        ax.set_xticks(x, list(stages), fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_ylim(min(-0.05, ax.get_ylim()[0]), 1.02)
        if i == 0:
            ax.legend(fontsize=7)
    save(fig, path)
