"""Slow, obviously-correct NumPy float64 references transcribed from torchvision's CPU kernels.

Loop-based on purpose (one sample, one bin, one box at a time), sharing no code with
``vai_jax.ops``: ``roi_align`` follows ``roi_align_kernel.cpp`` (``pre_calc_for_bilinear_
interpolate`` + averaging), ``roi_pool`` follows ``roi_pool_kernel.cpp`` and ``nms`` follows
``nms_kernel.cpp``. Features are NHWC here.
"""
from __future__ import annotations

import math

import numpy as np


def _bilinear(img, y, x):
    """torchvision's bilinear_interpolate on one [H, W, C] image (float64)."""
    h, w = img.shape[:2]
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return np.zeros(img.shape[2])
    y = max(y, 0.0)
    x = max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= h - 1:
        y_high = y_low = h - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= w - 1:
        x_high = x_low = w - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    return (
        hy * hx * img[y_low, x_low]
        + hy * lx * img[y_low, x_high]
        + ly * hx * img[y_high, x_low]
        + ly * lx * img[y_high, x_high]
    )


def roi_align_ref(features, boxes, box_indices, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=True):
    """[B, H, W, C], [K, 4], [K] -> [K, oh, ow, C] float64."""
    features = np.asarray(features, np.float64)
    boxes = np.asarray(boxes, np.float64)
    oh, ow = output_size
    out = np.zeros((len(boxes), oh, ow, features.shape[3]))
    off = 0.5 if aligned else 0.0
    f32 = np.float32
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        img = features[int(box_indices[k])]
        # The kernel keeps the RoI geometry in ``float`` (T): products and differences rounded
        # to float32 one operation at a time, which decides ceil() on exact ratios.
        s, o = f32(spatial_scale), f32(off)
        sw, sh = f32(x1) * s - o, f32(y1) * s - o
        ew, eh = f32(x2) * s - o, f32(y2) * s - o
        rw, rh = ew - sw, eh - sh
        if not aligned:
            rw, rh = max(rw, f32(1)), max(rh, f32(1))
        bh, bw = rh / f32(oh), rw / f32(ow)
        gh = sampling_ratio if sampling_ratio > 0 else int(math.ceil(bh))
        gw = sampling_ratio if sampling_ratio > 0 else int(math.ceil(bw))
        sw, sh, bh, bw = float(sw), float(sh), float(bh), float(bw)
        count = max(gh * gw, 1)
        for ph in range(oh):
            for pw in range(ow):
                acc = np.zeros(features.shape[3])
                for iy in range(max(gh, 0)):
                    y = sh + ph * bh + (iy + 0.5) * bh / gh
                    for ix in range(max(gw, 0)):
                        x = sw + pw * bw + (ix + 0.5) * bw / gw
                        acc += _bilinear(img, y, x)
                out[k, ph, pw] = acc / count
    return out


def roi_align_sampling_matrix(shape_hw, box, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=True):
    """Explicit linear map of one RoI: M [oh*ow, H*W] with out[:, c] = M @ feature[:, :, c].ravel().

    Built column by column by applying ``roi_align_ref`` to unit impulses.
    """
    h, w = shape_hw
    m = np.zeros((output_size[0] * output_size[1], h * w))
    for i in range(h * w):
        f = np.zeros((1, h, w, 1))
        f.flat[i] = 1.0
        m[:, i] = roi_align_ref(f, [box], [0], output_size, spatial_scale, sampling_ratio, aligned).reshape(-1)
    return m


def roi_pool_ref(features, boxes, box_indices, output_size, spatial_scale=1.0):
    """[B, H, W, C], [K, 4], [K] -> ([K, oh, ow, C] float64, argmax [K, oh, ow, C] flat h*W+w or -1)."""
    features = np.asarray(features, np.float64)
    boxes = np.asarray(boxes, np.float64)
    oh, ow = output_size
    _, h, w, c = features.shape

    def cround(v):  # C std::round, halves away from zero
        return math.floor(v + 0.5) if v >= 0 else -math.floor(-v + 0.5)

    out = np.zeros((len(boxes), oh, ow, c))
    arg = np.full((len(boxes), oh, ow, c), -1)
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        img = features[int(box_indices[k])]
        s = np.float32(spatial_scale)  # float arithmetic as in the kernel
        sw, sh = cround(float(np.float32(x1) * s)), cround(float(np.float32(y1) * s))
        ew, eh = cround(float(np.float32(x2) * s)), cround(float(np.float32(y2) * s))
        rw, rh = max(ew - sw + 1, 1), max(eh - sh + 1, 1)
        bh, bw = np.float32(rh) / np.float32(oh), np.float32(rw) / np.float32(ow)
        for ph in range(oh):
            for pw in range(ow):
                hs = min(max(int(math.floor(np.float32(ph) * bh)) + sh, 0), h)
                he = min(max(int(math.ceil(np.float32(ph + 1) * bh)) + sh, 0), h)
                ws = min(max(int(math.floor(np.float32(pw) * bw)) + sw, 0), w)
                we = min(max(int(math.ceil(np.float32(pw + 1) * bw)) + sw, 0), w)
                if he <= hs or we <= ws:
                    continue
                for ch in range(c):
                    best, idx = -np.inf, -1
                    for yy in range(hs, he):
                        for xx in range(ws, we):
                            if img[yy, xx, ch] > best:
                                best, idx = img[yy, xx, ch], yy * w + xx
                    out[k, ph, pw, ch] = best
                    arg[k, ph, pw, ch] = idx
    return out, arg


def nms_ref(boxes, scores, iou_threshold):
    """Greedy NMS as torchvision's CPU kernel: list of kept indices (stable descending sort)."""
    boxes = np.asarray(boxes, np.float64)
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))  # Python sort is stable
    suppressed = [False] * len(scores)
    keep = []
    for a, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        xi1, yi1, xi2, yi2 = boxes[i]
        area_i = (xi2 - xi1) * (yi2 - yi1)
        for j in order[a + 1:]:
            if suppressed[j]:
                continue
            xj1, yj1, xj2, yj2 = boxes[j]
            iw = max(0.0, min(xi2, xj2) - max(xi1, xj1))
            ih = max(0.0, min(yi2, yj2) - max(yi1, yj1))
            inter = iw * ih
            union = area_i + (xj2 - xj1) * (yj2 - yj1) - inter
            if union > 0 and inter / union > iou_threshold:
                suppressed[j] = True
    return keep
