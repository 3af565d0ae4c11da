"""Pasting box-frame masks into the image, against a per-pixel NumPy reference."""
import numpy as np
import pytest

from vai_jax.detection.postprocess import paste_masks


def _paste_np(mask, box, h, w):
    s_h, s_w = mask.shape
    x1, y1, x2, y2 = (float(v) for v in box)
    out = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            cx, cy = j + 0.5, i + 0.5
            if not (x1 <= cx < x2 and y1 <= cy < y2):
                continue
            u = np.clip((cx - x1) / (x2 - x1) * s_w - 0.5, 0, s_w - 1)
            v = np.clip((cy - y1) / (y2 - y1) * s_h - 0.5, 0, s_h - 1)
            u0, v0 = int(np.floor(u)), int(np.floor(v))
            u1, v1 = min(u0 + 1, s_w - 1), min(v0 + 1, s_h - 1)
            fu, fv = u - u0, v - v0
            out[i, j] = ((1 - fv) * ((1 - fu) * mask[v0, u0] + fu * mask[v0, u1])
                         + fv * ((1 - fu) * mask[v1, u0] + fu * mask[v1, u1]))
    return out


def test_full_mask_pastes_to_the_box_region():
    boxes = np.array([[3.0, 5.0, 17.0, 12.0], [0.0, 0.0, 24.0, 20.0], [10.2, 2.7, 13.9, 9.1]], np.float32)
    out = np.asarray(paste_masks(np.ones((3, 28, 28), np.float32), boxes, (20, 24)))
    assert out.shape == (3, 20, 24)
    jj, ii = np.meshgrid(np.arange(24) + 0.5, np.arange(20) + 0.5)
    for n, (x1, y1, x2, y2) in enumerate(boxes):
        region = (jj >= x1) & (jj < x2) & (ii >= y1) & (ii < y2)
        np.testing.assert_allclose(out[n], region.astype(np.float32), atol=1e-6)


@pytest.mark.parametrize("size", [28, 5])
def test_random_mask_matches_numpy_reference(size):
    rng = np.random.default_rng(size)
    masks = rng.uniform(size=(2, size, size)).astype(np.float32)
    boxes = np.array([[2.3, 1.1, 14.6, 11.0], [-3.0, 4.0, 9.0, 30.0]], np.float32)
    out = np.asarray(paste_masks(masks, boxes, (16, 18)))
    for n in range(2):
        np.testing.assert_allclose(out[n], _paste_np(masks[n], boxes[n], 16, 18), atol=1e-5)


def test_paste_masks_rejects_bad_shapes():
    with pytest.raises(ValueError, match="boxes"):
        paste_masks(np.ones((2, 4, 4), np.float32), np.zeros((3, 4), np.float32), (8, 8))
    with pytest.raises((ValueError, TypeError), match="masks"):
        paste_masks(np.ones((4, 4), np.float32), np.zeros((1, 4), np.float32), (8, 8))
