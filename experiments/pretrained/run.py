"""A torchvision checkpoint converted to vai_jax and run on a photograph (the logic of
``main.py``): ``run(name, checkpoint, workdir)`` converts the checkpoint with
:func:`vai_jax.weights.from_torchvision`, prepares the image as torchvision's evaluation
transform of the name's weights does, runs the model once (jit) and writes ``<name>.png``:
the top-5 classes of a classifier, the boxes and labels (with masks, or keypoints and the
person skeleton) of a detector, the colour-coded class map of a segmenter.
"""
from __future__ import annotations

import functools
import os
import time

import jax
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from PIL import Image

from vai_jax import weights
from vai_jax.weights import catalog
from vai_jax.viz import draw

HERE = os.path.dirname(os.path.abspath(__file__))
# The astronaut Eileen Collins (NASA, public domain; scikit-image's ``astronaut``), 512 x 512.
IMAGE = os.path.join(HERE, "astronaut.jpg")
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
DETECTION_MAX_RATIO = 1333 / 800  # torchvision's max_size / min_size


def checkpoint_help(name: str) -> str:
    """Where to get ``name``'s checkpoint and what to pass, for a run without one."""
    task = weights.task_of(name)  # ValueError listing the names for an unknown one
    base = name[len("timm/"):] if name.startswith("timm/") else name
    if "." in base:  # a timm name: the weights are on the Hugging Face hub as safetensors
        url = f"https://huggingface.co/timm/{base}/resolve/main/model.safetensors"
        file = "model.safetensors"
        needs = "A .safetensors file needs no torch."
    else:
        url = weights.URLS[name]
        file = url.rsplit("/", 1)[1]
        needs = ("Reading a .pth file needs torch (pip install -e \".[torch]\"); a .safetensors "
                 "or .npz copy of the same state dict needs none.")
    return (f"no --checkpoint given. The pretrained {task} weights of {name} are at\n"
            f"  {url}\n"
            f"Download the file (e.g. curl -LO {url}), then run\n"
            f"  python experiments/pretrained/main.py --name {name} --checkpoint {file}\n"
            f"{needs}")


def load_image(path: str | None = None) -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB (the bundled photograph by default)."""
    path = IMAGE if path is None else path
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image {path} does not exist")
    return np.asarray(Image.open(path).convert("RGB"))


def _resize_shorter(image: np.ndarray, side: int) -> np.ndarray:
    """Bilinear resize (anti-aliased when shrinking) of the shorter side to ``side``, the longer
    in proportion (truncated), as torchvision's ``Resize(side)``."""
    h, w = image.shape[:2]
    if h <= w:
        size = (max(1, int(side * w / h)), side)
    else:
        size = (side, max(1, int(side * h / w)))
    return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))


def _normalise(image: np.ndarray) -> np.ndarray:
    x = image.astype(np.float32) / np.float32(255.0)
    return ((x - IMAGENET_MEAN) / IMAGENET_STD)[None].astype(np.float32)


def prepare(name: str, image: np.ndarray, size: int | None = None):
    """``(x, shown, model_kwargs)``: the model's input ``[1, h, w, 3]`` float32, the image as
    the model sees it (uint8) and the builder arguments the size needs.

    * classifier: shorter side resized to ``resize``, centre crop ``crop`` (the name's
      evaluation transform, :func:`vai_jax.weights.catalog.classifier_sizes`; (256, 224) or
      Inception v3's (342, 299) for a timm name; ``size`` sets the crop and scales the resize
      with it), ImageNet-normalised;
    * segmenter: shorter side resized to 520 (``size``), ImageNet-normalised;
    * detector: the image in [0, 1] (the model resizes and normalises it; ``size`` sets its
      ``min_size``, ``max_size`` in torchvision's 800 : 1333 ratio).
    """
    task = weights.task_of(name)
    if task == "detection":
        kwargs = {} if size is None else dict(min_size=size,
                                              max_size=int(round(size * DETECTION_MAX_RATIO)))
        return (image.astype(np.float32) / np.float32(255.0))[None], image, kwargs
    if task == "segmentation":
        shown = _resize_shorter(image, catalog.SEGMENTATION_RESIZE if size is None else size)
        return _normalise(shown), shown, {}
    arch, _, tag = name.split("/")[-1].partition(".")
    if tag:  # a timm copy ("resnet50.tv_in1k"): torchvision's first (V1) weights' sizes
        resize, crop = (342, 299) if arch == "inception_v3" else (256, 224)
    else:
        resize, crop = catalog.classifier_sizes(name)
    if size is not None:
        resize, crop = int(round(size * resize / crop)), size
    resized = _resize_shorter(image, resize)
    top, left = (resized.shape[0] - crop) // 2, (resized.shape[1] - crop) // 2
    shown = resized[top:top + crop, left:left + crop]
    return _normalise(shown), shown, {}


@functools.partial(jax.jit, static_argnums=0)
def infer(model, variables, x):
    """``model.apply(variables, x, train=False)``, compiled once per model and input shape."""
    return model.apply(variables, x, train=False)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def summarise(name: str, outputs, *, top_k: int = 5, score_threshold: float = 0.5) -> dict:
    """The result in words and numbers.

    Returns ``{"lines": [str], ...}`` and, per task: ``"top"`` (``[(class index, name,
    probability)]``, best first), ``"detections"`` (``[{"index", "label", "name", "score",
    "box"}]`` with ``score >= score_threshold``, best first), or ``"classes"`` (``[(class index,
    name, pixel fraction)]`` of the arg-max map, largest first) and ``"class_map"`` ``[H, W]``.
    """
    task = weights.task_of(name)
    names = catalog.categories(name.split("/")[-1].split(".")[0])
    label = lambda i: names[i] if 0 <= i < len(names) else str(i)  # noqa: E731
    if task == "classification":
        logits, _ = outputs
        probs = _softmax(np.asarray(logits)[0])
        order = np.argsort(-probs, kind="stable")[:top_k]
        top = [(int(i), label(int(i)), float(probs[i])) for i in order]
        lines = [f"top-{top_k}:"] + [f"  {p:6.1%}  {n} ({i})" for i, n, p in top]
        return {"lines": lines, "top": top}
    if task == "detection":
        scores = np.asarray(outputs["scores"])[0]
        valid = np.asarray(outputs["valid"])[0]
        keep = [int(i) for i in np.flatnonzero(valid & (scores >= score_threshold))]
        keep.sort(key=lambda i: -scores[i])
        dets = [{"index": i, "label": int(outputs["labels"][0, i]),
                 "name": label(int(outputs["labels"][0, i])), "score": float(scores[i]),
                 "box": [float(v) for v in np.asarray(outputs["boxes"])[0, i]]} for i in keep]
        lines = [f"{len(dets)} detections with score >= {score_threshold} "
                 f"(of {int(valid.sum())} kept by the model):"]
        lines += [f"  {d['score']:.3f}  {d['name']}  box [" + ", ".join(
            f"{v:.1f}" for v in d["box"]) + "]" for d in dets]
        return {"lines": lines, "detections": dets}
    class_map = np.argmax(np.asarray(outputs["out"])[0], axis=-1)
    counts = np.bincount(class_map.ravel(), minlength=len(names))
    present = [int(i) for i in np.argsort(-counts, kind="stable") if counts[i]]
    classes = [(i, label(i), float(counts[i] / class_map.size)) for i in present]
    lines = [f"class map {class_map.shape[0]}x{class_map.shape[1]}: " + ", ".join(
        f"{n} {f:.1%}" for _, n, f in classes)]
    return {"lines": lines, "classes": classes, "class_map": class_map}


def voc_palette(n: int = 256) -> np.ndarray:
    """``[n, 3]`` uint8: PASCAL VOC's colour map (class ``c``'s bits spread over R, G, B)."""
    palette = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, rgb = i, [0, 0, 0]
        for j in range(8):
            for k in range(3):
                rgb[k] |= ((c >> k) & 1) << (7 - j)
            c >>= 3
        palette[i] = rgb
    return palette


def _figure(width_in: float, height_in: float):
    fig = Figure(figsize=(width_in, height_in), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save_png(path: str, name: str, shown: np.ndarray, outputs, summary: dict, *,
             score_threshold: float = 0.5) -> str:
    """Draw the result over the image the model saw and write the PNG."""
    task = weights.task_of(name)
    if task == "classification":
        fig = _figure(8, 3.6)
        ax = fig.add_axes((0.01, 0.02, 0.42, 0.9))
        draw.draw_image(ax, shown)
        ax.set_title(name, fontsize=9)
        bars = fig.add_axes((0.62, 0.12, 0.35, 0.76))
        top = summary["top"]
        bars.barh(range(len(top))[::-1], [p for _, _, p in top], color="tab:blue")
        for row, (_, _, p) in zip(range(len(top))[::-1], top):
            bars.text(p + 0.01, row, f"{p:.1%}", va="center", fontsize=7)
        bars.set_yticks(range(len(top))[::-1], [n for _, n, _ in top], fontsize=8)
        bars.set_xlim(0, 1)
        bars.set_xlabel("probability", fontsize=8)
        bars.tick_params(axis="x", labelsize=7)
    elif task == "detection":
        height = 6 * shown.shape[0] / shown.shape[1]
        fig = _figure(6, height + 0.3)
        ax = fig.add_axes((0, 0, 1, height / (height + 0.3)))
        draw.draw_image(ax, shown)
        idx = [d["index"] for d in summary["detections"]]
        labels = np.asarray(outputs["labels"])[0, idx]
        if "masks" in outputs and idx:
            draw.draw_masks(ax, np.asarray(outputs["masks"])[0, idx] >= 0.5, classes=labels)
        if "keypoints" in outputs and idx:
            kps = np.array(np.asarray(outputs["keypoints"])[0, idx])
            kps[..., 2] = 2  # every keypoint of a kept person is drawn (the score is a logit)
            draw.draw_keypoints(ax, kps, classes=labels,  # label 1: person
                                skeleton=[(), catalog.COCO_PERSON_SKELETON])
        names = catalog.categories(name)
        draw.draw_boxes(ax, np.asarray(outputs["boxes"])[0, idx], classes=labels,
                        scores=np.asarray(outputs["scores"])[0, idx], class_names=names)
        ax.set_title(f"{name}: {len(idx)} detections, score >= {score_threshold}", fontsize=9)
    else:
        palette = voc_palette()
        class_map = summary["class_map"]
        h, w = class_map.shape
        fig = _figure(10, 5 * h / w + 0.4)
        left = fig.add_axes((0.0, 0.0, 0.5, 0.92))
        draw.draw_image(left, shown)
        left.set_title(name, fontsize=9)
        right = fig.add_axes((0.5, 0.0, 0.5, 0.92))
        # classes coloured over the image, the background (class 0) left as it is
        coloured = (0.45 * shown + 0.55 * palette[class_map]).astype(np.uint8)
        blend = np.where((class_map > 0)[..., None], coloured, shown)
        draw.draw_image(right, blend)
        right.set_title("arg-max class", fontsize=9)
        right.legend(handles=[Patch(color=palette[i] / 255.0, label=f"{n} {f:.1%}")
                              for i, n, f in summary["classes"]],
                     loc="lower right", fontsize=7, framealpha=0.8)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, format="png")
    return path


def run(name: str, checkpoint: str | None, workdir: str, *, image: str | None = None,
        size: int | None = None, score_threshold: float = 0.5, top_k: int = 5) -> dict:
    """Convert ``checkpoint``, run ``name`` on ``image`` and write ``<workdir>/<name>.png``.

    Args:
      name: a torchvision builder name (``weights.SUPPORTED``) or a timm name
        (``"resnet50.tv_in1k"``).
      checkpoint: ``.pth`` (needs torch), ``.safetensors`` or ``.npz``; None raises
        ``FileNotFoundError`` with :func:`checkpoint_help`.
      workdir: output folder.
      image: a photograph (default: the bundled ``astronaut.jpg``).
      size: input size (see :func:`prepare`); None: torchvision's evaluation size.
      score_threshold: the lowest detection score shown and listed.
      top_k: classes listed for a classifier.

    Returns:
      ``{"task", "input" (the model's input), "outputs" (the model's outputs, NumPy),
      "model_kwargs", "summary" (see :func:`summarise`), "text", "png", "seconds"}``.
    """
    weights.task_of(name)
    if not checkpoint:
        raise FileNotFoundError(checkpoint_help(name))
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"checkpoint {checkpoint} does not exist.\n"
                                f"{checkpoint_help(name).split(chr(10), 1)[1]}")
    start = time.perf_counter()
    picture = load_image(image)
    x, shown, model_kwargs = prepare(name, picture, size)
    model, variables = weights.from_torchvision(name, checkpoint, **model_kwargs)
    outputs = jax.tree.map(np.asarray, infer(model, variables, x))
    summary = summarise(name, outputs, top_k=top_k, score_threshold=score_threshold)
    png = save_png(os.path.join(workdir, f"{name.replace('/', '_')}.png"), name, shown,
                   outputs, summary, score_threshold=score_threshold)
    task = weights.task_of(name)
    if task == "detection":
        sizes = (f"image {x.shape[1]}x{x.shape[2]}, resized by the model to min_size "
                 f"{model.min_size}, max_size {model.max_size}")
    else:
        sizes = f"model input {x.shape[1]}x{x.shape[2]}"
    head = f"{name} on {os.path.basename(image or IMAGE)} ({sizes}):"
    text = "\n".join([head] + summary["lines"] + [f"wrote {png}"])
    return {"task": task, "input": x, "outputs": outputs,
            "model_kwargs": model_kwargs, "summary": summary, "text": text, "png": png,
            "seconds": time.perf_counter() - start}
