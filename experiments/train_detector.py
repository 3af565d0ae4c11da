r"""Two-stage detectors on the built-in multi-object shapes data: R-CNN, Fast R-CNN, Faster
R-CNN and Mask R-CNN trained with the library's training system and evaluated with COCO AP
(pycocotools) on the shapes COCO export.

  python experiments/train_detector.py --workdir /tmp/det_faster                      # Faster R-CNN
  python experiments/train_detector.py --config=experiments/configs/detector_mask_rcnn.py --workdir /tmp/det_mask
  python experiments/train_detector.py --config=experiments/configs/detector_compare.py --workdir /tmp/det_cmp
  python experiments/train_detector.py --config=experiments/configs/detector_faster_rcnn.py:runlocal --workdir /tmp/det_smoke

Data: ``ShapesDataset("detection")`` through ``make_loader`` (padding to ``max_objects``; more
objects are dropped *and counted*, reported in results.json), targets checked on the host by
``vai_jax.detection.inputs.sanitize_targets``. Training: ``TrainState``, ``make_train_step``
with ``vai_jax.detection.losses.detection_loss``, ``data_parallel`` over all devices and
``fit`` (tqdm bar, images/s). Writes to ``--workdir``: ``results.json``, ``results.md`` (the
comparison table), ``comparison.png`` and ``detections_<model>.png``.
"""
from __future__ import annotations

import json
import os
import time

from absl import app, flags
from ml_collections import config_flags

FLAGS = flags.FLAGS


def _define_flags():
    """Only when run as a script: importing this module defines no absl flags."""
    flags.DEFINE_string("workdir", None, "Output folder (tables, figures).")
    config_flags.DEFINE_config_file(
        "config", os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "detector_faster_rcnn.py"),
        "Path to an ml_collections config file (optionally ':variant').", lock_config=True)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import vai_jax  # noqa: E402
from vai_jax.analysis import count_params  # noqa: E402
from vai_jax.data.coco_export import to_coco  # noqa: E402
from vai_jax.data.pipeline import make_loader  # noqa: E402
from vai_jax.data.coco import CocoSource  # noqa: E402
from vai_jax.data.shapes import CLASS_NAMES, ShapesDataset  # noqa: E402
from vai_jax.data.sources import load_source  # noqa: E402
from vai_jax.data.transforms import ResizeAndPad  # noqa: E402
from vai_jax.detection import RCNN, FastRCNN, FasterRCNN, RoIStage, mask_rcnn  # noqa: E402
from vai_jax.detection.inputs import detection_preprocess, sanitize_targets  # noqa: E402
from vai_jax.detection.proposals import proposal_recall, sliding_window_proposals  # noqa: E402
from vai_jax.detection.coco_eval import coco_ap, detections_to_coco, ground_truth_from_records  # noqa: E402
from vai_jax.detection.losses import detection_loss  # noqa: E402
from vai_jax.detection.postprocess import paste_masks  # noqa: E402
from vai_jax.train import parallel  # noqa: E402
from vai_jax.train.loop import fit  # noqa: E402
from vai_jax.train.optim import make_optimizer, make_schedule  # noqa: E402
from vai_jax.train.state import TrainState  # noqa: E402
from vai_jax.train.step import make_train_step  # noqa: E402
from vai_jax.viz.draw import save_grid  # noqa: E402

MODELS = ("rcnn", "fast_rcnn", "faster_rcnn", "mask_rcnn")
TITLES = {"rcnn": "R-CNN", "fast_rcnn": "Fast R-CNN", "faster_rcnn": "Faster R-CNN", "mask_rcnn": "Mask R-CNN"}


# ---------------------------------------------------------------------------------- models
def make_backbone(cfg):
    return vai_jax.create_model("resnet18", num_classes=0, stage_sizes=tuple(cfg.backbone_stage_sizes),
                                widths=tuple(cfg.backbone_widths), stem_width=cfg.stem_width,
                                stage_strides=tuple(cfg.backbone_stage_strides))


def make_roi_stage(cfg, **kw):
    return RoIStage(cfg.num_classes, pool_mode=cfg.pool_mode, pool_size=cfg.pool_size, hidden=cfg.hidden,
                    num_samples=cfg.roi_num_samples, positive_fraction=cfg.roi_positive_fraction,
                    score_threshold=cfg.score_threshold, max_detections=cfg.max_detections,
                    mask_features=cfg.mask_features, mask_convs=cfg.mask_convs, **kw)


def make_model(cfg, name, rcnn_stage="svm"):
    """One explicit table of the four detectors (no string registry)."""
    if name == "rcnn":
        return RCNN(cnn=make_backbone(cfg), feature_name=cfg.feature, num_classes=cfg.num_classes,
                    crop_size=cfg.rcnn_crop_size,
                    descriptor_grid=cfg.rcnn_descriptor_grid, stage=rcnn_stage, num_samples=cfg.roi_num_samples,
                    positive_fraction=cfg.roi_positive_fraction, score_threshold=cfg.score_threshold,
                    max_detections=cfg.max_detections)
    if name == "fast_rcnn":
        return FastRCNN(backbone=make_backbone(cfg), feature_name=cfg.feature, roi_stage=make_roi_stage(cfg))
    common = dict(
        backbone=make_backbone(cfg),
        feature_names=tuple(cfg.fpn_feature_names) if cfg.fpn_features else (cfg.feature,),
        anchor_sizes=(tuple(cfg.anchor_sizes),) * (len(cfg.fpn_feature_names) if cfg.fpn_features else 1),
        aspect_ratios=tuple(cfg.aspect_ratios), fpn_features=cfg.fpn_features,
        rpn_num_samples=cfg.rpn_num_samples, pre_nms_top_n_train=cfg.pre_nms_top_n_train,
        post_nms_top_n_train=cfg.post_nms_top_n_train, pre_nms_top_n_test=cfg.pre_nms_top_n_test,
        post_nms_top_n_test=cfg.post_nms_top_n_test)
    if name == "faster_rcnn":
        return FasterRCNN(roi_stage=make_roi_stage(cfg), **common)
    if name == "mask_rcnn":
        return mask_rcnn(roi_stage=make_roi_stage(cfg), **common)
    raise ValueError(f"unknown model {name!r}; choose from {MODELS}")


# ------------------------------------------------------------------------------------ data
class DetectionBatches:
    """Wraps a grain iterator: checks targets, adds constant proposals, counts the report."""

    def __init__(self, it, *, num_classes, proposals=None, keep_masks=False):
        self.it, self.proposals, self.keep_masks = it, proposals, keep_masks
        self.num_classes = num_classes
        self.report = {"objects": 0, "clipped": 0, "degenerate": 0, "dropped": 0}

    def __iter__(self):
        return self

    def __next__(self):
        batch, rep = sanitize_targets(next(self.it), num_classes=self.num_classes)
        for k, v in rep.items():
            self.report[k] += v
        keys = ("image", "boxes", "classes", "valid") + (("masks",) if self.keep_masks else ())
        out = {k: batch[k] for k in keys}
        if self.proposals is not None:
            return add_proposals(out, self.proposals)
        return out

    def get_state(self):
        return self.it.get_state()

    def set_state(self, state):
        self.it.set_state(state)


def add_proposals(batch, proposals):
    b = len(batch["image"])
    return dict(batch, proposals=np.broadcast_to(proposals, (b,) + proposals.shape).copy(),
                proposal_valid=np.ones((b, proposals.shape[0]), bool))


def make_data(cfg):
    """(train source, val source, COCO ground truth of val (ids = index + 1), class names)."""
    s = cfg.image_size
    if cfg.data == "shapes":
        train_ds = ShapesDataset("detection", split="train", num_examples=cfg.num_train, image_size=s, seed=cfg.seed)
        val_ds = ShapesDataset("detection", split="validation", num_examples=cfg.num_val, image_size=s,
                               seed=cfg.seed)
        return train_ds, val_ds, to_coco(val_ds, progress=False), CLASS_NAMES
    if cfg.data == "coco":  # COCO-format files from disk
        masks = "mask_rcnn" in cfg.models
        train_ds = CocoSource(cfg.coco.train_json, cfg.coco.train_images, with_masks=masks)
        val_ds = CocoSource(cfg.coco.val_json, cfg.coco.val_images, with_masks=False)
        names = train_ds.class_names
    elif cfg.data == "voc":  # tfds voc through data_source (must be prepared)
        train_ds = load_source("voc", cfg.voc.train_split, data_dir=cfg.voc.data_dir or None)
        val_ds = load_source("voc", cfg.voc.val_split, data_dir=cfg.voc.data_dir or None)
        names = train_ds.class_names
    else:
        raise ValueError(f"config.data must be 'shapes', 'coco' or 'voc'; got {cfg.data!r}")
    n_val = min(len(val_ds), cfg.num_val)
    gt = ground_truth_from_records([val_ds[i] for i in range(n_val)], image_ids=range(1, n_val + 1),
                                   class_names=names)
    return train_ds, val_ds, gt, names


# -------------------------------------------------------------------------------- training
def train(cfg, name, model, train_ds, num_steps, *, variables=None, proposals=None, seed_offset=0, desc=None):
    rng = jax.random.PRNGKey(cfg.seed + seed_offset)
    init_rng, state_rng = jax.random.split(rng)
    s = cfg.image_size
    if variables is None:
        x = {"image": jnp.zeros((1, s, s, 3))}
        if proposals is not None:
            x.update(proposals=jnp.asarray(proposals)[None], proposal_valid=jnp.ones((1, len(proposals)), bool))
        variables = jax.jit(lambda r: model.init(r, x, train=False))(init_rng)
    schedule = make_schedule("cosine", base_lr=cfg.lr, total_steps=num_steps,
                             warmup_steps=min(cfg.warmup_steps, num_steps - 1))
    tx = make_optimizer("adamw", learning_rate=schedule, weight_decay=cfg.weight_decay, clip_grad_norm=10.0)
    mesh = parallel.make_mesh()
    parallel.check_batch_size(cfg.batch_size, mesh, "config.batch_size")
    state = parallel.replicate(TrainState.create(apply_fn=model.apply, variables=variables, tx=tx, rng=state_rng),
                               mesh)
    step = parallel.data_parallel(make_train_step(detection_loss, preprocess_fn=detection_preprocess), mesh)
    resize = None if isinstance(train_ds, ShapesDataset) else ResizeAndPad((s, s))
    loader = make_loader(train_ds, batch_size=cfg.batch_size, seed=cfg.seed + seed_offset, transforms=resize,
                         max_objects=cfg.max_objects, on_overflow="drop")
    batches = DetectionBatches(iter(loader), num_classes=cfg.num_classes, proposals=proposals,
                               keep_masks=name == "mask_rcnn")
    tqdm.write(f"--- training {desc or TITLES[name]}: {count_params(variables):,} parameters, {num_steps} steps")
    t0 = time.perf_counter()
    result = fit(state, train_step=step, train_iter=batches, num_steps=num_steps, batch_size=cfg.batch_size,
                 log_every=cfg.log_every, progress=cfg.progress)
    return result, time.perf_counter() - t0, batches.report, count_params(variables)


# ------------------------------------------------------------------------------ evaluation
def predict(cfg, name, state, val_ds, indices, proposals=None, batch_size=50):
    """Inference over ``indices``; returns (outputs dict of NumPy, seconds excluding compile)."""
    fn = jax.jit(lambda v, x: state.apply_fn(v, detection_preprocess(x, None, train=False), train=False))
    variables = state.variables()
    outs, seconds, n_timed = [], 0.0, 0
    chunks = [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]
    for k, chunk in enumerate(tqdm(chunks, desc=f"predict {TITLES[name]}", disable=not cfg.progress)):
        imgs, scales = load_images(cfg, val_ds, chunk)
        n = len(imgs)
        if n < batch_size:
            imgs = np.concatenate([imgs, np.repeat(imgs[-1:], batch_size - n, 0)])
        x = {"image": imgs}
        if proposals is not None:
            x = add_proposals(x, proposals)
        t = time.perf_counter()
        out = jax.tree.map(np.asarray, fn(variables, x))
        if k > 0 or len(chunks) == 1:
            seconds += time.perf_counter() - t
            n_timed += n
        out = {kk: v[:n] for kk, v in out.items()}
        out["boxes"] = out["boxes"] / scales[:, None, None]  # back to the source image's pixels
        outs.append(out)
    if len(chunks) == 1:  # only a compiled-and-run batch: time a second run
        t = time.perf_counter()
        jax.block_until_ready(fn(variables, x))
        seconds = time.perf_counter() - t
    return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}, seconds / max(n_timed, 1)


def evaluate(cfg, name, state, val_ds, gt, indices, proposals=None, batch_size=50):
    out, sec_per_image = predict(cfg, name, state, val_ds, indices, proposals, batch_size)
    ids = np.asarray(indices) + 1
    masks = None
    if "masks" in out and isinstance(val_ds, ShapesDataset):  # mask AP: shapes data only
        s = cfg.image_size
        paste = jax.jit(jax.vmap(lambda m, b: paste_masks(m, b, (s, s))))
        masks = np.concatenate([np.asarray(paste(out["masks"][i:i + 50], out["boxes"][i:i + 50])) >= 0.5
                                for i in range(0, len(ids), 50)])
        out["pasted_masks"] = masks
    res = detections_to_coco(ids, out["boxes"], out["scores"], out["classes"], out["valid"], masks=masks)
    metrics = {"box": coco_ap(gt, res, iou_type="bbox", image_ids=ids)}
    if masks is not None:
        metrics["mask"] = coco_ap(gt, res, iou_type="segm", image_ids=ids)
    if isinstance(val_ds, ShapesDataset):  # how many objects the first stage can find at all
        g = val_ds.get_batch(indices)
        if "proposals" in out:
            p, pv = out["proposals"], out["proposal_valid"]
        else:
            p = np.broadcast_to(proposals, (len(ids),) + proposals.shape)
            pv = np.ones(p.shape[:2], bool)
        metrics["proposal_recall"] = proposal_recall(p, pv, g["boxes"], g["valid"])
        metrics["detection_recall"] = proposal_recall(out["boxes"], out["valid"], g["boxes"], g["valid"])
    return metrics, sec_per_image, out


def load_images(cfg, ds, indices):
    """Images ``[n, S, S, 3]`` of ``indices`` (letterboxed for external sources) and their scales."""
    if isinstance(ds, ShapesDataset):
        return ds.get_batch(indices)["image"], np.ones(len(indices), np.float32)
    s = cfg.image_size
    imgs, scales = [], []
    for i in indices:
        rec = ds[i]
        h, w = np.asarray(rec["image"]).shape[:2]
        imgs.append(ResizeAndPad((s, s))({"image": rec["image"]})["image"])
        scales.append(min(s / h, s / w))
    return np.stack(imgs).astype(np.uint8), np.asarray(scales, np.float32)


def save_detections(cfg, name, val_ds, out, indices, path):
    k = min(cfg.num_figure_images, len(indices))
    images, scales = load_images(cfg, val_ds, indices[:k])
    recs, scores = [], []
    for i in range(k):
        v = out["valid"][i] & (out["scores"][i] >= 0.5)
        rec = {"image": images[i], "boxes": out["boxes"][i][v] * scales[i], "classes": out["classes"][i][v]}
        if "pasted_masks" in out:
            rec["masks"] = out["pasted_masks"][i][v]
        recs.append(rec)
        scores.append(out["scores"][i][v])
    save_grid(recs, path, scores=scores, ncols=4, class_names=cfg.class_names,
              titles=[f"{TITLES[name]} #{j}" for j in indices[:k]])


# ------------------------------------------------------------------------------- reporting
def write_table(rows, workdir):
    head = ("| model | box AP | AP50 | AP75 | mask AP | proposal recall@0.7 | train img/s | infer img/s | "
            "ms / image | CNN passes / image | params | steps | eval images |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        mask = f"{100 * r['mask']['AP']:.1f}" if "mask" in r else "-"
        rec = f"{100 * r['proposal_recall']['recall@0.7']:.1f}" if "proposal_recall" in r else "-"
        lines.append(f"| {TITLES[r['model']]} | {100 * r['box']['AP']:.1f} | {100 * r['box']['AP50']:.1f} | "
                     f"{100 * r['box']['AP75']:.1f} | {mask} | {rec} | {r['train_images_per_sec']:.1f} | "
                     f"{r['infer_images_per_sec']:.1f} | {1000 * r['seconds_per_image']:.1f} | "
                     f"{r['cnn_passes_per_image']:,} | {r['num_params']:,} | {r['num_steps']:,} | "
                     f"{r['num_eval_images']} |")
    md = head + "\n".join(lines) + "\n"
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write(md)
    fig = Figure(figsize=(9, 3.2), dpi=110)
    FigureCanvasAgg(fig)
    names = [TITLES[r["model"]] for r in rows]
    for i, (key, label, log) in enumerate((("AP50", "box AP50 (%)", False), ("AP", "box AP (%)", False),
                                           ("ms", "inference ms / image (log)", True))):
        ax = fig.add_subplot(1, 3, i + 1)
        vals = [1000 * r["seconds_per_image"] if key == "ms" else 100 * r["box"][key] for r in rows]
        ax.bar(range(len(rows)), vals, color=["C0", "C1", "C2", "C3"][:len(rows)])
        ax.set_xticks(range(len(rows)), names, rotation=20, fontsize=7)
        ax.set_title(label, fontsize=8)
        if log:
            ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(os.path.join(workdir, "comparison.png"))
    return md


def run(cfg, workdir: str) -> list[dict]:
    """Train and evaluate every model of ``cfg.models``; write results.{json,md}, PNGs; return the rows."""
    os.makedirs(workdir, exist_ok=True)
    for m in cfg.models:
        if m not in MODELS:
            raise ValueError(f"config.models: unknown model {m!r}; choose from {MODELS}")
    s = cfg.image_size
    train_ds, val_ds, gt, class_names = make_data(cfg)
    with cfg.unlocked():
        cfg.num_classes, cfg.class_names = len(class_names), tuple(class_names)
    windows = np.asarray(sliding_window_proposals((s, s), stride=cfg.window_stride, sizes=tuple(cfg.window_sizes),
                                                  aspect_ratios=tuple(cfg.window_ratios)))
    rows = []
    for i, name in enumerate(cfg.models):
        job0 = time.perf_counter()
        props = windows if name in ("rcnn", "fast_rcnn") else None
        if name == "rcnn":
            n1 = max(1, int(cfg.num_steps * cfg.rcnn_finetune_fraction))
            r1, t1, rep1, _ = train(cfg, name, make_model(cfg, name, "finetune"), train_ds, n1, proposals=props,
                                    seed_offset=i, desc="R-CNN stage 1 (CNN fine-tuning, softmax)")
            model = make_model(cfg, name, "svm")
            result, t2, rep, nparams = train(cfg, name, model, train_ds, max(1, cfg.num_steps - n1),
                                             variables=jax.device_get(r1.state.variables()), proposals=props,
                                             seed_offset=100 + i, desc="R-CNN stage 2 (SVMs + box regressors)")
            train_seconds = t1 + t2
            train_ips = cfg.batch_size * cfg.num_steps / (n1 / r1.images_per_sec * cfg.batch_size
                                                          + (cfg.num_steps - n1) / result.images_per_sec
                                                          * cfg.batch_size)
            rep = {k: rep[k] + rep1[k] for k in rep}
            indices = list(range(min(len(val_ds), cfg.num_val, cfg.rcnn_num_val)))  # slow by design
            ebs = cfg.rcnn_eval_batch_size
        else:
            model = make_model(cfg, name)
            result, train_seconds, rep, nparams = train(cfg, name, model, train_ds, cfg.num_steps, proposals=props,
                                                        seed_offset=i)
            train_ips = result.images_per_sec
            indices = list(range(min(len(val_ds), cfg.num_val)))
            ebs = cfg.window_eval_batch_size if name == "fast_rcnn" else cfg.eval_batch_size  # 3,068 RoIs each
        metrics, spi, out = evaluate(cfg, name, result.state, val_ds, gt, indices, props, ebs)
        save_detections(cfg, name, val_ds, out, indices, os.path.join(workdir, f"detections_{name}.png"))
        row = {"model": name, **metrics, "train_images_per_sec": float(train_ips),
               "infer_images_per_sec": 1.0 / spi, "seconds_per_image": spi,
               "cnn_passes_per_image": int(len(windows)) if name == "rcnn" else 1,
               "num_params": int(nparams), "train_seconds": train_seconds, "num_steps": cfg.num_steps,
               "num_eval_images": len(indices), "data_report": rep,
               "job_seconds": time.perf_counter() - job0}
        tqdm.write(f"{TITLES[name]}: box AP {100 * metrics['box']['AP']:.1f} AP50 {100 * metrics['box']['AP50']:.1f}"
                   + (f" mask AP {100 * metrics['mask']['AP']:.1f}" if "mask" in metrics else "")
                   + f"; {1000 * spi:.1f} ms/image; data {rep}")
        rows.append(row)
        md = write_table(rows, workdir)
        with open(os.path.join(workdir, "results.json"), "w") as f:
            json.dump({"rows": rows, "config": cfg.to_dict(), "devices": str(jax.devices())}, f, indent=1,
                      default=str)
    print(md)
    return rows


def main(argv):
    del argv
    run(FLAGS.config, FLAGS.workdir or "/tmp/train_detector")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
