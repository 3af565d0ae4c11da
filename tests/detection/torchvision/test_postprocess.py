"""torchvision's mask pasting and keypoint decoding with static shapes against NumPy ports of
torchvision's per-box loops (float64 interpolation with PyTorch's rule), on boxes inside, across
and outside the image, tiny and inverted."""
from __future__ import annotations

import numpy as np

from vai_jax.detection.torchvision.postprocess import (heatmaps_to_keypoints,
                                                       paste_masks_in_image)


def _taps(n_in, n_out, cubic):
    """PyTorch's taps (float64) resizing ``n_in`` to ``n_out``: list of [(index, weight)]."""
    out = []
    for o in range(n_out):
        src = n_in / n_out * (o + 0.5) - 0.5
        if not cubic:
            src = max(src, 0.0)
            i = min(int(np.floor(src)), n_in - 1)
            t = min(max(src - i, 0.0), 1.0)
            j = i + 1 if i < n_in - 1 else i
            out.append([(i, 1 - t), (j, t)] if n_in != n_out else [(o, 1.0)])
        else:
            i = min(int(np.floor(src)), n_in - 1)
            t = min(max(src - i, 0.0), 1.0)
            a = -0.75
            near = lambda s: ((a + 2) * s - (a + 3)) * s * s + 1  # noqa: E731
            far = lambda s: ((a * s - 5 * a) * s + 8 * a) * s - 4 * a  # noqa: E731
            w = [far(t + 1), near(t), near(1 - t), far(2 - t)]
            out.append([(min(max(i - 1 + k, 0), n_in - 1), w[k]) for k in range(4)])
    return out


def _resize(m, h, w, cubic=False):
    ty, tx = _taps(m.shape[0], h, cubic), _taps(m.shape[1], w, cubic)
    out = np.zeros((h, w))
    for r, row in enumerate(ty):
        for c, col in enumerate(tx):
            out[r, c] = sum(wy * sum(wx * m[iy, ix] for ix, wx in col) for iy, wy in row)
    return out


def _paste_reference(mask, box, im_h, im_w):
    m = mask.shape[0]
    padded = np.pad(mask.astype(np.float64), 1)
    scale = (m + 2) / m
    w_half, h_half = (box[2] - box[0]) * 0.5 * scale, (box[3] - box[1]) * 0.5 * scale
    x_c, y_c = (box[2] + box[0]) * 0.5, (box[3] + box[1]) * 0.5
    b = np.trunc([x_c - w_half, y_c - h_half, x_c + w_half, y_c + h_half]).astype(int)
    w, h = max(b[2] - b[0] + 1, 1), max(b[3] - b[1] + 1, 1)
    resized = _resize(padded, h, w)
    out = np.zeros((im_h, im_w))
    x0, x1 = max(b[0], 0), min(b[2] + 1, im_w)
    y0, y1 = max(b[1], 0), min(b[3] + 1, im_h)
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = resized[y0 - b[1]:y1 - b[1], x0 - b[0]:x1 - b[0]]
    return out


def test_paste_masks_in_image():
    rng = np.random.default_rng(0)
    im_h, im_w = 37, 45
    boxes = np.array([[3.2, 4.7, 20.1, 30.9], [-5.0, -3.0, 10.0, 8.0], [30.0, 20.0, 60.0, 50.0],
                      [10.0, 10.0, 10.4, 10.2], [12.0, 12.0, 11.0, 11.0], [0.0, 0.0, 45.0, 37.0],
                      [50.0, 40.0, 70.0, 60.0]], np.float32)
    masks = rng.random((len(boxes), 28, 28)).astype(np.float32)
    ours = np.asarray(paste_masks_in_image(masks, boxes, (im_h, im_w)))
    for i in range(len(boxes)):
        ref = _paste_reference(masks[i], boxes[i].astype(np.float64), im_h, im_w)
        np.testing.assert_allclose(ours[i], ref, atol=2e-6, err_msg=f"box {i}")


def test_heatmaps_to_keypoints():
    rng = np.random.default_rng(1)
    rois = np.array([[2.3, 5.1, 40.7, 33.2], [10.0, 3.0, 10.5, 3.2], [0.0, 0.0, 64.0, 48.0],
                     [20.2, 7.9, 27.0, 60.0]], np.float32)
    maps = rng.standard_normal((len(rois), 56, 56, 3)).astype(np.float32)
    ours = np.asarray(heatmaps_to_keypoints(maps, rois, (64, 64)))
    for i, (x1, y1, x2, y2) in enumerate(rois.astype(np.float64)):
        w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
        wc, hc = int(np.ceil(w)), int(np.ceil(h))
        for k in range(maps.shape[-1]):
            r = _resize(maps[i, :, :, k].astype(np.float64), hc, wc, cubic=True)
            yi, xi = np.unravel_index(np.argmax(r), r.shape)
            expected = [(xi + 0.5) * w / wc + x1, (yi + 0.5) * h / hc + y1, r[yi, xi]]
            np.testing.assert_allclose(ours[i, k], expected, rtol=1e-5, atol=1e-4,
                                       err_msg=f"roi {i} keypoint {k}")
