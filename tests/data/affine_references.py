"""Independent references shared by the affine-map and transform tests: explicit per-pixel
float64 loops for the warps, a record with masks / boxes / keypoints, intensity centroids."""
import math

import numpy as np

from vai_jax.data.affine import masks_to_boxes


def bilinear_reference(image, matrix, out_size, fill):
    """Slow float64 reference: loop over output pixels, 4 taps, fill outside."""
    h, w, c = image.shape
    inv = np.linalg.inv(np.asarray(matrix, np.float64))
    out = np.zeros(out_size + (c,), np.float64)

    def tap(i, j):
        return image[i, j].astype(np.float64) if (0 <= i < h and 0 <= j < w) else np.full(c, float(fill))

    for i in range(out_size[0]):
        for j in range(out_size[1]):
            sx, sy, _ = inv @ np.array([j + 0.5, i + 0.5, 1.0])
            u, v = sx - 0.5, sy - 0.5
            j0, i0 = math.floor(u), math.floor(v)
            a, b = u - j0, v - i0
            out[i, j] = ((1 - a) * (1 - b) * tap(i0, j0) + a * (1 - b) * tap(i0, j0 + 1)
                         + (1 - a) * b * tap(i0 + 1, j0) + a * b * tap(i0 + 1, j0 + 1))
    return out


def nearest_reference(masks, matrix, out_size):
    m_, h, w = masks.shape
    inv = np.linalg.inv(np.asarray(matrix, np.float64))
    out = np.zeros((m_,) + out_size, masks.dtype)
    for i in range(out_size[0]):
        for j in range(out_size[1]):
            sx, sy, _ = inv @ np.array([j + 0.5, i + 0.5, 1.0])
            jj, ii = math.floor(sx), math.floor(sy)
            if 0 <= ii < h and 0 <= jj < w:
                out[:, i, j] = masks[:, ii, jj]
    return out


def record(rng, h=20, w=24):
    """Image + two objects with elliptical masks, their enclosing boxes and 4 keypoints each."""
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    masks = np.stack([
        ((xx - 7) / 4) ** 2 + ((yy - 8) / 3) ** 2 <= 1,
        ((xx - 16) / 3) ** 2 + ((yy - 13) / 5) ** 2 <= 1,
    ])
    boxes, _ = masks_to_boxes(masks)
    kp = np.array([
        [[5.5, 8.5, 2], [9.5, 8.5, 2], [7.5, 6.5, 1], [0.0, 0.0, 0]],
        [[14.5, 12.5, 2], [17.5, 12.5, 2], [16.5, 9.5, 2], [16.5, 16.5, 1]],
    ], np.float32)
    return {
        "image": rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8),
        "boxes": boxes,
        "classes": np.array([1, 2], np.int32),
        "masks": masks,
        "keypoints": kp,
        "label": np.int32(3),
    }


FLIP_PAIRS = ((0, 1),)  # keypoint 0 = "left", 1 = "right"


def blob_image(h, w, centres, sigma=1.6):
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    img = np.zeros((h, w), np.float64)
    for cx, cy in centres:
        img += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
    return img


def centroid(img, cx, cy, radius=5.0):
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]] + 0.5
    sel = (xx - cx) ** 2 + (yy - cy) ** 2 <= radius**2
    wgt = img * sel
    return (wgt * xx).sum() / wgt.sum(), (wgt * yy).sum() / wgt.sum()
