"""Training and evaluation of the two-stage detectors (the logic of ``main.py``).

``run(config, workdir)`` trains every model of ``config.models`` with the library's training
system (``TrainState``, ``make_train_step`` with
:func:`vai_jax.detection.losses.detection_loss`, ``data_parallel`` over all devices, ``fit``)
and evaluates it with COCO AP (pycocotools). ``config.model`` holds the constructors' fields:
``backbone`` for :func:`vai_jax.create_model`, ``fpn`` for :class:`vai_jax.nn.fpn.FPN`,
``rpn`` for :class:`~vai_jax.detection.rpn.RegionProposalNetwork`, ``roi_stage`` for
:class:`~vai_jax.detection.roi_heads.RoIStage` and ``rcnn`` for
:class:`~vai_jax.detection.rcnn.RCNN`.

Data: ``ShapesDataset("detection")`` (or COCO-format files, or tfds VOC letterboxed to
``image_size``) through ``make_loader`` (padding to ``max_objects``; more objects are dropped
*and counted*, reported in results.json) and :class:`vai_jax.detection.inputs.DetectionBatches`
(targets checked on the host, sliding-window proposals for R-CNN and Fast R-CNN).
"""
from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

import vai_jax
from experiments.detection import plots
from vai_jax.analysis import count_params
from vai_jax.data.coco import CocoSource
from vai_jax.data.coco_export import to_coco
from vai_jax.data.pipeline import make_loader
from vai_jax.data.shapes import CLASS_NAMES, ShapesDataset
from vai_jax.data.sources import load_source
from vai_jax.data.transforms import ResizeAndPad
from vai_jax.detection import (RCNN, FastRCNN, FasterRCNN, RegionProposalNetwork, RoIStage,
                               mask_rcnn)
from vai_jax.detection.coco_eval import coco_ap, detections_to_coco, ground_truth_from_records
from vai_jax.detection.inputs import DetectionBatches, add_proposals, detection_preprocess
from vai_jax.detection.losses import detection_loss
from vai_jax.detection.postprocess import paste_masks
from vai_jax.detection.proposals import proposal_recall, sliding_window_proposals
from vai_jax.nn.fpn import FPN
from vai_jax.train import parallel
from vai_jax.train.loop import fit
from vai_jax.train.optim import make_optimizer, make_schedule
from vai_jax.train.state import TrainState
from vai_jax.train.step import make_train_step
from vai_jax.viz.tables import markdown_table

MODELS = ("rcnn", "fast_rcnn", "faster_rcnn", "mask_rcnn")
TITLES = {"rcnn": "R-CNN", "fast_rcnn": "Fast R-CNN", "faster_rcnn": "Faster R-CNN",
          "mask_rcnn": "Mask R-CNN"}


# ---------------------------------------------------------------------------------- models
def build_model(model_cfg, name: str, num_classes: int, *, rcnn_stage: str = "svm"):
    """One explicit table of the four detectors; every module gets its config dict as is."""
    backbone = vai_jax.create_model(**model_cfg.backbone)
    if name == "rcnn":
        return RCNN(backbone=backbone, num_classes=num_classes, stage=rcnn_stage, **model_cfg.rcnn)
    roi_stage = RoIStage(num_classes=num_classes, **model_cfg.roi_stage)
    if name == "fast_rcnn":
        return FastRCNN(backbone=backbone, roi_stage=roi_stage)
    parts = dict(backbone=backbone, rpn=RegionProposalNetwork(**model_cfg.rpn), roi_stage=roi_stage,
                 fpn=FPN(**model_cfg.fpn) if model_cfg.fpn else None)
    if name == "faster_rcnn":
        return FasterRCNN(**parts)
    if name == "mask_rcnn":
        return mask_rcnn(**parts)
    raise ValueError(f"unknown model {name!r}; choose from {MODELS}")


# ------------------------------------------------------------------------------------ data
def make_data(cfg):
    """(train source, val source, COCO ground truth of val (ids = index + 1), class names)."""
    s = cfg.image_size
    if cfg.data == "shapes":
        train_ds = ShapesDataset("detection", split="train", num_examples=cfg.num_train,
                                 image_size=s, seed=cfg.seed)
        val_ds = ShapesDataset("detection", split="validation", num_examples=cfg.num_val,
                               image_size=s, seed=cfg.seed)
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
    gt = ground_truth_from_records([val_ds[i] for i in range(n_val)],
                                   image_ids=range(1, n_val + 1), class_names=names)
    return train_ds, val_ds, gt, names


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


# -------------------------------------------------------------------------------- training
def train_model(cfg, name, model, train_ds, num_steps, *, num_classes, variables=None,
                proposals=None, seed_offset=0, desc=None):
    """Train ``model`` for ``num_steps``; returns (fit result, seconds, data report, params)."""
    rng = jax.random.PRNGKey(cfg.seed + seed_offset)
    init_rng, state_rng = jax.random.split(rng)
    s = cfg.image_size
    if variables is None:
        x = {"image": jnp.zeros((1, s, s, 3))}
        if proposals is not None:
            x.update(proposals=jnp.asarray(proposals)[None],
                     proposal_valid=jnp.ones((1, len(proposals)), bool))
        variables = jax.jit(lambda r: model.init(r, x, train=False))(init_rng)
    schedule_cfg = dict(cfg.schedule)
    schedule_cfg["warmup_steps"] = min(schedule_cfg["warmup_steps"], num_steps - 1)
    schedule = make_schedule(total_steps=num_steps, **schedule_cfg)
    tx = make_optimizer(learning_rate=schedule, **cfg.optimizer)
    mesh = parallel.make_mesh()
    parallel.check_batch_size(cfg.batch_size, mesh, "config.batch_size")
    state = parallel.replicate(TrainState.create(apply_fn=model.apply, variables=variables, tx=tx,
                                                 rng=state_rng), mesh)
    step = parallel.data_parallel(make_train_step(detection_loss, preprocess_fn=detection_preprocess),
                                  mesh)
    resize = None if isinstance(train_ds, ShapesDataset) else ResizeAndPad((s, s))
    loader = make_loader(train_ds, batch_size=cfg.batch_size, seed=cfg.seed + seed_offset,
                         transforms=resize, max_objects=cfg.max_objects, on_overflow="drop")
    batches = DetectionBatches(iter(loader), num_classes=num_classes, proposals=proposals,
                               keep_masks=name == "mask_rcnn")
    tqdm.write(f"--- training {desc or TITLES[name]}: {count_params(variables):,} parameters, "
               f"{num_steps} steps")
    t0 = time.perf_counter()
    result = fit(state, train_step=step, train_iter=batches, num_steps=num_steps,
                 batch_size=cfg.batch_size, log_every=cfg.log_every, progress=cfg.progress)
    return result, time.perf_counter() - t0, batches.report, count_params(variables)


# ------------------------------------------------------------------------------ evaluation
def predict(cfg, name, state, val_ds, indices, proposals=None, batch_size=50):
    """Inference over ``indices``; returns (outputs dict of NumPy, seconds excluding compile)."""
    fn = jax.jit(lambda v, x: state.apply_fn(v, detection_preprocess(x, None, train=False),
                                             train=False))
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
    """COCO box (and mask) AP, proposal and detection recall; (metrics, s / image, outputs)."""
    out, sec_per_image = predict(cfg, name, state, val_ds, indices, proposals, batch_size)
    ids = np.asarray(indices) + 1
    masks = None
    if "masks" in out and isinstance(val_ds, ShapesDataset):  # mask AP: shapes data only
        s = cfg.image_size
        paste = jax.jit(jax.vmap(lambda m, b: paste_masks(m, b, (s, s))))
        masks = np.concatenate([np.asarray(paste(out["masks"][i:i + 50], out["boxes"][i:i + 50])) >= 0.5
                                for i in range(0, len(ids), 50)])
        out["pasted_masks"] = masks
    res = detections_to_coco(ids, out["boxes"], out["scores"], out["classes"], out["valid"],
                             masks=masks)
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
        metrics["detection_recall"] = proposal_recall(out["boxes"], out["valid"], g["boxes"],
                                                      g["valid"])
    return metrics, sec_per_image, out


# ------------------------------------------------------------------------------- reporting
def results_table(rows) -> str:
    """The comparison as a markdown table, one row per model."""
    header = ("model", "box AP", "AP50", "AP75", "mask AP", "proposal recall@0.7", "train img/s",
              "infer img/s", "ms / image", "CNN passes / image", "params", "steps", "eval images")
    lines = []
    for r in rows:
        mask = f"{100 * r['mask']['AP']:.1f}" if "mask" in r else "-"
        rec = f"{100 * r['proposal_recall']['recall@0.7']:.1f}" if "proposal_recall" in r else "-"
        lines.append((TITLES[r["model"]], f"{100 * r['box']['AP']:.1f}", f"{100 * r['box']['AP50']:.1f}",
                      f"{100 * r['box']['AP75']:.1f}", mask, rec, f"{r['train_images_per_sec']:.1f}",
                      f"{r['infer_images_per_sec']:.1f}", f"{1000 * r['seconds_per_image']:.1f}",
                      f"{r['cnn_passes_per_image']:,}", f"{r['num_params']:,}", f"{r['num_steps']:,}",
                      r["num_eval_images"]))
    return markdown_table(header, lines) + "\n"


def train_and_evaluate_model(cfg, workdir, name, index, data, windows) -> dict:
    """Train and evaluate one model of ``cfg.models`` (``index`` offsets its seeds): its row.

    ``data`` is :func:`make_data`'s tuple; ``windows`` the sliding-window proposals ``[P, 4]``.
    Draws ``detections_<name>.png`` into ``workdir``.
    """
    train_ds, val_ds, gt, class_names = data
    job0 = time.perf_counter()
    num_classes = len(class_names)
    props = windows if name in ("rcnn", "fast_rcnn") else None
    if name == "rcnn":  # stage 1: fine-tune the CNN; stage 2: SVMs + box regressors on it
        n1 = max(1, int(cfg.num_steps * cfg.rcnn_finetune_fraction))
        r1, t1, rep1, _ = train_model(
            cfg, name, build_model(cfg.model, name, num_classes, rcnn_stage="finetune"), train_ds,
            n1, num_classes=num_classes, proposals=props, seed_offset=index,
            desc="R-CNN stage 1 (CNN fine-tuning, softmax)")
        result, t2, rep, nparams = train_model(
            cfg, name, build_model(cfg.model, name, num_classes, rcnn_stage="svm"), train_ds,
            max(1, cfg.num_steps - n1), num_classes=num_classes,
            variables=jax.device_get(r1.state.variables()), proposals=props,
            seed_offset=100 + index, desc="R-CNN stage 2 (SVMs + box regressors)")
        train_seconds = t1 + t2
        train_ips = cfg.batch_size * cfg.num_steps / (n1 / r1.images_per_sec * cfg.batch_size
                                                      + (cfg.num_steps - n1) / result.images_per_sec
                                                      * cfg.batch_size)
        rep = {k: rep[k] + rep1[k] for k in rep}
        indices = list(range(min(len(val_ds), cfg.num_val, cfg.rcnn_num_val)))  # slow by design
        ebs = cfg.rcnn_eval_batch_size
    else:
        result, train_seconds, rep, nparams = train_model(
            cfg, name, build_model(cfg.model, name, num_classes), train_ds, cfg.num_steps,
            num_classes=num_classes, proposals=props, seed_offset=index)
        train_ips = result.images_per_sec
        indices = list(range(min(len(val_ds), cfg.num_val)))
        # Fast R-CNN: every image brings all its sliding windows as RoIs.
        ebs = cfg.window_eval_batch_size if name == "fast_rcnn" else cfg.eval_batch_size
    metrics, spi, out = evaluate(cfg, name, result.state, val_ds, gt, indices, props, ebs)
    k = min(cfg.num_figure_images, len(indices))
    images, scales = load_images(cfg, val_ds, indices[:k])
    plots.plot_detections(images, scales, out, os.path.join(workdir, f"detections_{name}.png"),
                          class_names=class_names, titles=[f"{TITLES[name]} #{j}" for j in indices[:k]])
    row = {"model": name, **metrics, "train_images_per_sec": float(train_ips),
           "infer_images_per_sec": 1.0 / spi, "seconds_per_image": spi,
           "cnn_passes_per_image": int(len(windows)) if name == "rcnn" else 1,
           "num_params": int(nparams), "train_seconds": train_seconds, "num_steps": cfg.num_steps,
           "num_eval_images": len(indices), "data_report": rep,
           "job_seconds": time.perf_counter() - job0}
    tqdm.write(f"{TITLES[name]}: box AP {100 * metrics['box']['AP']:.1f} "
               f"AP50 {100 * metrics['box']['AP50']:.1f}"
               + (f" mask AP {100 * metrics['mask']['AP']:.1f}" if "mask" in metrics else "")
               + f"; {1000 * spi:.1f} ms/image; data {rep}")
    return row


def run(cfg, workdir: str) -> list[dict]:
    """Train and evaluate every model of ``cfg.models``; write ``results.json``, ``results.md``,
    ``comparison.png`` and ``detections_<model>.png``; return the rows."""
    os.makedirs(workdir, exist_ok=True)
    for m in cfg.models:
        if m not in MODELS:
            raise ValueError(f"config.models: unknown model {m!r}; choose from {MODELS}")
    s = cfg.image_size
    data = make_data(cfg)
    windows = np.asarray(sliding_window_proposals((s, s), **cfg.windows))
    rows = []
    for i, name in enumerate(cfg.models):
        rows.append(train_and_evaluate_model(cfg, workdir, name, i, data, windows))
        with open(os.path.join(workdir, "results.md"), "w") as f:
            f.write(results_table(rows))
        plots.plot_comparison(rows, os.path.join(workdir, "comparison.png"),
                              names=[TITLES[r["model"]] for r in rows])
        with open(os.path.join(workdir, "results.json"), "w") as f:
            json.dump({"rows": rows, "class_names": list(data[3]), "config": cfg.to_dict(),
                       "devices": str(jax.devices())}, f, indent=1, default=str)
    return rows
