"""PyTorch-rule bilinear / bicubic interpolation (align_corners=False, no anti-aliasing):
hand-computed taps, a float64 loop over PyTorch's formula, and PyTorch itself when present."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from vai_jax.ops.interpolate import axis_taps, cubic_weights, interpolate

HAS_TORCH = importlib.util.find_spec("torch") is not None


def _reference(x, oh, ow, mode):
    """float64 loop: PyTorch's source index and taps per axis, width then height."""
    def taps(n, m):
        out = []
        for o in range(m):
            src = n / m * (o + 0.5) - 0.5
            if mode == "bilinear":
                src = max(src, 0.0)
                i = min(int(np.floor(src)), n - 1)
                t = min(max(src - i, 0.0), 1.0)
                out.append([(i, 1 - t), (min(i + 1, n - 1), t)])
            else:
                i = int(np.floor(src))
                t = src - i
                a = -0.75
                near = lambda s: ((a + 2) * s - (a + 3)) * s * s + 1  # noqa: E731
                far = lambda s: ((a * s - 5 * a) * s + 8 * a) * s - 4 * a  # noqa: E731
                w = [far(t + 1), near(t), near(1 - t), far(2 - t)]
                out.append([(min(max(i - 1 + j, 0), n - 1), w[j]) for j in range(4)])
        return out

    x = x.astype(np.float64)
    ty, tx = taps(x.shape[1], oh), taps(x.shape[2], ow)
    out = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    for o, row in enumerate(ty):
        for p, col in enumerate(tx):
            out[:, o, p] = sum(wy * sum(wx * x[:, iy, ix] for ix, wx in col) for iy, wy in row)
    return out


def test_taps_by_hand():
    # 2 -> 4: sources -0.25 (clamped to 0), 0.25, 0.75, 1.25 (last index repeats)
    idx, w = axis_taps(2, 4, "bilinear")
    np.testing.assert_array_equal(idx, [[0, 1], [0, 1], [0, 1], [1, 1]])
    np.testing.assert_allclose(w, [[1, 0], [0.75, 0.25], [0.25, 0.75], [0.75, 0.25]])
    np.testing.assert_allclose(cubic_weights(np.float32(0.0)), [0, 1, 0, 0], atol=1e-7)
    np.testing.assert_allclose(cubic_weights(np.float32(0.5)).sum(), 1.0, atol=1e-6)


@pytest.mark.parametrize("mode,size", [("bilinear", (13, 29)), ("bilinear", (5, 4)),
                                       ("bicubic", (17, 31)), ("bicubic", (4, 6))])
def test_matches_float64_loop(mode, size):
    x = np.random.default_rng(0).standard_normal((2, 9, 11, 3)).astype(np.float32)
    ours = np.asarray(interpolate(x, size, mode=mode))
    np.testing.assert_allclose(ours, _reference(x, *size, mode), atol=2e-5, rtol=0)


def test_scale_factor_and_errors():
    x = np.random.default_rng(1).standard_normal((1, 7, 5, 2)).astype(np.float32)
    assert interpolate(x, None, scale_factor=2.0).shape == (1, 14, 10, 2)
    with pytest.raises(ValueError, match="size"):
        interpolate(x, (0, 3))
    with pytest.raises(ValueError, match="mode"):
        interpolate(x, (3, 3), mode="nearest")


@pytest.mark.skipif(not HAS_TORCH, reason="needs torch")
@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_matches_torch(mode):
    import torch
    import torch.nn.functional as F

    x = np.random.default_rng(2).standard_normal((2, 37, 51, 3)).astype(np.float32)
    ref = F.interpolate(torch.from_numpy(x.transpose(0, 3, 1, 2)), size=(80, 23), mode=mode,
                        align_corners=False).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(np.asarray(interpolate(x, (80, 23), mode=mode)), ref, atol=2e-6,
                               rtol=0)
