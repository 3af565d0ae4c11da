"""The pose studies (the logic of ``main.py``).

``run(config, workdir)`` trains a :class:`vai_jax.pose.heads.PoseNet` per head of
``config.heads`` (backbone ``create_model(**config.backbone)``, head
``<Head>(**config.head[kind])``) with the library's training pieces (``TrainState``,
``make_train_step``, optax, ``fit``) at one budget, decodes and scores them (mean pixel error,
PCK, COCO OKS AP), repeats the heatmap and integral heads at every stride of
``config.stride_study``, measures the density head's calibration and, on the multi-object
shapes data, trains a PAF head and groups its peaks into instances. It writes
``results.json``, ``results.md`` and the figures of :mod:`experiments.pose.plots`.
"""
from __future__ import annotations

import functools
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

import vai_jax
from experiments.pose import plots
from vai_jax.analysis import count_params
from vai_jax.data.shapes import NUM_KEYPOINTS, ShapesDataset
from vai_jax.data.sources import RandomBatches
from vai_jax.ops import coords as frame
from vai_jax.ops import keypoints as kpo
from vai_jax.pose import heads, losses, paf
from vai_jax.pose import metrics as pose_metrics
from vai_jax.pose.crops import top_down_crops
from vai_jax.train import parallel
from vai_jax.train.loop import fit
from vai_jax.train.optim import make_optimizer, make_schedule
from vai_jax.train.state import TrainState, init_variables
from vai_jax.train.step import make_train_step

# The shapes skeleton as one limb set: every class's limbs are "centre -> point k".
SHAPES_LIMBS = np.array([(0, k) for k in range(1, NUM_KEYPOINTS)], np.int32)

HEADS = {"regression": heads.RegressionHead, "density": heads.DensityHead,
         "heatmap": heads.HeatmapHead, "integral": heads.IntegralHead}
SHAPES_KEYS = ("image", "keypoints", "boxes", "valid", "classes")


# ----------------------------------------------------------------------------------- data
def materialise(cfg, task: str, split: str, num_examples: int) -> dict:
    """A shapes split as in-memory arrays (``SHAPES_KEYS``)."""
    ds = ShapesDataset(task, split=split, num_examples=num_examples, image_size=cfg.image_size,
                       seed=cfg.seed)
    return ds.materialise(SHAPES_KEYS).arrays


def single_instance(arrays: dict, size: int) -> dict:
    """The one object of single-object shapes records; keypoints outside the image become
    unlabelled; ``weights`` is their visibility ``v > 0``."""
    kp = arrays["keypoints"][:, 0].astype(np.float32)
    inside = np.asarray(frame.inside_image(kp, size, size))
    kp[..., 2] = np.where(inside, kp[..., 2], 0.0)
    return {"image": arrays["image"], "keypoints": kp, "boxes": arrays["boxes"][:, 0],
            "weights": (kp[..., 2] > 0).astype(np.float32)}


def load_single_object_data(cfg):
    """(train, val, info): dicts of ``image`` uint8 ``[N, S, S, 3]``, ``keypoints``
    ``[N, K, 3]``, ``boxes`` ``[N, 4]``, ``weights`` ``[N, K]``; ``info`` has
    ``num_keypoints`` and ``sigmas`` (OKS)."""
    s = cfg.image_size
    if cfg.data == "shapes":
        train = single_instance(materialise(cfg, "keypoints", "train", cfg.num_train), s)
        val = single_instance(materialise(cfg, "keypoints", "validation", cfg.num_val), s)
        return train, val, {"num_keypoints": NUM_KEYPOINTS,
                            "sigmas": np.full(NUM_KEYPOINTS, cfg.oks_sigma)}
    if cfg.data == "coco":
        from vai_jax.data.coco import CocoSource

        c = cfg.coco
        train_src = CocoSource(c.train_json, c.train_images, with_masks=False)
        val_src = CocoSource(c.val_json or c.train_json, c.val_images or c.train_images,
                             with_masks=False)
        k = train_src.num_keypoints
        sig = (np.asarray(c.sigmas, np.float64) if len(c.sigmas) else
               pose_metrics.COCO_PERSON_SIGMAS if k == 17 else np.full(k, cfg.oks_sigma))
        crops = functools.partial(top_down_crops, image_size=s, **cfg.crops)
        return (crops(train_src, limit=cfg.num_train), crops(val_src, limit=cfg.num_val),
                {"num_keypoints": k, "sigmas": sig})
    raise ValueError(f"config.data must be 'shapes' or 'coco'; got {cfg.data!r}")


def preprocess(batch, rng, *, train):
    del rng, train
    return batch["image"].astype(jnp.float32) / 127.5 - 1.0


# ---------------------------------------------------------------------------------- models
def make_backbone(cfg):
    return vai_jax.create_model(**cfg.backbone, num_classes=0)


def feature_stride(cfg, name: str) -> int:
    """The stride of the backbone's feature map ``name``."""
    info = {i.name: i for i in make_backbone(cfg).feature_info}
    if name not in info:
        raise ValueError(f"in_features {name!r} not in the backbone's features {sorted(info)}")
    return info[name].stride


def make_model(cfg, kind: str, num_keypoints: int, heatmap_stride=None):
    """PoseNet with head ``kind`` (a key of ``HEADS``) built from ``cfg.head[kind]``."""
    if kind not in HEADS:
        raise ValueError(f"unknown head {kind!r}; use one of {sorted(HEADS)}")
    fields = cfg.head[kind]
    stride = feature_stride(cfg, fields.in_features)
    derived = {"num_keypoints": num_keypoints, "stride": stride}
    if kind in ("heatmap", "integral"):
        derived["num_deconv"] = heads.num_upsampling_steps(stride, heatmap_stride)
    return heads.PoseNet(make_backbone(cfg), HEADS[kind](**derived, **fields))


def make_loss(cfg, kind: str, heatmap_stride):
    """The train-step loss of head ``kind`` (:mod:`vai_jax.pose.losses`)."""
    if kind == "regression":
        return losses.coordinate_loss
    if kind == "density":
        return losses.density_loss
    if kind == "integral":
        return functools.partial(losses.integral_loss, stride=heatmap_stride,
                                 beta=cfg.head.integral.beta)
    return functools.partial(losses.heatmap_loss, stride=heatmap_stride, **cfg.heatmap_loss)


def train_model(cfg, model, loss_fn, train_arrays, num_steps, desc, seed_offset=0):
    """Train with the library's pieces; returns (state, FitResult, num_params, cpu_seconds)."""
    rng = jax.random.PRNGKey(cfg.seed + seed_offset)
    init_rng, state_rng = jax.random.split(rng)
    s = cfg.image_size
    variables = init_variables(model, (1, s, s, 3), rng=init_rng)
    schedule = make_schedule(**dict(cfg.schedule, warmup_steps=min(cfg.schedule.warmup_steps,
                                                                   num_steps - 1)),
                             total_steps=num_steps)
    tx = make_optimizer(**cfg.optimizer, learning_rate=schedule)
    mesh = parallel.make_mesh()
    parallel.check_batch_size(cfg.batch_size, mesh, "config.batch_size")
    state = parallel.replicate(
        TrainState.create(apply_fn=model.apply, variables=variables, tx=tx, rng=state_rng), mesh)
    step = parallel.data_parallel(make_train_step(loss_fn, preprocess_fn=preprocess), mesh)
    tqdm.write(f"--- training {desc}: {count_params(variables):,} parameters, {num_steps} steps")
    cpu0 = time.process_time()
    result = fit(state, train_step=step,
                 train_iter=RandomBatches(train_arrays, cfg.batch_size, cfg.seed + seed_offset),
                 num_steps=num_steps, batch_size=cfg.batch_size, log_every=cfg.log_every,
                 progress=cfg.progress)
    # Process CPU time (all threads, compilation included): a load-independent cost measure on
    # a shared machine, where wall-clock images/s depend on the other jobs.
    return result.state, result, count_params(variables), time.process_time() - cpu0


def predict(state, images, batch_size):
    """Run the model in inference mode over ``images``; dict of stacked NumPy outputs."""
    fn = jax.jit(lambda v, x: state.apply_fn(v, preprocess({"image": x}, None, train=False),
                                             train=False))
    variables = state.variables()
    outs = []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size]
        n = len(x)
        if n < batch_size:  # keep one compiled shape
            x = np.concatenate([x, np.repeat(x[-1:], batch_size - n, 0)])
        outs.append(jax.tree.map(lambda a: np.asarray(a)[:n], fn(variables, x)))
    return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}


def decode(out, kind, heatmap_stride, refine=None):
    """Image-pixel keypoints ``[N, K, 2]``: the head's ``coords``, or the heatmaps' arg-max
    (``refine``: None, ``"quarter"`` or ``"taylor"``)."""
    if kind in ("regression", "density", "integral"):
        return out["coords"]
    coords, _ = kpo.heatmap_argmax(out["heatmaps"], refine=refine)
    return np.asarray(frame.heatmap_to_image(coords, heatmap_stride))


def keypoint_metrics(cfg, pred, val, sigmas):
    """Mean pixel error, PCK at ``cfg.pck_alphas`` (box-size reference) and COCO OKS AP."""
    ref = pose_metrics.box_reference_size(val["boxes"])
    row = {"mean_px_error": pose_metrics.mean_pixel_error(pred, val["keypoints"])}
    for a in cfg.pck_alphas:
        row[f"pck@{a:g}"] = pose_metrics.pck(pred, val["keypoints"], alpha=a, reference=ref)
    n = len(pred)
    gt = pose_metrics.to_coco_ground_truth(val["keypoints"][:, None], val["boxes"][:, None],
                                           image_size=val["image"].shape[1:3])
    res = pose_metrics.to_coco_results(np.arange(1, n + 1), pred, np.ones(n))
    row["coco_ap"] = pose_metrics.coco_keypoint_ap(gt, res, sigmas=sigmas)["AP"]
    return row


# ----------------------------------------------------------------------------- multi-PAF
def run_multi(cfg, workdir):
    """Train a PAF head on the multi-object shapes data, group its peaks, score the groups."""
    m = cfg.multi
    s = cfg.image_size
    train = materialise(cfg, "multi_keypoints", "train", m.num_train)
    val = materialise(cfg, "multi_keypoints", "validation", m.num_val)
    fs = feature_stride(cfg, m.head.in_features)
    hstride = m.heatmap_stride
    head = heads.PAFHead(num_keypoints=NUM_KEYPOINTS, stride=fs,
                         num_deconv=heads.num_upsampling_steps(fs, hstride),
                         num_limbs=len(SHAPES_LIMBS), **m.head)
    model = heads.PoseNet(make_backbone(cfg), head)
    loss_fn = functools.partial(losses.paf_loss, skeleton=SHAPES_LIMBS, stride=hstride, **m.loss)
    arrays = {k: train[k] for k in ("image", "keypoints")}
    state, result, nparams, cpu_seconds = train_model(cfg, model, loss_fn, arrays, m.num_steps,
                                                      "PAF multi-instance", seed_offset=99)
    out = predict(state, val["image"], cfg.eval_batch_size)
    coords, scores, valid = jax.device_get(jax.jit(
        lambda h: kpo.heatmap_peaks(h, **m.peaks))(out["heatmaps"]))
    gt_kp = val["keypoints"].copy()
    gt_kp[..., 2] = np.where(gt_kp[..., 2] >= 2, 2.0, 0.0)
    stats = {"gt_keypoints": 0, "grouped_correct": 0, "detected": 0, "gt_instances": 0,
             "pred_instances": 0, "count_exact": 0}
    all_pred, all_scores, all_ids, grouped_per_image = [], [], [], []
    for i in tqdm(range(len(val["image"])), desc="group", disable=not cfg.progress):
        inst, inst_scores = paf.group_keypoints(coords[i], scores[i], valid[i], out["pafs"][i],
                                                SHAPES_LIMBS)
        inst = inst.copy()
        inst[..., :2] *= hstride
        grouped_per_image.append(inst)
        gts = [j for j in range(gt_kp.shape[1])
               if val["valid"][i, j] and (gt_kp[i, j, :, 2] > 0).sum() >= 2]
        r = pose_metrics.grouping_stats(inst, gt_kp[i, gts], val["boxes"][i, gts],
                                        coords[i] * hstride, valid[i], tolerance=m.tolerance)
        for key in stats:
            stats[key] += r[key]
        all_pred.extend(inst)
        all_scores.extend(inst_scores)
        all_ids.extend([i + 1] * len(inst))
    has = (gt_kp[..., 2] > 0).sum(-1) >= 2
    gt = pose_metrics.to_coco_ground_truth(gt_kp, val["boxes"], val["valid"] & has,
                                           image_size=(s, s))
    res = (pose_metrics.to_coco_results(np.array(all_ids), np.stack(all_pred),
                                        np.array(all_scores)) if all_pred else [])
    ap = pose_metrics.coco_keypoint_ap(gt, res, sigmas=np.full(NUM_KEYPOINTS, cfg.oks_sigma))
    summary = {
        "num_params": nparams, "train_images_per_sec": result.images_per_sec,
        "train_seconds": result.train_seconds, "train_cpu_seconds": cpu_seconds,
        "heatmap_stride": hstride,
        "grouped_keypoint_accuracy": stats["grouped_correct"] / max(stats["gt_keypoints"], 1),
        "keypoint_detection_recall": stats["detected"] / max(stats["gt_keypoints"], 1),
        "instance_count_exact": stats["count_exact"] / len(val["image"]),
        "gt_instances": stats["gt_instances"], "pred_instances": stats["pred_instances"],
        "coco_ap": ap["AP"], "coco_ap50": ap["AP50"],
    }
    plots.plot_multi(os.path.join(workdir, "pose_multi_paf.png"), val, grouped_per_image, out,
                     hstride, cfg.num_figure_images)
    return summary


# --------------------------------------------------------------------------------- tables
def markdown_table(rows, cols):
    """``cols``: (header, row -> str) pairs."""
    out = ["| " + " | ".join(c for c, _ in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(f(r) for _, f in cols) + " |")
    return "\n".join(out)


def main_table_md(rows, alphas):
    cols = [("head", lambda r: r["head"]), ("mean px error", lambda r: f"{r['mean_px_error']:.2f}")]
    cols += [(f"PCK@{a:g}", lambda r, a=a: f"{100 * r[f'pck@{a:g}']:.1f}") for a in alphas]
    cols += [("COCO AP (OKS)", lambda r: f"{r['coco_ap']:.3f}"),
             ("params", lambda r: f"{r['num_params']:,}"),
             ("train images/s", lambda r: f"{r['train_images_per_sec']:.0f}"),
             ("train images/CPU-s (incl. compile)",
              lambda r: f"{r['train_images_per_cpu_sec']:.0f}")]
    return markdown_table(rows, cols)


def stride_table_md(rows, alpha):
    return markdown_table(rows, [
        ("stride", lambda r: str(r["stride"])),
        ("heatmap", lambda r: f"{r['heatmap_size']}×{r['heatmap_size']}"),
        ("method", lambda r: r["method"]),
        ("mean px error", lambda r: f"{r['mean_px_error']:.2f}"),
        (f"PCK@{alpha:g}", lambda r: f"{100 * r[f'pck@{alpha:g}']:.1f}")])


def multi_table_md(row):
    return markdown_table([row], [
        ("grouped-keypoint accuracy", lambda r: f"{100 * r['grouped_keypoint_accuracy']:.1f}%"),
        ("keypoint recall (no grouping)", lambda r: f"{100 * r['keypoint_detection_recall']:.1f}%"),
        ("exact instance count", lambda r: f"{100 * r['instance_count_exact']:.1f}%"),
        ("COCO AP / AP50", lambda r: f"{r['coco_ap']:.3f} / {r['coco_ap50']:.3f}"),
        ("params", lambda r: f"{r['num_params']:,}"),
        ("train images/s", lambda r: f"{r['train_images_per_sec']:.0f}")])


# ------------------------------------------------------------------------------------ run
def run(cfg, workdir: str) -> dict:
    """Run every study of ``cfg``; returns (and writes to ``results.json``) the results and
    writes ``results.md`` and the figures."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    os.makedirs(workdir, exist_ok=True)
    train, val, info = load_single_object_data(cfg)
    k, sigmas = info["num_keypoints"], info["sigmas"]
    tqdm.write(f"data: {len(train['image'])} train / {len(val['image'])} val images, K={k}")
    train_arrays = {key: train[key] for key in ("image", "keypoints", "weights")}
    hs0 = cfg.heatmap_stride
    trained = {}  # (kind, stride) -> (outputs on val, FitResult, num_params, cpu_seconds)

    def get(kind, hstride):
        key = (kind, hstride if kind in ("heatmap", "integral") else None)
        if key not in trained:
            model = make_model(cfg, kind, k, hstride)
            state, result, nparams, cpu = train_model(
                cfg, model, make_loss(cfg, kind, hstride), train_arrays, cfg.num_steps,
                f"{kind}" + (f" (stride {hstride})" if key[1] else ""))
            trained[key] = (predict(state, val["image"], cfg.eval_batch_size), result, nparams,
                            cpu)
        return trained[key]

    rows, preds = [], {}
    decodings = {"regression": [("regression", None)], "density": [("density", None)],
                 "integral": [("integral", None)],
                 "heatmap": [("heatmap (arg-max)", None), ("heatmap (sub-pixel, quarter)",
                                                          "quarter"),
                             ("heatmap (sub-pixel, Taylor)", "taylor")]}
    for kind in cfg.heads:
        out, result, nparams, cpu = get(kind, hs0)
        for name, refine in decodings[kind]:
            pred = decode(out, kind, hs0, refine)
            preds[name] = pred
            rows.append({"head": name, **keypoint_metrics(cfg, pred, val, sigmas),
                         "num_params": nparams, "train_images_per_sec": result.images_per_sec,
                         "train_images_per_cpu_sec": cfg.num_steps * cfg.batch_size / cpu,
                         "train_seconds": result.train_seconds, "train_cpu_seconds": cpu})
    in_features = sorted({cfg.head[kind].in_features for kind in cfg.heads})
    md = [f"## Heads at an equal budget ({cfg.num_steps} steps × batch {cfg.batch_size}, "
          f"{cfg.backbone.name} widths {tuple(cfg.backbone.widths)}, feature "
          f"{', '.join(in_features)}, heatmap stride {hs0})", "",
          main_table_md(rows, cfg.pck_alphas), "",
          "PCK reference: max(w, h) of the object's box. Heatmap rows share one trained model "
          "(decoding differs)."]
    results = {"main_table": rows}

    names = [n for n in ("regression", "heatmap (arg-max)", "heatmap (sub-pixel, Taylor)",
                         "integral", "density") if n in preds]
    dens = trained.get(("density", None))
    plots.plot_predictions(os.path.join(workdir, "pose_predictions.png"), val,
                           {n: preds[n] for n in names}, dens[0]["log_std"] if dens else None,
                           cfg.num_figure_images)
    if ("heatmap", hs0) in trained and ("integral", hs0) in trained:
        plots.plot_heatmaps(os.path.join(workdir, "pose_heatmaps.png"), val,
                            trained[("heatmap", hs0)][0], trained[("integral", hs0)][0], hs0,
                            cfg.num_figure_images)
    plots.plot_two_maxima(os.path.join(workdir, "pose_two_maxima.png"))
    if dens:
        cal = pose_metrics.density_calibration(dens[0]["coords"], dens[0]["log_std"],
                                               val["keypoints"])
        plots.plot_density_calibration(os.path.join(workdir, "pose_density_calibration.png"),
                                       cal)
        cal = {key: v for key, v in cal.items() if key not in ("sigma", "abs_error")}
        results["density_calibration"] = cal
        md += ["", "## Density head calibration", "",
               f"Spearman ρ(σ, |error|) = {cal['spearman_sigma_vs_error']:.3f}; "
               f"|error| ≤ σ for {100 * cal['coverage_1sigma']:.1f}% (Gaussian: 68.3%), "
               f"≤ 2σ for {100 * cal['coverage_2sigma']:.1f}% (95.4%); mean σ "
               f"{cal['mean_sigma']:.2f} px vs mean |error| {cal['mean_abs_error']:.2f} px "
               "per coordinate."]

    if cfg.stride_study:
        srows = []
        for s in cfg.stride_study:
            hm_out = get("heatmap", s)[0]
            for method, refine in (("heatmap arg-max", None), ("heatmap quarter-offset",
                                                               "quarter"),
                                   ("heatmap Taylor", "taylor")):
                srows.append({"stride": s, "heatmap_size": hm_out["heatmaps"].shape[1],
                              "method": method,
                              **keypoint_metrics(cfg, decode(hm_out, "heatmap", s, refine),
                                                 val, sigmas)})
            int_out = get("integral", s)[0]
            srows.append({"stride": s, "heatmap_size": int_out["heatmaps"].shape[1],
                          "method": "integral (soft-argmax)",
                          **keypoint_metrics(cfg, int_out["coords"], val, sigmas)})
        plots.plot_stride_study(os.path.join(workdir, "pose_subpixel_stride.png"), srows)
        results["stride_study"] = srows
        md += ["", "## Sub-pixel study: error vs heatmap resolution", "",
               stride_table_md(srows, cfg.pck_alphas[0])]

    if cfg.multi.enabled and cfg.data == "shapes":
        multi = run_multi(cfg, workdir)
        results["multi_instance"] = multi
        md += ["", "## Multi-instance (PAF grouping, shapes multi_keypoints, visible keypoints)",
               "", multi_table_md(multi)]

    total, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    results.update({"total_seconds": total, "process_cpu_seconds": cpu, "config": cfg.to_dict(),
                    "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
                    "cpu_count": os.cpu_count(), "jax_version": jax.__version__})
    md += ["", f"Total wall time {total / 60:.1f} min, process CPU time {cpu / 60:.1f} min, on "
               f"{results['devices']} ({os.cpu_count()} CPUs visible; wall-clock rates depend on "
               "other jobs sharing the machine)."]
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump(results, f, indent=2, default=str)
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    return results
