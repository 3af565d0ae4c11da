r"""One GPU benchmark of the library: throughput and model FLOP utilisation where MLPerf-class
figures exist, and the detection ops against torchvision's CUDA kernels when torch is there.

  python experiments/bench_gpu.py --workdir workdir/benchmarks          # on a GPU machine
  python experiments/bench_gpu.py --workdir /tmp/smoke --smoke           # anywhere, tiny sizes

Sections (``SECTIONS``), each on the first device, timed after a warm-up (compilation):

* ``resnet50_train``: ResNet-50 training steps at batch 256, 224x224, bfloat16 compute
  (float32 parameters), SGD-momentum, the library's ``make_train_step`` jitted by
  ``data_parallel`` (state donated), a synthetic batch already on the device; images/s and the
  model FLOP utilisation ``images/s * 3 * 2 * MACs(224) / peak`` against the chip's dense
  bfloat16 peak (``PEAK_BF16_TFLOPS``, by device kind);
* ``resnet50_inference``: forward passes at batch 256, bfloat16; images/s and utilisation;
* ``roi_ops``: RoIAlign and RoIPool forward and forward+backward on the case of
  ``experiments/bench_ops.py`` (features 2x50x68x256 float32, 512 boxes, 7x7, sampling 2,
  ``aligned=False``), with each op's loop plan (:func:`vai_jax.ops._roi_common.loop_plan`):
  the backend's default and the other one, and torchvision's CUDA kernels when importable;
* ``nms``: NMS of 1,000 / 5,000 / 20,000 boxes (threshold 0.7, at most 1,000 kept), and
  torchvision's;
* ``soft_argmax``: integral-regression decoding of 64 x 17 heatmaps of 64x48, forward and
  forward+backward;
* ``faster_rcnn_train``: training steps of the detection experiment's Faster R-CNN (its
  default config) on 64 of its 64x64 images.

Op rows give the median of ``--repeats`` calls (each blocked until done); training and
inference rows the mean over ``--steps`` steps dispatched back to back. Writes
``<workdir>/bench_gpu.json`` (rows, device, peak, versions, per-section seconds) and
``bench_gpu.md``. A section that would start after ``--max_minutes`` is skipped and listed; a
section that fails is reported (traceback, ``errors`` in the JSON, exit status 1) and the
others still run.
On a machine without a GPU it prints that and stops, unless ``--smoke``: every section at tiny
sizes (a ResNet-50 of one unit per stage and 8 channels at 32x32, batch 2; the op cases of
``bench_ops.py --quick``), one timed call each -- a test of the script, not a measurement.
"""
from __future__ import annotations

import json
import os
import statistics
import time
import traceback

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

SECTIONS = ("resnet50_train", "resnet50_inference", "roi_ops", "nms", "soft_argmax",
            "faster_rcnn_train")
# Dense (no sparsity) bfloat16 tensor-core peaks in TFLOP/s from the vendors' data sheets,
# matched in order against jax's device_kind.
PEAK_BF16_TFLOPS = (
    ("GH200", 989.0),
    ("H200 NVL", 835.0),
    ("H200", 989.0),
    ("H100 NVL", 835.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),     # SXM5 (device_kind "NVIDIA H100 80GB HBM3")
    ("A100", 312.0),     # SXM4 and PCIe
)
FULL = dict(batch=256, image=224, steps=20, warmup=3, repeats=20, nms=(1000, 5000, 20000),
            heatmaps=(64, 64, 48, 17), detector_batch=64)
SMOKE = dict(batch=2, image=32, steps=1, warmup=1, repeats=1, nms=(100, 200, 300),
             heatmaps=(2, 8, 6, 3), detector_batch=2)

_WORKDIR = flags.DEFINE_string("workdir", "workdir/benchmarks",
                               "Where bench_gpu.json and bench_gpu.md are written.")
_SECTIONS = flags.DEFINE_list("sections", list(SECTIONS), f"Sections to run, of {SECTIONS}.")
_SMOKE = flags.DEFINE_bool("smoke", False, "Tiny sizes, one call each, on any backend.")
_MAX_MINUTES = flags.DEFINE_float("max_minutes", 7.5,
                                  "Skip the sections that would start after this many minutes.")


def peak_tflops(device_kind: str) -> float | None:
    """The dense bfloat16 peak of a device kind (``PEAK_BF16_TFLOPS``), None when unknown."""
    for key, peak in PEAK_BF16_TFLOPS:
        if key.lower() in device_kind.lower():
            return peak
    return None


def _median_ms(fn, repeats: int) -> float:
    jax.block_until_ready(fn())  # compile / warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _throughput(fn, steps: int, warmup: int) -> tuple[float, float]:
    """(seconds per call over ``steps`` calls dispatched back to back, first call seconds)."""
    t0 = time.perf_counter()
    out = fn()
    jax.block_until_ready(out)
    first = time.perf_counter() - t0
    for _ in range(warmup - 1):
        out = fn()
    jax.block_until_ready(out)
    t0 = time.perf_counter()
    for _ in range(steps):
        out = fn()
    jax.block_until_ready(out)
    return (time.perf_counter() - t0) / steps, first


def _row(section, case, value, unit, **extra):
    return {"section": section, "case": case, "value": value, "unit": unit, **extra}


# ---------------------------------------------------------------------------------- ResNet
def _resnet(sizes, smoke: bool):
    import vai_jax
    from vai_jax.analysis.summary import summarize

    small = dict(stage_sizes=(1, 1, 1, 1), widths=(8, 8, 8, 8), stem_width=8) if smoke else {}
    model = vai_jax.create_model("resnet50", num_classes=1000, dtype=jnp.bfloat16, **small)
    macs = summarize(vai_jax.create_model("resnet50", num_classes=1000, **small),
                     (1, 224, 224, 3), train=False).macs
    r = np.random.default_rng(0)
    b, s = sizes["batch"], sizes["image"]
    batch = {"image": jax.device_put(r.standard_normal((b, s, s, 3)).astype(np.float32)),
             "label": jax.device_put(r.integers(0, 1000, b).astype(np.int32))}
    return model, macs, batch


def _utilisation(images_per_s, flops_per_image, peak):
    return None if peak is None else images_per_s * flops_per_image / (peak * 1e12)


def section_resnet50_train(sizes, ctx):
    from vai_jax.classification.losses import softmax_cross_entropy
    from vai_jax.train import parallel
    from vai_jax.train.optim import make_optimizer
    from vai_jax.train.state import TrainState, init_variables
    from vai_jax.train.step import make_train_step

    model, macs, batch = _resnet(sizes, ctx["smoke"])
    s = sizes["image"]
    mesh = parallel.make_mesh(jax.devices()[:1])
    variables = init_variables(model, (1, s, s, 3), rng=jax.random.PRNGKey(0))
    tx = make_optimizer("sgd", learning_rate=0.1, momentum=0.9)
    state = [parallel.replicate(TrainState.create(apply_fn=model.apply, variables=variables,
                                                  tx=tx, rng=jax.random.PRNGKey(1)), mesh)]
    step = parallel.data_parallel(make_train_step(softmax_cross_entropy), mesh)
    batch = parallel.shard_batch(batch, mesh)

    def one():
        state[0], metrics = step(state[0], batch)
        return metrics["loss"]

    per_step, first = _throughput(one, sizes["steps"], sizes["warmup"])
    ips = sizes["batch"] / per_step
    flops = 3 * 2 * macs * (s / 224) ** 2  # forward + backward (2x) model FLOPs per image
    util = _utilisation(ips, flops, ctx["peak"])
    case = f"batch {sizes['batch']} x {s}, bfloat16"
    return [_row("resnet50_train", case, ips, "images/s", ms_per_step=per_step * 1e3,
                 first_call_s=first, model_flops_per_image=flops, utilisation=util)]


def section_resnet50_inference(sizes, ctx):
    model, macs, batch = _resnet(sizes, ctx["smoke"])
    s = sizes["image"]
    from vai_jax.train.state import init_variables

    variables = init_variables(model, (1, s, s, 3), rng=jax.random.PRNGKey(0))
    apply = jax.jit(lambda v, x: model.apply(v, x, train=False)[0])
    per_step, first = _throughput(lambda: apply(variables, batch["image"]), sizes["steps"],
                                  sizes["warmup"])
    ips = sizes["batch"] / per_step
    flops = 2 * macs * (s / 224) ** 2
    return [_row("resnet50_inference", f"batch {sizes['batch']} x {s}, bfloat16", ips,
                 "images/s", ms_per_step=per_step * 1e3, first_call_s=first,
                 model_flops_per_image=flops, utilisation=_utilisation(ips, flops, ctx["peak"]))]


# ------------------------------------------------------------------------------------- ops
def _torch_cuda():
    """torch and torchvision when importable with a CUDA device, else None."""
    try:
        import torch
        import torchvision  # noqa: F401
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def _torch_ms(torch, fn, repeats):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def section_roi_ops(sizes, ctx):
    from experiments.bench_cases import (FULL_CASE, OUTPUT, QUICK_CASE, SAMPLING, SCALE,
                                         make_case)
    from vai_jax.ops._roi_common import loop_plan
    from vai_jax.ops.roi_align import _roi_align_impl
    from vai_jax.ops.roi_pool import _roi_pool_impl

    case = QUICK_CASE if ctx["smoke"] else FULL_CASE
    b, h, w, c, k = (case[x] for x in "bhwck")
    feats, boxes, idx = make_case(b=b, h=h, w=w, c=c, k=k)
    f, bx, bi = (jax.device_put(a) for a in (feats, boxes, idx))
    oh, ow = OUTPUT
    ct = jax.device_put(np.random.default_rng(1).standard_normal((k, oh, ow, c)).astype(np.float32))
    default = loop_plan()
    ops = {"roi_align": lambda x, plan: _roi_align_impl(x, bx, bi, oh, ow, SCALE, SAMPLING, False,
                                                        None, plan=plan),
           "roi_pool": lambda x, plan: _roi_pool_impl(x, bx, bi, oh, ow, SCALE, plan=plan)}
    label = f"{b}x{h}x{w}x{c} f32, {k} boxes, {oh}x{ow}"
    rows = []
    for name, op in ops.items():
        for plan in (default, "cpu" if default == "accelerator" else "accelerator"):
            fwd = jax.jit(lambda x, op=op, plan=plan: op(x, plan))
            both = jax.jit(jax.value_and_grad(lambda x, op=op, plan=plan: jnp.sum(op(x, plan) * ct)))
            tag = f"plan {plan}" + (" (default)" if plan == default else "")
            rows.append(_row("roi_ops", f"{name} fwd, {tag}", _median_ms(lambda: fwd(f), sizes["repeats"]),
                             "ms", input=label))
            rows.append(_row("roi_ops", f"{name} fwd+bwd, {tag}",
                             _median_ms(lambda: both(f), sizes["repeats"]), "ms", input=label))
    torch = _torch_cuda()
    if torch is not None:
        from torchvision import ops as tv

        x = torch.from_numpy(feats).permute(0, 3, 1, 2).contiguous().cuda().requires_grad_(True)
        rois = torch.from_numpy(np.concatenate([idx[:, None].astype(np.float32), boxes], 1)).cuda()
        g = torch.from_numpy(np.asarray(ct)).permute(0, 3, 1, 2).contiguous().cuda()
        tv_ops = {"roi_align": lambda: tv.roi_align(x, rois, (oh, ow), SCALE, SAMPLING, False),
                  "roi_pool": lambda: tv.roi_pool(x, rois, (oh, ow), SCALE)}
        for name, op in tv_ops.items():
            with torch.no_grad():
                rows.append(_row("roi_ops", f"{name} fwd, torchvision CUDA",
                                 _torch_ms(torch, op, sizes["repeats"]), "ms", input=label))
            rows.append(_row("roi_ops", f"{name} fwd+bwd, torchvision CUDA",
                             _torch_ms(torch, lambda op=op: (op() * g).sum().backward(),
                                       sizes["repeats"]), "ms", input=label))
    return rows


def section_nms(sizes, ctx):
    from experiments.bench_cases import nms_case
    from vai_jax.ops import nms

    torch = _torch_cuda()
    rows = []
    for n in sizes["nms"]:
        boxes, scores = (jax.device_put(a) for a in nms_case(n))
        fn = jax.jit(lambda bx, sc: nms(bx, sc, 0.7, max_outputs=1000))
        rows.append(_row("nms", f"N = {n:,}, vai_jax", _median_ms(lambda: fn(boxes, scores),
                                                                   sizes["repeats"]), "ms"))
        if torch is not None:
            from torchvision.ops import nms as tv_nms

            tb, ts = (torch.from_numpy(np.asarray(a)).cuda() for a in (boxes, scores))
            rows.append(_row("nms", f"N = {n:,}, torchvision CUDA",
                             _torch_ms(torch, lambda: tv_nms(tb, ts, 0.7)[:1000],
                                       sizes["repeats"]), "ms"))
    return rows


def section_soft_argmax(sizes, ctx):
    from vai_jax.ops import soft_argmax

    shape = sizes["heatmaps"]
    hm = jax.device_put(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    fwd = jax.jit(lambda x: soft_argmax(x, beta=10.0))
    both = jax.jit(jax.value_and_grad(lambda x: jnp.sum(soft_argmax(x, beta=10.0) ** 2)))
    label = "heatmaps " + "x".join(map(str, shape))
    return [_row("soft_argmax", f"fwd, {label}", _median_ms(lambda: fwd(hm), sizes["repeats"]),
                 "ms"),
            _row("soft_argmax", f"fwd+bwd, {label}", _median_ms(lambda: both(hm),
                                                                sizes["repeats"]), "ms")]


def section_faster_rcnn_train(sizes, ctx):
    from experiments.bench_pairs import detector_batch
    from experiments.detection.configs.default import get_config
    from experiments.detection.train import build_model
    from vai_jax.detection.inputs import detection_preprocess
    from vai_jax.detection.losses import detection_loss
    from vai_jax.train import parallel
    from vai_jax.train.optim import make_optimizer
    from vai_jax.train.state import TrainState
    from vai_jax.train.step import make_train_step

    cfg = get_config("runlocal" if ctx["smoke"] else None)
    model = build_model(cfg.model, "faster_rcnn", 6)
    s, b = cfg.image_size, sizes["detector_batch"]
    variables = jax.jit(lambda r: model.init(r, {"image": jnp.zeros((1, s, s, 3))},
                                             train=False))(jax.random.PRNGKey(0))
    mesh = parallel.make_mesh(jax.devices()[:1])
    tx = make_optimizer("sgd", learning_rate=0.01, momentum=0.9)
    state = [parallel.replicate(TrainState.create(apply_fn=model.apply, variables=variables,
                                                  tx=tx, rng=jax.random.PRNGKey(1)), mesh)]
    step = parallel.data_parallel(make_train_step(detection_loss,
                                                  preprocess_fn=detection_preprocess), mesh)
    batch = parallel.shard_batch(detector_batch(dict(batch_size=b, image_size=s,
                                                     num_classes=6)), mesh)

    def one():
        state[0], metrics = step(state[0], batch)
        return metrics["loss"]

    per_step, first = _throughput(one, sizes["steps"], sizes["warmup"])
    return [_row("faster_rcnn_train", f"detection experiment's model, batch {b} x {s}",
                 b / per_step, "images/s", ms_per_step=per_step * 1e3, first_call_s=first)]


def _format(row) -> list:
    util = row.get("utilisation")
    extra = []
    if "ms_per_step" in row:
        extra.append(f"{row['ms_per_step']:.1f} ms/step")
    if util is not None:
        extra.append(f"{100 * util:.1f}% of peak")
    value = f"{row['value']:,.1f}" if row["value"] >= 10 else f"{row['value']:.3f}"
    return [row["section"], row["case"], value, row["unit"], ", ".join(extra)]


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from vai_jax.analysis.timing import machine_info
    from vai_jax.viz.tables import markdown_table

    unknown = [s for s in _SECTIONS.value if s not in SECTIONS]
    if unknown:
        raise app.UsageError(f"--sections must name entries of {SECTIONS}; got {unknown}")
    smoke = _SMOKE.value
    backend = jax.default_backend()
    if backend != "gpu" and not smoke:
        print(f"bench_gpu: no GPU here (jax.default_backend() is {backend!r}, devices "
              f"{jax.devices()}). Run it on a machine with a CUDA GPU and jax[cuda12] installed; "
              f"--smoke runs every section at tiny sizes on any backend (no meaningful times).")
        return 0
    sizes = SMOKE if smoke else FULL
    device = jax.devices()[0]
    ctx = {"smoke": smoke, "peak": peak_tflops(device.device_kind)}
    start = time.perf_counter()
    rows, seconds, skipped, errors = [], {}, [], {}
    for name in _SECTIONS.value:
        if time.perf_counter() - start > 60 * _MAX_MINUTES.value:
            skipped.append(name)
            continue
        t0 = time.perf_counter()
        try:
            rows += globals()[f"section_{name}"](sizes, ctx)
        except Exception as e:  # noqa: BLE001 -- a broken section must not cost the others
            errors[name] = f"{type(e).__name__}: {e}"
            traceback.print_exc()
        seconds[name] = time.perf_counter() - t0
        print(f"{name}: {seconds[name]:.1f} s" + (" FAILED" if name in errors else ""),
              flush=True)
    text = markdown_table(["section", "case", "value", "unit", "notes"],
                          [_format(r) for r in rows], align="llrll")
    head = (f"{device.device_kind} ({backend}), dense bfloat16 peak "
            f"{ctx['peak'] or 'unknown'} TFLOP/s, jax {jax.__version__}"
            + (", SMOKE sizes: not a measurement" if smoke else ""))
    print(head)
    print(text)
    if skipped:
        print(f"skipped after {_MAX_MINUTES.value} min: {', '.join(skipped)}")
    for name, err in errors.items():
        print(f"{name} failed: {err}")
    os.makedirs(_WORKDIR.value, exist_ok=True)
    path = os.path.join(_WORKDIR.value, "bench_gpu.json")
    with open(path, "w") as f:
        json.dump({"machine": machine_info(), "device_kind": device.device_kind,
                   "peak_bf16_tflops": ctx["peak"], "smoke": smoke, "sizes": sizes,
                   "section_seconds": seconds, "skipped": skipped, "errors": errors,
                   "total_seconds": time.perf_counter() - start, "rows": rows}, f, indent=1)
    with open(os.path.join(_WORKDIR.value, "bench_gpu.md"), "w") as f:
        f.write(head + "\n\n" + text + "\n")
    print(f"wrote {path}")
    return 1 if errors else 0


if __name__ == "__main__":
    app.run(main)
