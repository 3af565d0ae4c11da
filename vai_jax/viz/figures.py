"""Writing matplotlib figures (``matplotlib.figure.Figure``, no pyplot state) as PNG files."""
from __future__ import annotations

import os

from matplotlib.backends.backend_agg import FigureCanvasAgg


def save_figure(fig, path: str, *, dpi: float | None = None, tight: bool = False,
                announce: bool = False) -> str:
    """Write ``fig`` as a PNG at ``path`` (parent folders created) and return ``path``.

    Args:
      dpi: resolution (None: the figure's).
      tight: crop to the drawn content (``bbox_inches="tight"``).
      announce: print ``wrote <path>`` (through ``tqdm.write``, so progress bars stay intact).
    """
    if not hasattr(fig, "savefig"):
        raise TypeError(f"fig must be a matplotlib Figure; got {type(fig).__name__}")
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ValueError(f"path must be a non-empty file path; got {path!r}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=dpi if dpi is not None else "figure",
                bbox_inches="tight" if tight else None)
    if announce:
        from tqdm.auto import tqdm

        tqdm.write(f"wrote {path}")
    return path
