"""Render the shapes data (the logic of ``main.py``): ``run(config, workdir)``."""
from __future__ import annotations

import os

from tqdm import tqdm

from vai_jax.data.shapes import ShapesDataset
from vai_jax.viz.draw import save_grid


def run(cfg, workdir: str) -> str:
    """Every record of ``ShapesDataset(**cfg.data)`` in one grid, instance masks (or the
    semantic mask with ``cfg.semantic``) over the images; returns the PNG's path."""
    if cfg.data.num_examples < 1:
        raise ValueError(f"config.data.num_examples must be >= 1; got {cfg.data.num_examples}")
    ds = ShapesDataset(**cfg.data)
    n = len(ds)
    records = [ds[i] for i in tqdm(range(n), desc="generating", disable=n < 64)]
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "shapes_grid.png")
    save_grid(records, path, show_masks=not cfg.semantic, show_semantic=cfg.semantic)
    return path
