"""Image grids and heat-map overlays as PNG files (matplotlib Figure + Agg canvas, no pyplot).

Used by :mod:`vai_jax.analysis` (filters, activation maximisation, top patches, evidence maps).
Images are ``[H, W, 3]`` (or ``[H, W]``) float in ``[0, 1]`` or uint8; drawn in the continuous
pixel frame (``extent=(0, W, H, 0)``).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from vai_jax.viz.figures import save_figure


def _prep(image) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[-1] != 3):
        raise ValueError(f"images: each image must have shape [H, W], [H, W, 1] or [H, W, 3]; got "
                         f"{img.shape}")
    if np.issubdtype(img.dtype, np.floating):
        img = np.clip(img, 0.0, 1.0)
    return img


def _show(ax, image, title=None):
    img = _prep(image)
    h, w = img.shape[:2]
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1 if
              np.issubdtype(img.dtype, np.floating) else 255, extent=(0, w, h, 0),
              interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(str(title), fontsize=7)


def save_image_grid(images, path: str, *, ncols: int | None = None,
                    titles: Sequence[str] | None = None, title: str | None = None,
                    cell_inches: float = 1.0, dpi: int = 100) -> str:
    """Save ``images`` (``[N, H, W, 3]`` / ``[N, H, W]``, or a list of such images of any sizes)
    as one grid PNG; returns ``path``."""
    images = list(images)
    if not images:
        raise ValueError("images is empty")
    n = len(images)
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(ncols * cell_inches, nrows * cell_inches + (0.4 if title else 0)),
                 dpi=dpi)
    for k in range(nrows * ncols):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        if k < n:
            _show(ax, images[k], titles[k] if titles is not None else None)
        else:
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def save_rows_grid(rows: Mapping[str, Sequence], path: str, *, cell_inches: float = 1.0,
                   col_titles: Mapping[str, Sequence[str]] | None = None,
                   title: str | None = None, dpi: int = 100) -> str:
    """One row per entry of ``rows`` (``{row label: images}``, e.g. one per layer); rows may
    have different lengths and image sizes. Returns ``path``."""
    if not rows:
        raise ValueError("rows is empty")
    ncols = max(len(v) for v in rows.values())
    nrows = len(rows)
    fig = Figure(figsize=(ncols * cell_inches + 1.0, nrows * cell_inches + (0.4 if title else 0)),
                 dpi=dpi)
    for r, (label, images) in enumerate(rows.items()):
        for c in range(ncols):
            ax = fig.add_subplot(nrows, ncols, r * ncols + c + 1)
            if c < len(images):
                t = col_titles[label][c] if col_titles and label in col_titles else None
                _show(ax, images[c], t)
                if c == 0:
                    ax.set_ylabel(label, fontsize=7)
            else:
                ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def save_heatmap_grid(images, heatmaps, path: str, *, titles: Sequence[str] | None = None,
                      ncols: int | None = None, cmap: str = "RdBu_r", alpha: float = 0.6,
                      symmetric: bool = True, cell_inches: float = 1.6, dpi: int = 100) -> str:
    """Images with a heat map on top (each map stretched over its image, in the pixel frame).

    Args:
      images: ``[N, H, W, 3]``; heatmaps: ``[N, h, w]`` (any ``h, w``; cell ``(i, j)`` covers
        ``[j·W/w, (j+1)·W/w) x [i·H/h, (i+1)·H/h)``).
      symmetric: colour limits ``±max|map|`` per image (evidence for / against a class).
    """
    images, heatmaps = list(images), [np.asarray(h, np.float32) for h in heatmaps]
    if len(images) != len(heatmaps):
        raise ValueError(f"images and heatmaps must have equal lengths; got {len(images)}, "
                         f"{len(heatmaps)}")
    n = len(images)
    ncols = ncols or min(n, 6)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(ncols * cell_inches, nrows * cell_inches), dpi=dpi)
    for k in range(nrows * ncols):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        if k >= n:
            ax.axis("off")
            continue
        _show(ax, images[k], titles[k] if titles is not None else None)
        img = _prep(images[k])
        h, w = img.shape[:2]
        m = heatmaps[k]
        lim = float(np.max(np.abs(m))) or 1.0
        vmin, vmax = (-lim, lim) if symmetric else (float(m.min()), float(m.max()))
        ax.imshow(m, cmap=cmap, alpha=alpha, vmin=vmin, vmax=vmax, extent=(0, w, h, 0),
                  interpolation="nearest")
    fig.tight_layout()
    return save_figure(fig, path)
