"""The RoI / NMS benchmark case of ``bench_ops.py`` (a Faster R-CNN box head), shared with
``bench_gpu.py``: seeded features and boxes, no flags."""
from __future__ import annotations

import numpy as np

# (batch, height, width, channels, boxes, NMS sizes) of the bench case and of --quick.
FULL_CASE = dict(b=2, h=50, w=68, c=256, k=512, nms_sizes=(1000, 2000, 5000))
QUICK_CASE = dict(b=2, h=10, w=12, c=8, k=16, nms_sizes=(100,))
OUTPUT, SCALE, SAMPLING = (7, 7), 1 / 16, 2


def make_case(seed=0, b=2, h=50, w=68, c=256, k=512, stride=16):
    rng = np.random.default_rng(seed)
    feats = rng.standard_normal((b, h, w, c), dtype=np.float32)
    img_h, img_w = h * stride, w * stride
    xy = rng.uniform(0, 1, (k, 2)) * [img_w, img_h]
    wh = np.exp(rng.uniform(np.log(16), np.log(600), (k, 2)))
    boxes = np.concatenate([xy, np.minimum(xy + wh, [img_w, img_h])], 1).astype(np.float32)
    idx = np.repeat(np.arange(b), k // b).astype(np.int32)
    return feats, boxes, idx


def nms_case(n, seed=0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 800, (n, 2))
    wh = np.exp(rng.uniform(np.log(8), np.log(300), (n, 2)))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    return boxes, rng.random(n).astype(np.float32)
