r"""Train and compare semantic segmentation networks at an equal budget: FCN-32s, FCN-16s,
FCN-8s (shared ResNet backbone at output stride 32), DeepLab v3 (the same backbone made atrous,
output stride 8, ASPP), ESPNet (with and without hierarchical feature fusion), optionally the
encoder-decoder networks.

Default: the built-in shapes semantic masks, 64x64 (finishes on a 2-core CPU in < 15 min)::

  python experiments/train_segmenter.py --workdir /tmp/segmenter

Other configs::

  python experiments/train_segmenter.py --config=experiments/configs/segmenter_shapes.py:runlocal \
      --workdir /tmp/seg_smoke
  python experiments/train_segmenter.py --config=experiments/configs/segmenter_voc.py \
      --workdir /tmp/seg_voc      # PASCAL VOC 2012 masks (prepare voc_segmentation/2012 first)

Every model gets the same number of steps, batch size and optimiser. Writes to ``--workdir``:
``results.json`` and ``results.md`` (mIoU, pixel accuracy, parameters, multiply-accumulates,
inference and training images/s per model), ``comparison.png``, ``predictions.png`` (test
images, ground truth, each model's prediction) and ``gridding.png``: the support of one output
unit's input gradient in a naive dilated-branch stack vs the same with hierarchical feature
fusion, and, when both ESPNets are trained, their masks, confidence and last stride-4 ESP
block activations side by side with the share of their power at periods of 2-4 pixels
(``results.json`` ``gridding_high_freq``). Both ESPNets use the config's ``decoder_kernel``
(4: bilinear-initialised decoder, so the decoder adds no checkerboard of its own).
"""
from __future__ import annotations

import functools
import json
import os
import time

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS


def _define_flags():
    """Only when run as a script: importing this module (tests) defines no absl flags, so it
    cannot clash with other experiments' ``--workdir``/``--config``."""
    flags.DEFINE_string("workdir", None, "Output folder.")
    config_flags.DEFINE_config_file(
        "config", os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs",
                               "segmenter_shapes.py"),
        "Path to an ml_collections config file (optionally ':variant').", lock_config=True)

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from vai_jax.analysis import summarize  # noqa: E402
from vai_jax.backbones.atrous import AtrousResNet  # noqa: E402
from vai_jax.data.pipeline import make_loader  # noqa: E402
from vai_jax.data.sources import ArraySource  # noqa: E402
from vai_jax.data.shapes import CLASS_NAMES as SHAPES_CLASS_NAMES  # noqa: E402
from vai_jax.data.shapes import ShapesDataset  # noqa: E402
from vai_jax.segmentation.metrics import ConfusionMatrix, confusion_matrix  # noqa: E402
from vai_jax.segmentation.heads import DeepLabHead, FCNHead  # noqa: E402
from vai_jax.segmentation.models import EncoderDecoder, ESPNet, Segmenter  # noqa: E402
from vai_jax.segmentation.losses import (check_segmentation_labels,  # noqa: E402
                                         inverse_frequency_weights, pixel_cross_entropy)
from vai_jax.nn.dilated import ESPBlock  # noqa: E402
from vai_jax.train import parallel  # noqa: E402
from vai_jax.train.loop import fit  # noqa: E402
from vai_jax.train.optim import make_optimizer, make_schedule  # noqa: E402
from vai_jax.train.state import TrainState, init_variables  # noqa: E402
from vai_jax.train.step import make_train_step  # noqa: E402

MEAN, STD = 0.5, 0.25


# ----------------------------------------------------------------------------- models
def _backbone(cfg, output_stride: int) -> AtrousResNet:
    b = cfg.backbone
    return AtrousResNet(stage_sizes=tuple(b.stage_sizes), widths=tuple(b.widths),
                        stem_width=b.stem_width, stem_kernel=3, output_stride=output_stride)


def build_model(name: str, cfg, num_classes: int) -> nn.Module:
    """The explicit table of the models this experiment compares."""
    fc = tuple(cfg.fcn.fc_features)
    fcn = lambda v: Segmenter(_backbone(cfg, 32), FCNHead(num_classes, variant=v, fc_features=fc,
                                                          fc_kernel=cfg.fcn.fc_kernel), min_size=32)
    deeplab = lambda os_: Segmenter(
        _backbone(cfg, os_),
        DeepLabHead(num_classes, feature_stride=os_, features=cfg.deeplab.features,
                    rates=tuple(r * 16 // os_ for r in cfg.deeplab.rates)),
        min_size=os_)
    esp = functools.partial(ESPNet, num_classes, widths=tuple(cfg.espnet.widths),
                            alpha=cfg.espnet.alpha, beta=cfg.espnet.beta,
                            decoder_kernel=cfg.espnet.decoder_kernel)
    table = {
        "fcn32s": lambda: fcn(32),
        "fcn16s": lambda: fcn(16),
        "fcn8s": lambda: fcn(8),
        "deeplab_os16": lambda: deeplab(16),
        "deeplab": lambda: deeplab(8),
        "espnet": lambda: esp(hff=True),
        "espnet_nohff": lambda: esp(hff=False),
        "espnet_c": lambda: esp(decoder=False),
        "encdec_unpool": lambda: EncoderDecoder(num_classes, widths=tuple(cfg.encdec.widths)),
        "encdec_learned": lambda: EncoderDecoder(num_classes, widths=tuple(cfg.encdec.widths),
                                                 upsample="learned"),
    }
    if name not in table:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(table)}")
    return table[name]()


# ----------------------------------------------------------------------------- data


def materialise_shapes(split: str, n: int, image_size: int, seed: int, chunk: int = 500):
    ds = ShapesDataset("detection", split=split, num_examples=n, image_size=image_size, seed=seed)
    parts = [ds.get_batch(range(i, min(i + chunk, n))) for i in range(0, n, chunk)]
    semantic = np.concatenate([p["semantic"] for p in parts]).astype(np.int32)
    return ArraySource({"image": np.concatenate([p["image"] for p in parts]), "semantic": semantic})


class CheckLabels:
    """Transform that rejects a record whose mask size differs from the image or whose labels
    fall outside ``[0, num_classes)`` other than ``ignore_label`` (clear ValueError)."""

    def __init__(self, num_classes: int, ignore_label: int):
        self.num_classes, self.ignore_label = num_classes, ignore_label

    def __call__(self, record, rng=None):
        del rng
        if record["semantic"].shape != record["image"].shape[:2]:
            raise ValueError(f"semantic mask shape {record['semantic'].shape} differs from the "
                             f"image's {record['image'].shape[:2]}")
        check_segmentation_labels(record["semantic"], self.num_classes,
                                  ignore_label=self.ignore_label, name="semantic")
        return record


def build_data(cfg):
    """(train source, test source, num_classes, class names, transforms)."""
    if cfg.dataset == "shapes":
        names = ("background",) + tuple(SHAPES_CLASS_NAMES)
        train = materialise_shapes("train", cfg.num_train_examples, cfg.image_size, cfg.seed)
        test = materialise_shapes("test", cfg.num_test_examples, cfg.image_size, cfg.seed)
        return train, test, len(names), names, [CheckLabels(len(names), cfg.ignore_label)]
    if cfg.dataset == "voc":
        from vai_jax.data.segmentation_sources import VOC_CLASS_NAMES, load_segmentation_source
        from vai_jax.data.transforms import Resize

        data_dir = cfg.data_dir or None
        train = load_segmentation_source(cfg.tfds_name, cfg.train_split, data_dir=data_dir)
        test = load_segmentation_source(cfg.tfds_name, cfg.test_split, data_dir=data_dir)
        n = len(VOC_CLASS_NAMES)
        return train, test, n, VOC_CLASS_NAMES, [CheckLabels(n, cfg.ignore_label),
                                                 Resize((cfg.image_size, cfg.image_size))]
    raise ValueError(f"config.dataset must be 'shapes' or 'voc'; got {cfg.dataset!r}")


def preprocess(batch, rng, *, train: bool):
    del rng, train
    return (batch["image"].astype(jnp.float32) / 255.0 - MEAN) / STD


# ----------------------------------------------------------------------------- train / eval
def class_weights(cfg, train_source, num_classes, max_examples: int = 2000):
    """``(count + 1)^-power`` per class over (up to ``max_examples``) training masks, or None."""
    if not cfg.class_weight_power:
        return None
    counts = np.zeros(num_classes, np.int64)
    for i in range(min(len(train_source), max_examples)):
        sem = np.asarray(train_source[i]["semantic"]).reshape(-1)
        counts += np.bincount(sem[(sem >= 0) & (sem < num_classes)], minlength=num_classes)
    return inverse_frequency_weights(counts, power=cfg.class_weight_power)


def train_one(name, cfg, num_classes, train_source, transforms, mesh, weights=None):
    model = build_model(name, cfg, num_classes)
    rng = jax.random.PRNGKey(cfg.seed)
    init_rng, state_rng = jax.random.split(rng)
    variables = init_variables(model, (1, cfg.image_size, cfg.image_size, 3), rng=init_rng)
    schedule = make_schedule("cosine", base_lr=cfg.lr, total_steps=cfg.num_steps,
                             warmup_steps=cfg.warmup_steps)
    tx = make_optimizer("adamw", learning_rate=schedule, weight_decay=cfg.weight_decay)
    state = parallel.replicate(TrainState.create(apply_fn=model.apply, variables=variables,
                                                 tx=tx, rng=state_rng), mesh)
    loss_fn = lambda out, batch: pixel_cross_entropy(out, batch["semantic"],
                                                     ignore_label=cfg.ignore_label,
                                                     class_weights=weights)
    step = parallel.data_parallel(make_train_step(loss_fn, preprocess_fn=preprocess), mesh)
    loader = make_loader(train_source, batch_size=cfg.batch_size, seed=cfg.seed, shuffle=True,
                         transforms=transforms)
    result = fit(state, train_step=step, train_iter=iter(loader), num_steps=cfg.num_steps,
                 batch_size=cfg.batch_size, log_every=cfg.log_every, progress=cfg.progress)
    return model, result


def evaluate_model(model, variables, test_source, cfg, num_classes, transforms):
    """(metrics dict, first predictions [N, H, W]) over the test set."""
    forward = jax.jit(lambda v, x: jnp.argmax(model.apply(v, preprocess({"image": x}, None,
                                                                       train=False),
                                                          train=False), -1))
    cm_fn = jax.jit(lambda y, p, m: confusion_matrix(y, p, num_classes,
                                                     ignore_label=cfg.ignore_label, mask=m))
    acc = ConfusionMatrix(num_classes)
    loader = make_loader(test_source, batch_size=cfg.eval_batch_size, seed=0, shuffle=False,
                         num_epochs=1, drop_remainder=False, transforms=transforms)
    keep = []
    for batch in loader:
        n = len(batch["image"])
        pad = cfg.eval_batch_size - n
        img, sem = batch["image"], batch["semantic"]
        if pad:
            img = np.concatenate([img, np.repeat(img[-1:], pad, 0)])
            sem = np.concatenate([sem, np.repeat(sem[-1:], pad, 0)])
        mask = (np.arange(cfg.eval_batch_size) < n)[:, None, None]
        pred = forward(variables, img)
        acc.update(cm_fn(sem, pred, mask))
        if sum(len(k) for k in keep) < cfg.num_figure_examples:
            keep.append(np.asarray(pred[:n]))
    metrics = acc.result()
    metrics["object_iou"] = object_iou(acc.matrix)
    return metrics, np.concatenate(keep)[:cfg.num_figure_examples]


def object_iou(cm) -> float:
    """IoU of "some object" (classes ``1..K-1`` merged) against background (class 0) from a
    confusion matrix ``[K, K]``: how well the masks separate objects from background, whatever
    the class they give them (a shape-class confusion costs mIoU but not this)."""
    cm = np.asarray(cm, np.float64)
    tp, fp, fn = cm[1:, 1:].sum(), cm[0, 1:].sum(), cm[1:, 0].sum()
    return float(tp / (tp + fp + fn)) if tp + fp + fn else float("nan")


def inference_images_per_sec(model, variables, cfg, repeats: int) -> float:
    x = jnp.zeros((cfg.eval_batch_size, cfg.image_size, cfg.image_size, 3))
    f = jax.jit(lambda v, x: model.apply(v, x, train=False))
    f(variables, x).block_until_ready()
    t = time.perf_counter()
    for _ in range(repeats):
        out = f(variables, x)
    out.block_until_ready()
    return repeats * cfg.eval_batch_size / (time.perf_counter() - t)


# ----------------------------------------------------------------------------- figures
def _palette(num_classes):
    cmap = plt.get_cmap("tab10" if num_classes <= 10 else "tab20")
    colours = np.array([cmap(i % cmap.N)[:3] for i in range(num_classes)])
    colours[0] = 0.0  # background black
    return colours


def _colourise(sem, colours, ignore_label):
    sem = np.asarray(sem)
    out = colours[np.clip(sem, 0, len(colours) - 1)]
    out[sem == ignore_label] = 1.0
    return out


def plot_comparison(rows, path):
    names = [r["model"] for r in rows]
    fields = [("miou", "test mIoU"), ("params", "parameters"), ("macs", "multiply-accumulates"),
              ("inference_images_per_sec", "inference images/s")]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for ax, (key, title) in zip(axes, fields):
        vals = [r[key] for r in rows]
        ax.bar(range(len(names)), vals, color=plt.get_cmap("tab10")(np.arange(len(names)) % 10))
        ax.set_xticks(range(len(names)), names, rotation=40, ha="right")
        ax.set_title(title)
        if key in ("params", "macs"):
            ax.set_yscale("log")
        for i, v in enumerate(vals):
            ax.text(i, v, f"{v:.3g}", ha="center", va="bottom", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_predictions(images, truth, preds: dict, num_classes, ignore_label, path):
    colours = _palette(num_classes)
    n = len(images)
    cols = 2 + len(preds)
    fig, axes = plt.subplots(n, cols, figsize=(1.7 * cols, 1.7 * n), squeeze=False)
    for i in range(n):
        panels = [("image", images[i]), ("truth", _colourise(truth[i], colours, ignore_label))]
        panels += [(k, _colourise(v[i], colours, ignore_label)) for k, v in preds.items()]
        for j, (title, im) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(im, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


class _DilatedStack(nn.Module):
    """Stem conv then ``depth`` stride-1 ESP blocks (no residual), for the receptive-field map."""

    width: int
    depth: int
    hff: bool

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = nn.Conv(self.width, (3, 3), name="stem")(x)
        for i in range(self.depth):
            x = ESPBlock(self.width, hff=self.hff, residual=False, output_norm_act=False,
                         name=f"esp{i + 1}")(x, train=train)
        return x


def effective_receptive_fields(size: int = 65, width: int = 20, depth: int = 2, seed: int = 0,
                               inits: int = 4):
    """|d out[centre, c] / d x| summed over input channels and averaged over random inits, per
    output channel group (branch), for the naive and the HFF stack. Returns {hff: [K, H, W]}."""
    out = {}
    x = jnp.zeros((1, size, size, 3))
    c = size // 2
    for hff in (False, True):
        net = _DilatedStack(width, depth, hff)
        maps = 0.0
        for s in range(inits):
            v = net.init(jax.random.PRNGKey(seed + s), x, train=False)
            d = width // 5
            groups = [range(0, width - 4 * d)] + [range(width - (4 - k) * d, width - (3 - k) * d)
                                                  for k in range(4)]

            def unit(x, idx):
                y = net.apply(v, x, train=False)
                return jnp.sum(y[0, c, c, jnp.asarray(list(idx))])

            maps = maps + jnp.stack([jnp.abs(jax.grad(unit)(x + 0.1, g)).sum(-1)[0]
                                     for g in groups])
        out[hff] = np.asarray(maps)
    return out


def high_frequency_fraction(maps) -> float:
    """Share of the spatial power of ``maps [N, h, w, C]`` (each map's mean removed) at
    frequencies with ``max(|f_y|, |f_x|) >= 1/4`` cycles per pixel, i.e. periods of 2 to 4
    pixels: near 0 for smooth maps, large for a checkerboard / gridding pattern (a 2×2
    checkerboard alone gives 1). Averaged over maps, weighted by their power."""
    a = np.asarray(maps, np.float64)
    a = a - a.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(a, axes=(1, 2))) ** 2
    fy = np.abs(np.fft.fftfreq(a.shape[1]))[:, None]
    fx = np.abs(np.fft.fftfreq(a.shape[2]))[None, :]
    high = (np.maximum(fy, fx) >= 0.25)[None, :, :, None]
    total = power.sum()
    return float((power * high).sum() / total) if total > 0 else 0.0


def espnet_internals(model, variables, images, cfg) -> dict:
    """Predictions, confidence (max softmax probability) ``[N, H, W]`` and the output of the
    last stride-4 ESP block (``level2_<alpha>``) of a trained ESPNet, restricted to the
    channels of its dilated branches (rates 2, 4, …; with HFF their cumulative sums):
    ``[N, H/4, W/4, w2 − first]`` where ``first = w2 − (K − 1)·⌊w2 / K⌋`` is the width of
    the rate-1 branch."""
    from vai_jax.analysis.layers import LOGITS, layer_outputs

    block = f"level2_{cfg.espnet.alpha}"
    x = preprocess({"image": jnp.asarray(images)}, None, train=False)
    out = jax.jit(lambda v, x: layer_outputs(model, v, x, [block, LOGITS], train=False))(
        variables, x)
    prob = jax.nn.softmax(out[LOGITS].astype(jnp.float32), -1)
    w2, k = out[block].shape[-1], model.branches
    first = w2 - (k - 1) * (w2 // k)
    return {"pred": np.asarray(jnp.argmax(prob, -1)), "confidence": np.asarray(prob.max(-1)),
            "activation": np.asarray(out[block][..., first:]), "block": block}


def plot_gridding(erf, internals, images, truth, num_classes, ignore_label, path):
    """Top: support of one output unit's input gradient after 2 stride-1 ESP blocks, per
    branch, naive vs HFF (``erf`` from :func:`effective_receptive_fields`). Bottom (when
    ``internals`` = {"espnet_nohff": ..., "espnet": ...} from :func:`espnet_internals`): per
    test image, the trained networks' masks, confidence and mean |activation| of the dilated
    branches of the last stride-4 ESP block (each panel scaled to its own range), without and
    with HFF, with their high-frequency power share."""
    k = erf[False].shape[0]
    n = 0 if internals is None else min(3, len(images))
    fig = plt.figure(figsize=(17, 4.6 + 2.1 * n))
    top, bottom = (fig.subfigures(2, 1, height_ratios=[4.6, 2.1 * n]) if n
                   else (fig.subfigures(1, 1), None))
    axes = top.subplots(2, k, squeeze=False)
    rates = [2 ** i for i in range(k)]
    for r, hff in enumerate((False, True)):
        for j in range(k):
            ax = axes[r, j]
            m = erf[hff][j]
            ax.imshow(m > 1e-6 * m.max(), cmap="gray_r", interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"{'HFF' if hff else 'naive'}: branch {j + 1} (rate {rates[j]})",
                         fontsize=8)
    top.suptitle("Support of d(one output unit)/d(input) after 2 stride-1 ESP blocks, random "
                 "weights (nonzero pixels black): the naive stack reads a sparse lattice, HFF "
                 "fills it", fontsize=10)
    if n:
        colours = _palette(num_classes)
        cols = 8
        ax2 = bottom.subplots(n, cols, squeeze=False)
        hf = {name: (high_frequency_fraction(v["confidence"][..., None]),
                     high_frequency_fraction(v["activation"])) for name, v in internals.items()}
        for i in range(n):
            nh, h = internals["espnet_nohff"], internals["espnet"]
            act = lambda v: np.abs(v["activation"][i]).mean(-1)
            panels = [("image", images[i], {}),
                      ("truth", _colourise(truth[i], colours, ignore_label), {}),
                      ("mask, no HFF", _colourise(nh["pred"][i], colours, ignore_label), {}),
                      ("mask, HFF", _colourise(h["pred"][i], colours, ignore_label), {}),
                      ("confidence, no HFF", nh["confidence"][i],
                       dict(cmap="magma", vmin=0, vmax=1)),
                      ("confidence, HFF", h["confidence"][i], dict(cmap="magma", vmin=0, vmax=1)),
                      (f"|{nh['block']}| dilated, no HFF", act(nh), dict(cmap="viridis")),
                      (f"|{h['block']}| dilated, HFF", act(h), dict(cmap="viridis"))]
            for j, (title, im, kw) in enumerate(panels):
                ax = ax2[i, j]
                ax.imshow(im, interpolation="nearest", **kw)
                ax.set_xticks([]), ax.set_yticks([])
                if i == 0:
                    ax.set_title(title, fontsize=8)
        def verdict(i, what):  # a ratio under 1.5 is not called gridding
            ratio = hf["espnet_nohff"][i] / max(hf["espnet"][i], 1e-9)
            return (f"{what}: {hf['espnet_nohff'][i]:.1%} without vs {hf['espnet'][i]:.1%} "
                    f"with HFF (x{ratio:.2f}: "
                    + ("clearly more gridding without HFF)" if ratio >= 1.5
                       else "no clear gridding difference)"))

        bottom.suptitle(
            "Trained ESPNets (bilinear-initialised kernel-4 decoder), same budget. Power at "
            "periods of 2-4 px (gridding), "
            f"{verdict(0, 'output confidence')};\n"
            f"{verdict(1, 'dilated branches of the last stride-4 ESP block')}", fontsize=9)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None if internals is None else {
        name: {"confidence_high_freq": v[0], "activation_high_freq": v[1]}
        for name, v in hf.items()}


# ----------------------------------------------------------------------------- main job
def run(cfg, workdir: str) -> dict:
    t0, cpu0 = time.perf_counter(), time.process_time()
    os.makedirs(workdir, exist_ok=True)
    mesh = parallel.make_mesh()
    parallel.check_batch_size(cfg.batch_size, mesh, "config.batch_size")
    train_source, test_source, num_classes, class_names, transforms = build_data(cfg)
    rows, preds, trained = [], {}, {}
    weights = class_weights(cfg, train_source, num_classes)
    for name in cfg.models:
        tqdm.write(f"== {name}")
        model, result = train_one(name, cfg, num_classes, train_source, transforms, mesh,
                                  weights)
        variables = jax.device_get(result.state.variables())
        metrics, pred = evaluate_model(model, variables, test_source, cfg, num_classes,
                                       transforms)
        summary = summarize(model, (1, cfg.image_size, cfg.image_size, 3), train=False)
        row = {"model": name, "miou": metrics["miou"], "pixel_accuracy": metrics["pixel_accuracy"],
               "mean_accuracy": metrics["mean_accuracy"], "object_iou": metrics["object_iou"],
               "iou": [None if np.isnan(v) else float(v) for v in metrics["iou"]],
               "params": summary.params, "macs": summary.macs,
               "inference_images_per_sec": inference_images_per_sec(model, variables, cfg,
                                                                     cfg.bench_repeats),
               "train_images_per_sec": result.images_per_sec,
               "train_seconds": result.train_seconds, "steps": result.step}
        tqdm.write(f"{name}: mIoU {row['miou']:.3f}, object IoU {row['object_iou']:.3f}, "
                   f"pixel acc {row['pixel_accuracy']:.3f}, "
                   f"{row['params']:,} params, {row['macs'] / 1e6:.1f} M MACs, "
                   f"{row['inference_images_per_sec']:.0f} img/s inference")
        rows.append(row)
        preds[name] = pred
        if name in ("espnet", "espnet_nohff"):
            trained[name] = (model, variables)
    n_fig = min(cfg.num_figure_examples, len(test_source))
    test_records = [transforms_apply(transforms, test_source[i]) for i in range(n_fig)]
    images = np.stack([r["image"] for r in test_records])
    truth = np.stack([r["semantic"] for r in test_records])
    plot_comparison(rows, os.path.join(workdir, "comparison.png"))
    plot_predictions(images, truth, {k: v[:n_fig] for k, v in preds.items()}, num_classes,
                     cfg.ignore_label, os.path.join(workdir, "predictions.png"))
    internals = None
    if set(trained) == {"espnet", "espnet_nohff"}:
        internals = {k: espnet_internals(*trained[k], images, cfg) for k in trained}
    erf = effective_receptive_fields(cfg.gridding.size, inits=cfg.gridding.inits)
    gridding = plot_gridding(erf, internals, images, truth, num_classes, cfg.ignore_label,
                             os.path.join(workdir, "gridding.png"))
    out = {"rows": rows, "class_names": list(class_names), "dataset": cfg.dataset,
           "image_size": cfg.image_size, "num_steps": cfg.num_steps,
           "class_weights": None if weights is None else weights.tolist(),
           "gridding_high_freq": gridding,
           "batch_size": cfg.batch_size, "wall_seconds": time.perf_counter() - t0,
           "process_cpu_seconds": time.process_time() - cpu0,
           "load_average": os.getloadavg(),
           "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
           "config": cfg.to_dict()}
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump(out, f, indent=2, default=str)
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write(results_table(rows) + "\n")
    return out


def transforms_apply(transforms, record):
    for t in transforms:
        record = t(record, np.random.default_rng(0))
    return record


def results_table(rows) -> str:
    lines = ["| model | mIoU | object IoU | pixel acc. | params | MACs | inference img/s | "
             "train img/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['miou']:.3f} | {r['object_iou']:.3f} | "
                     f"{r['pixel_accuracy']:.3f} | "
                     f"{r['params']:,} | {r['macs'] / 1e6:.2f} M | "
                     f"{r['inference_images_per_sec']:.0f} | {r['train_images_per_sec']:.0f} |")
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.workdir:
        raise app.UsageError("--workdir is required")
    logging.set_verbosity(logging.WARNING)
    out = run(FLAGS.config, FLAGS.workdir)
    print(results_table(out["rows"]))
    print(f"done in {out['wall_seconds']:.0f} s wall, {out['process_cpu_seconds']:.0f} s "
          f"process CPU (load average {out['load_average'][0]:.1f}); results in {FLAGS.workdir}")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
