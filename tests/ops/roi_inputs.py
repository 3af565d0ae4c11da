"""Inputs shared by the RoI op tests: feature maps, boxes that probe every boundary rule, and
the torchvision reference (skipped when torch + torchvision are absent)."""
import numpy as np
import pytest

B, H, W, C = 2, 6, 7, 2


def torchvision():
    try:
        import torch
        import torchvision

        torchvision.ops.roi_align  # noqa: B018
    except Exception as e:  # ImportError, or a build whose C++ ops do not load
        pytest.skip(f"torchvision unavailable: {type(e).__name__}: {e}")
    return torch, torchvision


def features(seed=0, shape=(B, H, W, C)):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def boxes(seed=0, scale=1.0):
    """Boxes in input pixels covering inside / across / outside the map, tiny, huge, empty."""
    rng = np.random.default_rng(seed)
    hh, ww = H / scale, W / scale
    out = []
    for _ in range(6):  # inside
        x1, y1 = rng.uniform(0, ww * 0.7), rng.uniform(0, hh * 0.7)
        out.append([x1, y1, x1 + rng.uniform(0.2, ww - x1), y1 + rng.uniform(0.2, hh - y1)])
    for _ in range(3):  # across the border
        x1, y1 = rng.uniform(-ww * 0.5, ww * 0.8), rng.uniform(-hh * 0.5, hh * 0.8)
        out.append([x1, y1, x1 + rng.uniform(0.5, ww), y1 + rng.uniform(0.5, hh)])
    out.append([ww + 2 / scale, 1, ww + 4 / scale, hh])  # fully outside (right)
    out.append([-3 / scale, -3 / scale, -1.5 / scale, -1.2 / scale])  # fully outside (top-left)
    out.append([1.3, 2.1, 1.3 + 1e-3, 2.1 + 2e-3])  # tiny
    out.append([-4 * ww, -3 * hh, 5 * ww, 4 * hh])  # huge (adaptive: many samples per bin)
    out.append([2.0, 1.0, 2.0, 3.5])  # zero width
    out.append([1.5, 1.5, 1.5, 1.5])  # a point
    out.append([0.0, 0.0, 14.0 / scale / 2, 14.0 / scale / 2])  # integer ratios (exact ceil)
    return np.asarray(out, np.float32)


def tv_inputs(torch, f, boxes, idx):
    tf = torch.from_numpy(np.ascontiguousarray(f.transpose(0, 3, 1, 2)))
    rois = torch.from_numpy(np.concatenate([np.asarray(idx, np.float32)[:, None], boxes], 1))
    return tf, rois
