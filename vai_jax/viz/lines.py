"""Line plots of analysis results (accuracy vs depth, accuracy vs parameters) as PNG."""
from __future__ import annotations

from typing import Mapping, Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from vai_jax.viz.figures import save_figure


def save_line_plot(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: str, *,
                   xlabel: str, ylabel: str, title: str | None = None,
                   xticklabels: Sequence[str] | None = None, logx: bool = False,
                   hline: tuple[float, str] | None = None, dpi: int = 100) -> str:
    """``series = {label: (xs, ys)}`` drawn with markers; ``xticklabels`` label integer x
    positions ``0..n-1``; ``hline = (y, label)`` draws a dashed reference (e.g. chance).
    Returns ``path``."""
    if not isinstance(series, Mapping) or not series:
        raise ValueError(f"series must be a non-empty mapping label -> (xs, ys); got {series!r}")
    for label, pair in series.items():
        if len(pair) != 2 or len(pair[0]) != len(pair[1]):
            raise ValueError(f"series[{label!r}] must be (xs, ys) of equal lengths; got "
                             f"lengths {[len(p) for p in pair]}")
    fig = Figure(figsize=(5.5, 3.6), dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    for label, (xs, ys) in series.items():
        ax.plot(list(xs), list(ys), marker="o", label=label)
    if hline is not None:
        ax.axhline(hline[0], color="grey", linestyle="--", linewidth=1, label=hline[1])
    if xticklabels is not None:
        ax.set_xticks(range(len(xticklabels)))
        ax.set_xticklabels(xticklabels, fontsize=8)
    if logx:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide on short ranges
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
