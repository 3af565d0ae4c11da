"""The figures of the sequence study (``run`` in :mod:`experiments.sequences.train` calls them).

``plot_decoding`` shows test clips frame by frame with the true part and each model's decision
(red where wrong); ``plot_transitions`` sets a chain CRF's learned transition scores beside the
log-frequencies of the part transitions in the test clips.
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from vai_jax.viz.draw import draw_image
from vai_jax.viz.figures import save_figure

_SHORT = {"circle": "circ", "square": "sq", "triangle": "tri", "star": "star", "cross": "cross",
          "ellipse": "ell"}


def save(fig, path):
    """Write ``fig`` as a PNG (110 dpi) and log the path."""
    save_figure(fig, path, dpi=110, tight=True, announce=True)


def plot_decoding(path, test, frames: dict, n: int, class_names):
    """The first ``n`` test clips: each frame with its true part (``O`` occluded, ``N`` noisy)
    and, below, each model of ``frames`` (``{name: [N, T] labels}``) in green (right) or red."""
    t = test["frames"].shape[1]
    names = list(frames)
    short = [_SHORT.get(c, c) for c in class_names]
    fig = Figure(figsize=(1.0 * t + 0.9, (1.25 + 0.16 * len(names)) * n))
    for i in range(n):
        for j in range(t):
            ax = fig.add_subplot(n, t, i * t + j + 1)
            draw_image(ax, test["frames"][i, j])
            flags = ("O" if test["occluded"][i, j] else "") + ("N" if test["noisy"][i, j] else "")
            truth = int(test["labels"][i, j])
            ax.set_title(f"{short[truth]} {flags}".strip(), fontsize=7, pad=2)
            for r, name in enumerate(names):
                label = int(frames[name][i, j])
                ax.text(0.5, -0.06 - 0.16 * r, short[label], transform=ax.transAxes,
                        ha="center", va="top", fontsize=6.5,
                        color="tab:green" if label == truth else "tab:red")
            if j == 0:
                ax.text(-0.1, 0.5, f"clip {i}\ngesture {int(test['label'][i])}",
                        transform=ax.transAxes, ha="right", va="center", fontsize=7)
                for r, name in enumerate(names):
                    ax.text(-0.1, -0.06 - 0.16 * r, name, transform=ax.transAxes, ha="right",
                            va="top", fontsize=6.5)
    fig.subplots_adjust(hspace=0.25 + 0.2 * len(names), wspace=0.08)
    fig.suptitle("true part above each frame (O occluded, N noisy); below: decoded labels "
                 "(green right, red wrong)", fontsize=9)
    save(fig, path)


def plot_transitions(path, chains: dict, test, class_names):
    """Each chain CRF's learned ``transitions [C, C]`` next to ``log`` of the test clips'
    pooled part-transition frequencies (rows normalised)."""
    c = len(class_names)
    counts = np.ones((c, c))  # add-one smoothing
    labels = test["labels"]
    np.add.at(counts, (labels[:, :-1], labels[:, 1:]), 1)
    panels = [("log p(next | part), test clips", np.log(counts / counts.sum(1, keepdims=True)))]
    panels += [(f"{name}: learned transitions", np.asarray(w)) for name, w in chains.items()]
    fig = Figure(figsize=(4.2 * len(panels), 3.6), layout="constrained")
    for k, (title, mat) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        im = ax.imshow(mat, cmap="viridis")
        ax.set_xticks(range(c), [_SHORT.get(n, n) for n in class_names], fontsize=7,
                      rotation=45)
        ax.set_yticks(range(c), [_SHORT.get(n, n) for n in class_names], fontsize=7)
        ax.set_xlabel("to", fontsize=8)
        ax.set_ylabel("from", fontsize=8)
        ax.set_title(title, fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    save(fig, path)
