"""Figures of the colourisation experiment: grey / predicted / true images and loss curves."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vai_jax.viz.grids import save_rows_grid


def plot_examples(path: str, images: np.ndarray, predictions: Mapping[str, np.ndarray], *,
                  grey: np.ndarray) -> None:
    """One column per test image: the grey input (``grey [n, H, W]`` in ``[0, 1]``), each
    model's recoloured image (``predictions {name: [n, H, W, 3]}`` in ``[0, 1]``) and the true
    image (``images [n, H, W, 3]`` uint8)."""
    rows = {"grey input": list(grey)}
    rows.update({name: list(rgb) for name, rgb in predictions.items()})
    rows["true colour"] = list(images)
    save_rows_grid(rows, path, cell_inches=0.9,
                   title="grey input, predicted colours (true L + predicted ab), true colours")


def plot_curves(path: str, records: Mapping[str, Sequence[dict]]) -> None:
    """The training loss of each run against the step (log scale)."""
    fig = Figure(figsize=(5.5, 3.4), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, recs in records.items():
        train = [r for r in recs if r.get("split") == "train" and "loss" in r]
        ax.plot([r["step"] for r in train], [r["loss"] for r in train], label=name)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
