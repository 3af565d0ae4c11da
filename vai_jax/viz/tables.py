"""Markdown tables (GitHub flavour) for reports and terminal output."""
from __future__ import annotations

from typing import Iterable, Sequence

_RULES = {"l": "---", "r": "---:", "c": ":---:"}


def markdown_table(header: Sequence[str], rows: Iterable[Sequence], *,
                   align: str | None = None) -> str:
    """One line per row, cells written with ``str``; no trailing newline.

    Args:
      header: the column titles.
      rows: sequences of cells, each as long as ``header``.
      align: one letter per column, ``l`` (left), ``r`` (right) or ``c`` (centre); ``None``
        leaves the alignment to the renderer (``---``).
    """
    header = [str(h) for h in header]
    if align is None:
        rules = ["---"] * len(header)
    else:
        if len(align) != len(header) or set(align) - set(_RULES):
            raise ValueError(f"align must have one of 'l', 'r', 'c' per column ({len(header)}); "
                             f"got {align!r}")
        rules = [_RULES[a] for a in align]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rules) + "|"]
    for i, row in enumerate(rows):
        cells = [str(c) for c in row]
        if len(cells) != len(header):
            raise ValueError(f"rows[{i}] has {len(cells)} cells; the header has {len(header)}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
