"""Argument checks shared by :mod:`vai_jax.ops.roi_align`, :mod:`vai_jax.ops.roi_pool` and
:mod:`vai_jax.ops.poolers`, and the choice of their loop formulation per backend."""
from __future__ import annotations

import math

import jax
import numpy as np

from vai_jax._validation import check_array, is_concrete


# How the RoI ops loop over RoIs. "cpu": chunks of a few RoIs per loop step, so that each
# step's gathers and scatter-adds stay in the CPU's cache (measured, experiments/BENCHMARKS.md);
# "accelerator": every RoI in one step (no loop: one fused gather, one scatter-add), since a
# GPU / TPU runs each loop step as separate kernels and wants the whole batch of RoIs at once.
PLANS = ("cpu", "accelerator")


def loop_plan(plan: str | None = None) -> str:
    """``plan`` if given (one of :data:`PLANS`), else ``"cpu"`` on the CPU backend and
    ``"accelerator"`` on any other (``jax.default_backend()``, read at trace time)."""
    if plan is None:
        return "cpu" if jax.default_backend() == "cpu" else "accelerator"
    if plan not in PLANS:
        raise ValueError(f"plan must be one of {PLANS} or None; got {plan!r}")
    return plan


def _output_size(output_size) -> tuple[int, int]:
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
    try:
        oh, ow = (int(s) for s in output_size)
    except (TypeError, ValueError):
        raise ValueError(f"output_size must be an int or an (oh, ow) pair; got {output_size!r}") from None
    if oh <= 0 or ow <= 0:
        raise ValueError(f"output_size must be positive; got {output_size!r}")
    return oh, ow


def _check_scale(spatial_scale) -> None:
    if is_concrete(spatial_scale):
        v = float(spatial_scale)
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"spatial_scale must be finite and > 0; got {spatial_scale!r}")


def _check_box_values(boxes, name: str) -> None:
    """Concrete boxes: finite and x2 >= x1, y2 >= y1 (equal is allowed: degenerate boxes)."""
    if not is_concrete(boxes):
        return
    b = np.asarray(boxes)
    if not np.all(np.isfinite(b)):
        raise ValueError(f"{name} must be finite; found {int(np.sum(~np.isfinite(b)))} NaN/inf value(s)")
    bad = (b[..., 2] < b[..., 0]) | (b[..., 3] < b[..., 1])
    if np.any(bad):
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} must be [x1, y1, x2, y2] with x2 >= x1 and y2 >= y1; "
            f"{int(bad.sum())} box(es) violate this, first at index {first}"
        )


def _check_roi_inputs(features, boxes, box_indices):
    features = check_array(features, "features", ndim=4, kind="floating", shape_hint="[B, H, W, C]")
    boxes = check_array(boxes, "boxes", ndim=2, last_dim=4, kind="floating", shape_hint="[K, 4]")
    box_indices = check_array(box_indices, "box_indices", ndim=1, kind="integer", shape_hint="[K]")
    if box_indices.shape[0] != boxes.shape[0]:
        raise ValueError(
            f"box_indices must have shape [K]=[{boxes.shape[0]}] to match boxes; "
            f"got {tuple(box_indices.shape)}"
        )
    _check_box_values(boxes, "boxes")
    if is_concrete(box_indices) and box_indices.shape[0]:
        bi = np.asarray(box_indices)
        nb = features.shape[0]
        if bi.min() < 0 or bi.max() >= nb:
            raise ValueError(
                f"box_indices must lie in [0, B-1]=[0, {nb - 1}] (B from features); "
                f"got values in [{int(bi.min())}, {int(bi.max())}]"
            )
    return features, boxes, box_indices

