r"""RoIAlign / RoIPool / NMS of vai_jax.ops against torchvision's compiled CPU kernels.

  pip install -e '.[ref]'   # torch + torchvision, for their rows
  python experiments/bench_ops.py --workdir workdir/benchmarks [--repeats 5] [--frcnn] [--quick]

Case (a Faster R-CNN box head): features 2x50x68x256 float32, 512 boxes (sides 16-600 px,
stride 16), 7x7 output, sampling 2, ``aligned=False``; NMS (threshold 0.7, at most 1,000 kept)
on 1,000-5,000 boxes. Prints a table of the median wall time in ms over ``--repeats`` rounds
after one warm-up (compilation) and writes ``<workdir>/bench_ops.json``. Every row is timed once
per round, JAX and torchvision rows in one process, so that all rows see the same load: compare
rows of one run. ``fwd`` rows time the op alone (output materialised); ``fwd+bwd`` rows time
``jax.value_and_grad`` of ``sum(op(features) * cotangent)`` and torchvision's
``(op(x) * ct).sum().backward()``.

RoIAlign formulations:

* ``gather-separable`` - vai_jax.ops.roi_align for ``sampling_ratio > 0``: per-axis (index,
  weight) slots, fused gathers summed over row-slot x column-slot pairs (also batched, and for
  adaptive sampling with a static ``max_sampling``). Its backward (custom VJP) loops over chunks
  of RoIs, one scatter-add of all slot pairs per chunk; ``chunk=N`` rows vary the chunk size
  (4 by default for sampling 2); ``autodiff`` is XLA's autodiff of the gathers (16 scatter-adds
  of ``[K, oh, ow, C]``);
* ``gather-4corner`` - the usual JAX port: 4 corner gathers per explicit sample, materialised;
* ``dense-separable`` - closed-form per-RoI interpolation matrices and two matrix products (the
  image chosen by a one-hot factor for flat boxes); the default for exact adaptive sampling.

RoIPool formulations: ``scan`` (the default) - RoIs sorted by bin size, ``chunk`` at a time, a
loop over bin offsets keeping the running maximum (differentiated, a second scan finds the
argmax and the backward scatter-adds there); ``sparse-table`` - a 2-D sparse table of maxima
(``floor(log2 H + 1) * floor(log2 W + 1)`` copies of the features), four gathers per bin,
autodiff backward.

``--frcnn`` also times one training step of torchvision's Faster R-CNN (MobileNetV3-FPN, 2
images of 320x320, random weights) to put the RoI ops' cost in context. ``--quick`` runs the
default formulations on a tiny case once (a smoke test of seconds, no meaningful times).
"""
from __future__ import annotations

import json
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from tqdm import tqdm

from experiments.bench_cases import (FULL_CASE, OUTPUT, QUICK_CASE, SAMPLING, SCALE,
                                     make_case, nms_case)
from vai_jax.analysis.timing import machine_info
from vai_jax.ops import nms as vnms
from vai_jax.ops import roi_align, roi_align_batched, roi_pool
from vai_jax.ops.roi_align import (_align_weights, _apply_gather, _apply_separable,
                                   _axis_samples, _gather_sum)
from vai_jax.ops.roi_pool import _pool_bounds, _roi_pool_impl
from vai_jax.viz.tables import markdown_table

_WORKDIR = flags.DEFINE_string("workdir", "workdir/benchmarks", "Where bench_ops.json is written.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed rounds (the median is reported).",
                                lower_bound=1)
_FRCNN = flags.DEFINE_bool("frcnn", False, "Also time a torchvision Faster R-CNN training step.")
_QUICK = flags.DEFINE_bool("quick", False, "Tiny case, default formulations, one round.")



def interleaved_median_ms(cases, repeats):
    """``{name: fn}`` -> ``{name: median ms}``. Every case is warmed up (compiled) once, then
    timed once per round for ``repeats`` rounds, so that all rows (JAX and torchvision) see the
    same machine load."""
    for fn in tqdm(cases.values(), desc="compile/warm-up", leave=False):
        fn()
    times = {name: [] for name in cases}
    for _ in tqdm(range(repeats), desc="rounds", leave=False):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: float(np.median(t)) for name, t in times.items()}


def median_ms(fn, repeats):
    fn()  # compile / warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def _block(x):
    return jax.block_until_ready(x)


def gather_roi_align(features, boxes, box_indices, output_size, spatial_scale, sampling_ratio,
                     aligned):
    """The usual JAX port by explicit sample gathers (fixed ``sampling_ratio > 0`` only)."""
    b, h, w, c = features.shape
    oh, ow = output_size
    s = sampling_ratio
    off = 0.5 if aligned else 0.0

    def axis(lo, hi, pooled, size):
        start = lo * spatial_scale - off
        length = hi * spatial_scale - off - start
        if not aligned:
            length = jnp.maximum(length, 1.0)
        bin_size = length / pooled
        t = (jnp.arange(pooled)[:, None] + (jnp.arange(s)[None, :] + 0.5) / s).reshape(-1)
        y = start[:, None] + t[None, :] * bin_size[:, None]  # [K, P*S]
        inside = (y >= -1.0) & (y <= size)
        y = jnp.clip(y, 0, size - 1)
        y0 = jnp.floor(y)
        y1 = jnp.minimum(y0 + 1, size - 1)
        ly = y - y0
        w0 = jnp.where(inside, 1 - ly, 0)
        w1 = jnp.where(inside, ly, 0)
        return y0.astype(jnp.int32), y1.astype(jnp.int32), w0, w1

    y0, y1, wy0, wy1 = axis(boxes[:, 1], boxes[:, 3], oh, h)
    x0, x1, wx0, wx1 = axis(boxes[:, 0], boxes[:, 2], ow, w)
    flat = features.reshape(b * h * w, c)
    base = (box_indices * h * w)[:, None, None]
    out = 0
    for yi, wy in ((y0, wy0), (y1, wy1)):
        for xi, wx in ((x0, wx0), (x1, wx1)):
            idx = base + yi[:, :, None] * w + xi[:, None, :]  # [K, oh*S, ow*S]
            wgt = wy[:, :, None] * wx[:, None, :]
            out = out + jnp.take(flat, idx, axis=0) * wgt[..., None]
    k = boxes.shape[0]
    return out.reshape(k, oh, s, ow, s, c).mean(axis=(2, 4))


def sparse_table_roi_pool(features, boxes, box_indices, output_size, spatial_scale):
    """RoIPool from a 2-D sparse table of maxima over power-of-two windows, four gathers per
    bin (exact; autodiff backward)."""
    nb, h, w, _ = features.shape
    oh, ow = output_size
    neg = jnp.asarray(-jnp.inf, features.dtype)

    def shift(x, d, axis):
        pad = [(0, 0)] * x.ndim
        pad[axis] = (0, d)
        return jax.lax.slice_in_dim(jnp.pad(x, pad, constant_values=neg), d, d + x.shape[axis],
                                    axis=axis)

    cols = [features]
    for j in range(1, int(math.log2(w)) + 1):
        cols.append(jnp.maximum(cols[-1], shift(cols[-1], 2 ** (j - 1), 2)))
    rows = [jnp.stack(cols)]  # [nw, B, H, W, C]
    for i in range(1, int(math.log2(h)) + 1):
        rows.append(jnp.maximum(rows[-1], shift(rows[-1], 2 ** (i - 1), 2)))
    table = jnp.stack(rows)  # [nh, nw, B, H, W, C]
    ys, ye = _pool_bounds(boxes[:, 1], boxes[:, 3], oh, h, spatial_scale)
    xs, xe = _pool_bounds(boxes[:, 0], boxes[:, 2], ow, w, spatial_scale)
    empty = (ye <= ys)[:, :, None] | (xe <= xs)[:, None, :]
    log2 = lambda n: (31 - jax.lax.clz(n.astype(jnp.int32))).astype(jnp.int32)
    lh, lw = log2(jnp.maximum(ye - ys, 1)), log2(jnp.maximum(xe - xs, 1))
    y_hi, x_hi = jnp.maximum(ye - (1 << lh), 0), jnp.maximum(xe - (1 << lw), 0)
    b = jnp.clip(box_indices, 0, nb - 1)[:, None, None]
    yy = (jnp.minimum(ys, h - 1), jnp.minimum(y_hi, h - 1))
    xx = (jnp.minimum(xs, w - 1), jnp.minimum(x_hi, w - 1))
    vals = [table[lh[:, :, None], lw[:, None, :], b, y[:, :, None], x[:, None, :]]
            for y in yy for x in xx]
    m = jnp.maximum(jnp.maximum(vals[0], vals[1]), jnp.maximum(vals[2], vals[3]))
    return jnp.where(empty[..., None], jnp.zeros((), features.dtype), m)


def jax_cases(case, *, defaults_only=False):
    """``{row name: zero-argument callable}`` for the JAX rows (each blocks until done)."""
    b, h, w, c, k = (case[x] for x in "bhwck")
    feats, boxes, idx = make_case(b=b, h=h, w=w, c=c, k=k)
    f, bx, bi = jnp.asarray(feats), jnp.asarray(boxes), jnp.asarray(idx)
    oh, ow = OUTPUT
    ct = jnp.asarray(np.random.default_rng(1).standard_normal((k, oh, ow, c), dtype=np.float32))

    def fb(fn):
        loss = lambda f_, ct_: jnp.sum(fn(f_) * ct_)
        return jax.jit(jax.value_and_grad(loss))

    def dense(f_, sampling):
        wy, wx = _align_weights(bx, oh, ow, h, w, SCALE, sampling, False)
        return _apply_separable(f_, wy, wx, bi)

    iy, wy = _axis_samples(bx[:, 1], bx[:, 3], oh, h, SAMPLING, False, SCALE, SAMPLING)
    ix, wx = _axis_samples(bx[:, 0], bx[:, 2], ow, w, SAMPLING, False, SCALE, SAMPLING)
    batched = lambda: bx.reshape(b, k // b, 4)

    aligns = {
        "gather-separable (default, S>0; custom VJP chunk=4)": lambda f_: roi_align(
            f_, bx, bi, OUTPUT, spatial_scale=SCALE, sampling_ratio=SAMPLING, aligned=False),
        "gather-separable, autodiff backward (16 scatters)": lambda f_: _gather_sum(
            f_, iy, wy, ix, wx, bi),
        "gather-separable, custom VJP chunk=1": lambda f_: _apply_gather(
            f_, iy, wy, ix, wx, bi, 1),
        "gather-separable, custom VJP chunk=16": lambda f_: _apply_gather(
            f_, iy, wy, ix, wx, bi, 16),
        f"gather-separable, custom VJP chunk={k} (one scatter)": lambda f_: _apply_gather(
            f_, iy, wy, ix, wx, bi, k),
        "gather-4corner": lambda f_: gather_roi_align(f_, bx, bi, OUTPUT, SCALE, SAMPLING,
                                                      False),
        "dense-separable": lambda f_: dense(f_, SAMPLING),
        "gather-separable batched [B,R,4]": lambda f_: roi_align_batched(
            f_, batched(), OUTPUT, spatial_scale=SCALE, sampling_ratio=SAMPLING,
            aligned=False).reshape(k, oh, ow, c),
        "dense-separable batched adaptive": lambda f_: roi_align_batched(
            f_, batched(), OUTPUT, spatial_scale=SCALE, sampling_ratio=-1,
            aligned=False).reshape(k, oh, ow, c),
        "gather adaptive max_sampling=8": lambda f_: roi_align(
            f_, bx, bi, OUTPUT, spatial_scale=SCALE, sampling_ratio=-1, aligned=False,
            max_sampling=8),
        "dense-separable adaptive (default, S<=0)": lambda f_: roi_align(
            f_, bx, bi, OUTPUT, spatial_scale=SCALE, sampling_ratio=-1, aligned=False),
    }
    pools = {
        "scan chunk=8 (default)": lambda f_: roi_pool(f_, bx, bi, OUTPUT, spatial_scale=SCALE),
        "scan chunk=1": lambda f_: _roi_pool_impl(f_, bx, bi, oh, ow, SCALE, 1),
        "scan chunk=32": lambda f_: _roi_pool_impl(f_, bx, bi, oh, ow, SCALE, 32),
        "sparse-table": lambda f_: sparse_table_roi_pool(f_, bx, bi, OUTPUT, SCALE),
    }
    rows = {}
    for op, variants in (("roi_align", aligns), ("roi_pool", pools)):
        for name, fn in variants.items():
            if defaults_only and "default" not in name:
                continue
            fwd, grad = jax.jit(fn), fb(fn)
            rows[f"{op}[{name}] fwd"] = lambda fwd=fwd: _block(fwd(f))
            rows[f"{op}[{name}] fwd+bwd"] = lambda grad=grad: _block(grad(f, ct))
    for n in case["nms_sizes"]:
        nb, ns = nms_case(n)
        fn = jax.jit(lambda b_, s_: vnms(b_, s_, 0.7, max_outputs=1000))
        rows[f"nms N={n} (thr 0.7, max 1000)"] = lambda fn=fn, nb=nb, ns=ns: _block(fn(nb, ns))
    return rows


def torch_cases(case):
    """``{row name: zero-argument callable}`` for torchvision's compiled CPU kernels."""
    import torch
    import torchvision

    b, h, w, c, k = (case[x] for x in "bhwck")
    feats, boxes, idx = make_case(b=b, h=h, w=w, c=c, k=k)
    f = torch.from_numpy(feats).permute(0, 3, 1, 2).contiguous()
    rois = torch.from_numpy(np.concatenate([idx[:, None].astype(np.float32), boxes], 1))
    ct = torch.from_numpy(np.random.default_rng(1).standard_normal((k, c) + OUTPUT,
                                                                   dtype=np.float32))
    align = lambda x: torchvision.ops.roi_align(x, rois, OUTPUT, SCALE, SAMPLING, False)
    pool = lambda x: torchvision.ops.roi_pool(x, rois, OUTPUT, SCALE)

    def fwd(op):
        with torch.no_grad():
            op(f)

    def fwd_bwd(op):
        fg = f.clone().requires_grad_(True)
        (op(fg) * ct).sum().backward()

    rows = {
        "roi_align[torchvision] fwd": lambda: fwd(align),
        "roi_align[torchvision] fwd+bwd": lambda: fwd_bwd(align),
        "roi_pool[torchvision] fwd": lambda: fwd(pool),
        "roi_pool[torchvision] fwd+bwd": lambda: fwd_bwd(pool),
    }
    for n in case["nms_sizes"]:
        nb, ns = nms_case(n)
        tb, ts = torch.from_numpy(nb), torch.from_numpy(ns)
        rows[f"nms[torchvision] N={n}"] = lambda tb=tb, ts=ts: torchvision.ops.nms(tb, ts,
                                                                                 0.7)[:1000]
    return rows


def frcnn_step_ms(repeats):
    import torch
    import torchvision

    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=91)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    images = [torch.rand(3, 320, 320) for _ in range(2)]
    targets = []
    for _ in range(2):
        xy = rng.uniform(0, 200, (5, 2))
        bx = np.concatenate([xy, xy + rng.uniform(20, 110, (5, 2))], 1).astype(np.float32)
        targets.append({"boxes": torch.from_numpy(bx),
                        "labels": torch.from_numpy(rng.integers(1, 91, 5))})

    def step():
        opt.zero_grad()
        losses = model(images, targets)
        sum(losses.values()).backward()
        opt.step()

    return {"faster_rcnn_mobilenet_v3_320_fpn train step (2 imgs)": median_ms(step, repeats)}


def _torchvision_version():
    try:
        import torchvision

        return torchvision.__version__
    except Exception:  # noqa: BLE001 - absent or broken install
        return None


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    case = QUICK_CASE if _QUICK.value else FULL_CASE
    repeats = 1 if _QUICK.value else _REPEATS.value
    cases = jax_cases(case, defaults_only=_QUICK.value)
    try:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        cases.update(torch_cases(case))
    except Exception as e:  # torchvision missing or its kernels unavailable
        print(f"torchvision not measured: {type(e).__name__}: {e}")
    machine_before = machine_info()
    rows = interleaved_median_ms(cases, repeats)
    load_after = machine_info()["load_average"]
    if _FRCNN.value:
        try:
            rows.update(frcnn_step_ms(repeats))
        except Exception as e:  # torchvision missing or broken
            print(f"Faster R-CNN step not measured: {type(e).__name__}: {e}")
    print(markdown_table(["case", "median ms"], [[k, f"{v:.1f}"] for k, v in rows.items()],
                         align="lr"))
    b, h, w, c, k = (case[x] for x in "bhwck")
    meta = dict(machine_before, load_average_after=load_after,
                torchvision=_torchvision_version(),
                timing=f"median of {repeats} interleaved rounds (all rows timed once per round)",
                case=f"features {b}x{h}x{w}x{c} f32, {k} boxes, {OUTPUT[0]}x{OUTPUT[1]}, "
                     f"sampling {SAMPLING}, scale 1/{round(1 / SCALE)}, aligned=False")
    os.makedirs(_WORKDIR.value, exist_ok=True)
    path = os.path.join(_WORKDIR.value, "bench_ops.json")
    with open(path, "w") as fh:
        json.dump({"meta": meta, "median_ms": rows}, fh, indent=2)
    print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main)
