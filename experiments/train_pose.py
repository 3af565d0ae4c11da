r"""2D keypoints: regression, heatmap, integral and density heads at an equal budget, the
heatmap-resolution (sub-pixel) study, density calibration and PAF multi-instance grouping.

Default — the built-in single-object shapes keypoints (64×64), a narrow ResNet-18::

  python experiments/train_pose.py --workdir /tmp/pose
  python experiments/train_pose.py --config=experiments/configs/pose_shapes.py:runlocal --workdir /tmp/pose_smoke
  python experiments/train_pose.py --config=experiments/configs/pose_coco.py --workdir /tmp/pose_coco \
      --config.coco.train_json=person_keypoints_train.json --config.coco.train_images=train/ ...

Every model uses the library's training pieces (``TrainState``, ``make_train_step``, optax
optimiser and schedule, ``fit`` with its tqdm bar and images/s). Writes to ``--workdir``:
``results.json`` and ``results.md`` (the tables), ``pose_predictions.png``,
``pose_heatmaps.png``, ``pose_subpixel_stride.png``, ``pose_two_maxima.png``,
``pose_density_calibration.png`` and ``pose_multi_paf.png``.
"""
from __future__ import annotations

import json
import os
import time

from absl import app, flags
from ml_collections import config_flags

FLAGS = flags.FLAGS


def _define_flags():
    """Only when run as a script: importing this module defines no absl flags, so it cannot
    clash with other experiments' ``--workdir``/``--config``."""
    flags.DEFINE_string("workdir", None, "Output folder (tables, figures).")
    config_flags.DEFINE_config_file(
        "config", os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs",
                               "pose_shapes.py"),
        "Path to an ml_collections config file (optionally ':variant').", lock_config=True)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import vai_jax  # noqa: E402
from vai_jax.analysis import count_params  # noqa: E402
from vai_jax.data.shapes import NUM_KEYPOINTS, ShapesDataset  # noqa: E402
from vai_jax.pose import metrics as pose_eval  # noqa: E402
from vai_jax.pose import heads as heads  # noqa: E402
from vai_jax.pose import losses as losses  # noqa: E402
from vai_jax.ops import coords as frame  # noqa: E402
from vai_jax.ops import keypoints as kpo  # noqa: E402
from vai_jax.pose import paf  # noqa: E402
from vai_jax.train import parallel  # noqa: E402
from vai_jax.train.loop import fit  # noqa: E402
from vai_jax.train.optim import make_optimizer, make_schedule  # noqa: E402
from vai_jax.train.state import TrainState, init_variables  # noqa: E402
from vai_jax.train.step import make_train_step  # noqa: E402
from vai_jax.viz.draw import draw_image  # noqa: E402

# The shapes skeleton as one limb set: every class's limbs are "centre -> point k".
SHAPES_LIMBS = np.array([(0, k) for k in range(1, NUM_KEYPOINTS)], np.int32)


# ----------------------------------------------------------------------------------- data
class BatchIterator:
    """Endless seeded random batches from in-memory arrays (``get_state``/``set_state`` give
    the position, as ``fit`` expects)."""

    def __init__(self, arrays: dict, batch_size: int, seed: int):
        self.arrays, self.batch_size, self.seed, self.step = arrays, batch_size, seed, 0
        self.n = len(next(iter(arrays.values())))

    def __iter__(self):
        return self

    def __next__(self):
        rng = np.random.default_rng((self.seed, self.step))
        idx = rng.choice(self.n, self.batch_size, replace=False)
        self.step += 1
        return {k: v[idx] for k, v in self.arrays.items()}

    def get_state(self):
        return json.dumps({"step": self.step}).encode()

    def set_state(self, state):
        self.step = json.loads(state)["step"]


def _materialise(task, split, n, size, seed, chunk=512):
    ds = ShapesDataset(task, split=split, num_examples=n, image_size=size, seed=seed)
    parts = [ds.get_batch(range(i, min(i + chunk, n))) for i in range(0, n, chunk)]
    return {k: np.concatenate([p[k] for p in parts]) for k in ("image", "keypoints", "boxes",
                                                               "valid", "classes")}


def _single(arrays, size):
    kp = arrays["keypoints"][:, 0].astype(np.float32)
    inside = np.asarray(frame.inside_image(kp, size, size))
    kp[..., 2] = np.where(inside, kp[..., 2], 0.0)  # outside the frame: unlabelled
    return {"image": arrays["image"], "keypoints": kp, "boxes": arrays["boxes"][:, 0],
            "weights": (kp[..., 2] > 0).astype(np.float32)}


def load_single_object_data(cfg):
    """(train, val, info) dicts: image uint8 [N,S,S,3], keypoints [N,K,3], boxes [N,4],
    weights [N,K]; info has ``num_keypoints`` and ``sigmas`` (OKS)."""
    s = cfg.image_size
    if cfg.data == "shapes":
        train = _single(_materialise("keypoints", "train", cfg.num_train, s, cfg.seed), s)
        val = _single(_materialise("keypoints", "validation", cfg.num_val, s, cfg.seed), s)
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
               pose_eval.COCO_PERSON_SIGMAS if k == 17 else np.full(k, cfg.oks_sigma))
        return (coco_crops(train_src, cfg, cfg.num_train), coco_crops(val_src, cfg, cfg.num_val),
                {"num_keypoints": k, "sigmas": sig})
    raise ValueError(f"config.data must be 'shapes' or 'coco'; got {cfg.data!r}")


def coco_crops(source, cfg, limit):
    """Top-down crops: each annotated, non-crowd object with >= ``min_keypoints`` labelled
    keypoints, its box enlarged ``box_scale`` times to a square, resized to the image size."""
    from vai_jax.data.transforms import apply_affine, crop_resize_matrix

    s, out = cfg.image_size, {"image": [], "keypoints": [], "boxes": []}
    for i in range(len(source)):
        rec = source[i]
        for m in range(len(rec["boxes"])):
            kp = rec["keypoints"][m]
            if rec.get("crowd", np.zeros(len(rec["boxes"]), bool))[m] or \
                    (kp[:, 2] > 0).sum() < cfg.coco.min_keypoints:
                continue
            x1, y1, x2, y2 = rec["boxes"][m]
            side = max(x2 - x1, y2 - y1, 1.0) * cfg.coco.box_scale
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            one = {"image": rec["image"], "boxes": rec["boxes"][m:m + 1],
                   "keypoints": kp[None], "classes": rec["classes"][m:m + 1]}
            a = crop_resize_matrix(cx - side / 2, cy - side / 2, side, side, (s, s))
            crop = apply_affine(one, a, (s, s))
            out["image"].append(crop["image"])
            out["keypoints"].append(crop["keypoints"][0])
            out["boxes"].append(crop["boxes"][0])
            if len(out["image"]) >= limit:
                break
        if len(out["image"]) >= limit:
            break
    if not out["image"]:
        raise ValueError("no COCO object with labelled keypoints found")
    arr = {k: np.stack(v).astype(np.uint8 if k == "image" else np.float32)
           for k, v in out.items()}
    arr["weights"] = (arr["keypoints"][..., 2] > 0).astype(np.float32)
    return arr


def preprocess(batch, rng, *, train):
    del rng, train
    return batch["image"].astype(jnp.float32) / 127.5 - 1.0


# ---------------------------------------------------------------------------------- models
def make_backbone(cfg):
    return vai_jax.create_model(cfg.backbone, num_classes=0, widths=tuple(cfg.backbone_widths))


def feature_stride(cfg, feature):
    info = {i.name: i for i in make_backbone(cfg).feature_info}
    if feature not in info:
        raise ValueError(f"config feature {feature!r} not in {sorted(info)}")
    return info[feature].stride


def make_model(cfg, kind, k, hstride=None):
    """PoseNet for head ``kind`` ("regression"|"density"|"heatmap"|"integral")."""
    fs = feature_stride(cfg, cfg.feature)
    if kind == "regression":
        head = heads.RegressionHead(k, fs, cfg.feature, hidden=cfg.regression_hidden,
                                    conv_channels=cfg.deconv_features)
    elif kind == "density":
        head = heads.DensityHead(k, fs, cfg.feature, hidden=cfg.regression_hidden,
                                 conv_channels=cfg.deconv_features)
    elif kind in ("heatmap", "integral"):
        n = heads.num_upsampling_steps(fs, hstride)
        common = dict(in_features=cfg.feature, num_deconv=n, deconv_channels=cfg.deconv_features)
        head = (heads.HeatmapHead(k, fs, **common) if kind == "heatmap" else
                heads.IntegralHead(k, fs, beta=cfg.integral_beta, **common))
    else:
        raise ValueError(f"unknown head {kind!r}")
    return heads.PoseNet(make_backbone(cfg), head)


def make_loss(cfg, kind, hstride):
    if kind == "regression":
        return lambda out, b: losses.coordinate_l1(out["coords"], b["keypoints"], b["weights"])
    if kind == "density":
        return lambda out, b: losses.gaussian_nll_loss(out["coords"], out["log_std"],
                                                       b["keypoints"], b["weights"])
    if kind == "integral":
        return lambda out, b: losses.integral_l1(out["heatmaps"], b["keypoints"], b["weights"],
                                                 stride=hstride, beta=cfg.integral_beta)

    def heatmap_loss(out, b):
        hm = out["heatmaps"]
        shape = hm.shape[1:3]
        target = kpo.gaussian_heatmaps(b["keypoints"], shape, sigma=cfg.heatmap_sigma,
                                       stride=hstride)
        w = kpo.heatmap_weights(b["keypoints"], shape, stride=hstride)
        return losses.heatmap_mse(hm, target, w)
    return heatmap_loss


def train_model(cfg, model, loss_fn, train_arrays, num_steps, desc, seed_offset=0):
    """Train with the library's pieces; returns (state, FitResult, num_params)."""
    rng = jax.random.PRNGKey(cfg.seed + seed_offset)
    init_rng, state_rng = jax.random.split(rng)
    s = cfg.image_size
    variables = init_variables(model, (1, s, s, 3), rng=init_rng)
    schedule = make_schedule("cosine", base_lr=cfg.lr, total_steps=num_steps,
                             warmup_steps=min(cfg.warmup_steps, num_steps - 1))
    tx = make_optimizer("adamw", learning_rate=schedule, weight_decay=cfg.weight_decay)
    mesh = parallel.make_mesh()
    parallel.check_batch_size(cfg.batch_size, mesh, "config.batch_size")
    state = parallel.replicate(
        TrainState.create(apply_fn=model.apply, variables=variables, tx=tx, rng=state_rng), mesh)
    step = parallel.data_parallel(make_train_step(loss_fn, preprocess_fn=preprocess), mesh)
    tqdm.write(f"--- training {desc}: {count_params(variables):,} parameters, {num_steps} steps")
    cpu0 = time.process_time()
    result = fit(state, train_step=step, train_iter=BatchIterator(train_arrays, cfg.batch_size,
                                                                   cfg.seed + seed_offset),
                 num_steps=num_steps, batch_size=cfg.batch_size, log_every=cfg.log_every,
                 progress=cfg.progress)
    # Process CPU time (all threads, compilation included): a load-independent cost measure on
    # a shared machine, where wall-clock images/s depend on the other jobs.
    result.cpu_seconds = time.process_time() - cpu0
    return result.state, result, count_params(variables)


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


def decode(out, kind, hstride, refine=None):
    if kind in ("regression", "density", "integral"):
        return out["coords"]
    coords, _ = kpo.heatmap_argmax(out["heatmaps"], refine=refine)
    return np.asarray(frame.heatmap_to_image(coords, hstride))


def metrics(cfg, pred, val, sigmas):
    ref = pose_eval.box_reference_size(val["boxes"])
    row = {"mean_px_error": pose_eval.mean_pixel_error(pred, val["keypoints"])}
    for a in cfg.pck_alphas:
        row[f"pck@{a:g}"] = pose_eval.pck(pred, val["keypoints"], alpha=a, reference=ref)
    n = len(pred)
    gt = pose_eval.to_coco_ground_truth(val["keypoints"][:, None], val["boxes"][:, None],
                                        image_size=val["image"].shape[1:3])
    res = pose_eval.to_coco_results(np.arange(1, n + 1), pred, np.ones(n))
    row["coco_ap"] = pose_eval.coco_keypoint_ap(gt, res, sigmas=sigmas)["AP"]
    return row


# ----------------------------------------------------------------------------- multi-PAF
def multi_targets(cfg, b, shape, hstride):
    kp = b["keypoints"]
    kp = jnp.concatenate([kp[..., :2], jnp.where(kp[..., 2:] >= 2, 2.0, 0.0)], -1)  # visible only
    hm = jnp.max(kpo.gaussian_heatmaps(kp, shape, sigma=cfg.heatmap_sigma, stride=hstride),
                 axis=1)
    fields = paf.part_affinity_fields(kp, SHAPES_LIMBS, shape, stride=hstride,
                                      sigma=cfg.multi.paf_sigma)
    return hm, fields


def run_multi(cfg, workdir):
    m = cfg.multi
    s = cfg.image_size
    train = _materialise("multi_keypoints", "train", m.num_train, s, cfg.seed)
    val = _materialise("multi_keypoints", "validation", m.num_val, s, cfg.seed)
    fs = feature_stride(cfg, m.feature)
    hstride = m.heatmap_stride
    head = heads.PAFHead(NUM_KEYPOINTS, fs, m.feature,
                         num_deconv=heads.num_upsampling_steps(fs, hstride),
                         deconv_channels=cfg.deconv_features, num_limbs=len(SHAPES_LIMBS))
    model = heads.PoseNet(make_backbone(cfg), head)

    def loss_fn(out, b):
        hm_t, f_t = multi_targets(cfg, b, out["heatmaps"].shape[1:3], hstride)
        w = jnp.ones(hm_t.shape[:1] + hm_t.shape[-1:])
        return (losses.heatmap_mse(out["heatmaps"], hm_t, w)
                + m.paf_weight * losses.paf_mse(out["pafs"], f_t))

    arrays = {k: train[k] for k in ("image", "keypoints")}
    state, result, nparams = train_model(cfg, model, loss_fn, arrays, m.num_steps,
                                         "PAF multi-instance", seed_offset=99)
    out = predict(state, val["image"], cfg.eval_batch_size)
    coords, scores, valid = jax.device_get(jax.jit(
        lambda h: kpo.heatmap_peaks(h, max_peaks=m.max_peaks, threshold=m.peak_threshold))(
        out["heatmaps"]))
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
        r = _grouping_stats(inst, gt_kp[i, gts], val["boxes"][i, gts],
                            coords[i] * hstride, valid[i], m.tolerance)
        for key in stats:
            stats[key] += r[key]
        all_pred.extend(inst)
        all_scores.extend(inst_scores)
        all_ids.extend([i + 1] * len(inst))
    has = (gt_kp[..., 2] > 0).sum(-1) >= 2
    gt = pose_eval.to_coco_ground_truth(gt_kp, val["boxes"], val["valid"] & has,
                                        image_size=(s, s))
    res = (pose_eval.to_coco_results(np.array(all_ids), np.stack(all_pred), np.array(all_scores))
           if all_pred else [])
    ap = pose_eval.coco_keypoint_ap(gt, res, sigmas=np.full(NUM_KEYPOINTS, cfg.oks_sigma))
    summary = {
        "num_params": nparams, "train_images_per_sec": result.images_per_sec,
        "train_seconds": result.train_seconds, "train_cpu_seconds": result.cpu_seconds,
        "heatmap_stride": hstride,
        "grouped_keypoint_accuracy": stats["grouped_correct"] / max(stats["gt_keypoints"], 1),
        "keypoint_detection_recall": stats["detected"] / max(stats["gt_keypoints"], 1),
        "instance_count_exact": stats["count_exact"] / len(val["image"]),
        "gt_instances": stats["gt_instances"], "pred_instances": stats["pred_instances"],
        "coco_ap": ap["AP"], "coco_ap50": ap["AP50"],
    }
    plot_multi(os.path.join(workdir, "pose_multi_paf.png"), val, gt_kp, grouped_per_image, out,
               hstride, cfg.num_figure_images)
    return summary


def _grouping_stats(pred, gt, boxes, peaks_img, peaks_valid, tolerance):
    """Greedy one-to-one matching of predicted to GT instances by the number of GT visible
    keypoints reproduced within ``max(2, tolerance * box size)`` pixels."""
    tol = np.maximum(2.0, tolerance * pose_eval.box_reference_size(boxes))  # [G]
    g_vis = gt[..., 2] > 0  # [G, K]
    hits = np.zeros((len(gt), len(pred)), np.int64)
    for g in range(len(gt)):
        for p in range(len(pred)):
            d = np.linalg.norm(pred[p, :, :2] - gt[g, :, :2], axis=-1)
            hits[g, p] = int(np.sum(g_vis[g] & (pred[p, :, 2] > 0) & (d <= tol[g])))
    correct, used_g, used_p = 0, set(), set()
    for flat in np.argsort(-hits, axis=None, kind="stable") if hits.size else []:
        g, p = divmod(int(flat), len(pred))
        if hits[g, p] == 0:
            break
        if g in used_g or p in used_p:
            continue
        used_g.add(g), used_p.add(p)
        correct += hits[g, p]
    detected = 0
    for g in range(len(gt)):
        for k in np.flatnonzero(g_vis[g]):
            cand = peaks_img[k][peaks_valid[k]]
            if len(cand) and np.min(np.linalg.norm(cand - gt[g, k, :2], axis=-1)) <= tol[g]:
                detected += 1
    return {"gt_keypoints": int(g_vis.sum()), "grouped_correct": correct, "detected": detected,
            "gt_instances": len(gt), "pred_instances": len(pred),
            "count_exact": int(len(gt) == len(pred))}


# ------------------------------------------------------------------------------- figures
def _save(fig, path):
    fig.savefig(path, dpi=110, bbox_inches="tight")
    tqdm.write(f"wrote {path}")


def plot_predictions(path, val, preds, log_std, n):
    names = list(preds)
    fig = Figure(figsize=(2.0 * n, 2.1 * len(names)))
    for r, name in enumerate(names):
        for c in range(n):
            ax = fig.add_subplot(len(names), n, r * n + c + 1)
            draw_image(ax, val["image"][c])
            vis = val["keypoints"][c, :, 2] > 0
            gt, p = val["keypoints"][c][vis], preds[name][c][vis]
            ax.scatter(gt[:, 0], gt[:, 1], s=22, facecolors="none", edgecolors="lime", lw=1.2)
            ax.scatter(p[:, 0], p[:, 1], s=18, c="red", marker="x", lw=1.2)
            if name == "density" and log_std is not None:
                sd = np.exp(log_std[c][vis])
                for (x, y), (sx, sy) in zip(p, sd):
                    ax.add_patch(Ellipse((x, y), 2 * sx, 2 * sy, fill=False, ec="yellow", lw=0.8))
            if c == 0:
                ax.set_title(name, fontsize=8, loc="left")
    fig.suptitle("predictions (red x) vs ground truth (green o); density: 1σ ellipses")
    _save(fig, path)


def plot_heatmaps(path, val, hm_out, int_out, hstride, n):
    n = min(n, 4)
    fig = Figure(figsize=(8, 2.1 * n))
    s = val["image"].shape[1]
    p_int = np.asarray(kpo.spatial_softmax(int_out["heatmaps"][:n]))
    for r in range(n):
        ax = fig.add_subplot(n, 4, 4 * r + 1)
        draw_image(ax, val["image"][r])
        ax.set_title("image" if r == 0 else "", fontsize=8)
        panels = [("heatmap head: max_k H", hm_out["heatmaps"][r].max(-1), "magma"),
                  ("integral: Σ_k softmax(H)", p_int[r].sum(-1), "viridis"),
                  ("integral P, keypoint 0", p_int[r, :, :, 0], "viridis")]
        for j, (title, img, cmap) in enumerate(panels):
            ax = fig.add_subplot(n, 4, 4 * r + 2 + j)
            ax.imshow(img, extent=(0, s, s, 0), cmap=cmap, interpolation="nearest")
            vis = val["keypoints"][r, :, 2] > 0
            ax.scatter(*val["keypoints"][r][vis, :2].T, s=8, c="cyan")
            ax.set_axis_off()
            if r == 0:
                ax.set_title(title, fontsize=8)
    fig.suptitle(f"heatmaps / probability maps (stride {hstride}; cyan: ground truth)")
    _save(fig, path)


def plot_stride_study(path, rows):
    fig = Figure(figsize=(5.5, 4))
    ax = fig.add_subplot(1, 1, 1)
    strides = sorted({r["stride"] for r in rows})
    for method, style in (("heatmap arg-max", "o-"), ("heatmap quarter-offset", "^-"),
                          ("heatmap Taylor", "s-"), ("integral (soft-argmax)", "d-")):
        ys = [next(r["mean_px_error"] for r in rows if r["stride"] == s and r["method"] == method)
              for s in strides]
        ax.plot(strides, ys, style, label=method)
    # Mean distance from a cell's centre to a uniform point in it: s·(√2 + asinh 1)/6 ≈ 0.383 s.
    quant = (np.sqrt(2) + np.arcsinh(1.0)) / 6
    ax.plot(strides, [quant * s for s in strides], "k:",
            label="cell-centre quantisation alone (0.383·stride)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(strides, [str(s) for s in strides])
    ax.set_xlabel("heatmap stride (image pixels per cell)")
    ax.set_ylabel("mean pixel error (validation)")
    ax.set_title("error vs heatmap resolution")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_two_maxima(path):
    h, w = 16, 24
    hm = np.asarray(kpo.gaussian_heatmaps(np.array([[5.5, 4.5, 2.0], [18.5, 11.5, 2.0]]),
                                          (h, w), sigma=1.2, stride=1)).max(-1)
    fig = Figure(figsize=(9, 3.2))
    for j, beta in enumerate((1.0, 10.0, 50.0)):
        logits = jnp.asarray(hm)[None, :, :, None]
        p = np.asarray(kpo.spatial_softmax(logits, beta=beta))[0, :, :, 0]
        sa = np.asarray(kpo.soft_argmax(logits, beta=beta))[0, 0]
        am = np.asarray(kpo.heatmap_argmax(logits, refine=None)[0])[0, 0]
        ax = fig.add_subplot(1, 3, j + 1)
        ax.imshow(p, extent=(0, w, h, 0), cmap="viridis", interpolation="nearest")
        ax.scatter(*sa, c="red", marker="x", s=60, label=f"soft-argmax ({sa[0]:.1f}, {sa[1]:.1f})")
        ax.scatter(*am, facecolors="none", edgecolors="white", s=80, label="arg-max")
        ax.set_title(f"P = softmax({beta:g}·H)", fontsize=9)
        ax.legend(fontsize=6, loc="upper right")
        ax.set_axis_off()
    fig.suptitle("failure mode: two equal maxima pull soft-argmax to their midpoint (12, 8)")
    _save(fig, path)


def density_calibration(path, pred, log_std, val, num_bins=10):
    vis = val["keypoints"][..., 2] > 0
    err = np.abs(pred - val["keypoints"][..., :2])[vis].reshape(-1)
    sd = np.exp(log_std)[vis].reshape(-1)
    order = np.argsort(sd)
    bins = np.array_split(order, num_bins)
    mean_sd = np.array([sd[b].mean() for b in bins])
    mean_err = np.array([err[b].mean() for b in bins])
    rank = lambda a: np.argsort(np.argsort(a))
    spearman = float(np.corrcoef(rank(sd), rank(err))[0, 1])
    fig = Figure(figsize=(5, 4))
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(sd, err, s=3, alpha=0.15, c="gray", label="per coordinate")
    ax.plot(mean_sd, mean_err, "o-", c="C0", label="binned mean |error| (deciles of σ)")
    lim = max(mean_sd.max(), mean_err.max()) * 1.3
    xs = np.linspace(0, lim, 50)
    ax.plot(xs, xs * np.sqrt(2 / np.pi), "k--", label="calibrated: E|e| = σ·√(2/π)")
    ax.set_xlim(0, lim)
    ax.set_ylim(0, lim * 1.5)
    ax.set_xlabel("predicted σ (pixels)")
    ax.set_ylabel("|error| (pixels)")
    ax.set_title(f"density head calibration (Spearman ρ = {spearman:.2f})")
    ax.legend(fontsize=7)
    _save(fig, path)
    return {"spearman_sigma_vs_error": spearman,
            "coverage_1sigma": float(np.mean(err <= sd)),  # Gaussian: 0.683
            "coverage_2sigma": float(np.mean(err <= 2 * sd)),  # Gaussian: 0.954
            "mean_sigma": float(sd.mean()), "mean_abs_error": float(err.mean()),
            "binned_sigma": mean_sd.tolist(), "binned_abs_error": mean_err.tolist()}


def plot_multi(path, val, gt_kp, grouped, out, hstride, n):
    fig = Figure(figsize=(2.2 * n, 4.6))
    s = val["image"].shape[1]
    colours = ["red", "cyan", "yellow", "magenta", "orange", "lime", "white", "blue"]
    for c in range(n):
        ax = fig.add_subplot(2, n, c + 1)
        draw_image(ax, val["image"][c])
        for m, inst in enumerate(grouped[c]):
            col = colours[m % len(colours)]
            pts = inst[inst[:, 2] > 0]
            ax.scatter(pts[:, 0], pts[:, 1], s=12, c=col, edgecolors="black", lw=0.4)
            if inst[0, 2] > 0:
                for k in range(1, len(inst)):
                    if inst[k, 2] > 0:
                        ax.plot([inst[0, 0], inst[k, 0]], [inst[0, 1], inst[k, 1]], c=col, lw=0.8)
        if c == 0:
            ax.set_title("grouped instances", fontsize=8, loc="left")
        ax = fig.add_subplot(2, n, n + c + 1)
        f = out["pafs"][c]  # [H, W, L, 2]
        mag = np.linalg.norm(f, axis=-1).max(-1)
        ax.imshow(mag, extent=(0, s, s, 0), cmap="gray", interpolation="nearest")
        hh, ww = mag.shape
        xs, ys = (np.arange(ww) + 0.5) * hstride, (np.arange(hh) + 0.5) * hstride
        vec = f.sum(-2)
        ax.quiver(xs, ys, vec[..., 0], vec[..., 1], color="orange", angles="xy", scale=30)
        ax.set_xlim(0, s)
        ax.set_ylim(s, 0)
        ax.set_axis_off()
        if c == 0:
            ax.set_title("predicted PAFs (sum over limbs)", fontsize=8, loc="left")
    fig.suptitle("multi-instance: part affinity fields and greedy grouping")
    _save(fig, path)


# --------------------------------------------------------------------------------- tables
def _md_table(rows, cols):
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
    return _md_table(rows, cols)


# ------------------------------------------------------------------------------------ main
def run(cfg, workdir):
    t0, cpu0 = time.perf_counter(), time.process_time()
    os.makedirs(workdir, exist_ok=True)
    train, val, info = load_single_object_data(cfg)
    k, sigmas = info["num_keypoints"], info["sigmas"]
    tqdm.write(f"data: {len(train['image'])} train / {len(val['image'])} val images, K={k}")
    train_arrays = {key: train[key] for key in ("image", "keypoints", "weights")}
    hs0 = cfg.heatmap_stride
    trained = {}  # (kind, stride) -> (outputs on val, FitResult, num_params)

    def get(kind, hstride):
        key = (kind, hstride if kind in ("heatmap", "integral") else None)
        if key not in trained:
            model = make_model(cfg, kind, k, hstride)
            state, result, nparams = train_model(
                cfg, model, make_loss(cfg, kind, hstride), train_arrays, cfg.num_steps,
                f"{kind}" + (f" (stride {hstride})" if key[1] else ""))
            trained[key] = (predict(state, val["image"], cfg.eval_batch_size), result, nparams)
        return trained[key]

    rows, preds = [], {}
    decodings = {"regression": [("regression", None)], "density": [("density", None)],
                 "integral": [("integral", None)],
                 "heatmap": [("heatmap (arg-max)", None), ("heatmap (sub-pixel, quarter)",
                                                          "quarter"),
                             ("heatmap (sub-pixel, Taylor)", "taylor")]}
    for kind in cfg.heads:
        out, result, nparams = get(kind, hs0)
        for name, refine in decodings[kind]:
            pred = decode(out, kind, hs0, refine)
            preds[name] = pred
            rows.append({"head": name, **metrics(cfg, pred, val, sigmas), "num_params": nparams,
                         "train_images_per_sec": result.images_per_sec,
                         "train_images_per_cpu_sec": cfg.num_steps * cfg.batch_size
                         / result.cpu_seconds,
                         "train_seconds": result.train_seconds,
                         "train_cpu_seconds": result.cpu_seconds})
    md = [f"## Heads at an equal budget ({cfg.num_steps} steps × batch {cfg.batch_size}, "
          f"{cfg.backbone} widths {tuple(cfg.backbone_widths)}, feature {cfg.feature}, "
          f"heatmap stride {hs0})", "", main_table_md(rows, cfg.pck_alphas), "",
          "PCK reference: max(w, h) of the object's box. Heatmap rows share one trained model "
          "(decoding differs)."]
    results = {"main_table": rows}

    names = [n for n in ("regression", "heatmap (arg-max)", "heatmap (sub-pixel, Taylor)",
                         "integral", "density") if n in preds]
    dens = trained.get(("density", None))
    plot_predictions(os.path.join(workdir, "pose_predictions.png"), val,
                     {n: preds[n] for n in names}, dens[0]["log_std"] if dens else None,
                     cfg.num_figure_images)
    if ("heatmap", hs0) in trained and ("integral", hs0) in trained:
        plot_heatmaps(os.path.join(workdir, "pose_heatmaps.png"), val,
                      trained[("heatmap", hs0)][0], trained[("integral", hs0)][0], hs0,
                      cfg.num_figure_images)
    plot_two_maxima(os.path.join(workdir, "pose_two_maxima.png"))
    if dens:
        cal = density_calibration(os.path.join(workdir, "pose_density_calibration.png"),
                                  dens[0]["coords"], dens[0]["log_std"], val)
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
            hm_out, _, _ = get("heatmap", s)
            for method, refine in (("heatmap arg-max", None), ("heatmap quarter-offset",
                                                               "quarter"),
                                   ("heatmap Taylor", "taylor")):
                srows.append({"stride": s, "heatmap_size": hm_out["heatmaps"].shape[1],
                              "method": method, **metrics(cfg, decode(hm_out, "heatmap", s,
                                                                      refine), val, sigmas)})
            int_out, _, _ = get("integral", s)
            srows.append({"stride": s, "heatmap_size": int_out["heatmaps"].shape[1],
                          "method": "integral (soft-argmax)",
                          **metrics(cfg, int_out["coords"], val, sigmas)})
        plot_stride_study(os.path.join(workdir, "pose_subpixel_stride.png"), srows)
        results["stride_study"] = srows
        a0 = cfg.pck_alphas[0]
        md += ["", "## Sub-pixel study: error vs heatmap resolution", "", _md_table(srows, [
            ("stride", lambda r: str(r["stride"])),
            ("heatmap", lambda r: f"{r['heatmap_size']}×{r['heatmap_size']}"),
            ("method", lambda r: r["method"]),
            ("mean px error", lambda r: f"{r['mean_px_error']:.2f}"),
            (f"PCK@{a0:g}", lambda r: f"{100 * r[f'pck@{a0:g}']:.1f}")])]

    if cfg.multi.enabled and cfg.data == "shapes":
        multi = run_multi(cfg, workdir)
        results["multi_instance"] = multi
        md += ["", "## Multi-instance (PAF grouping, shapes multi_keypoints, visible keypoints)",
               "", _md_table([multi], [
                   ("grouped-keypoint accuracy", lambda r: f"{100 * r['grouped_keypoint_accuracy']:.1f}%"),
                   ("keypoint recall (no grouping)",
                    lambda r: f"{100 * r['keypoint_detection_recall']:.1f}%"),
                   ("exact instance count", lambda r: f"{100 * r['instance_count_exact']:.1f}%"),
                   ("COCO AP / AP50", lambda r: f"{r['coco_ap']:.3f} / {r['coco_ap50']:.3f}"),
                   ("params", lambda r: f"{r['num_params']:,}"),
                   ("train images/s", lambda r: f"{r['train_images_per_sec']:.0f}")])]

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
    print("\n".join(md))
    return results


def main(argv):
    del argv
    if not FLAGS.workdir:
        raise app.UsageError("--workdir is required")
    run(FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
