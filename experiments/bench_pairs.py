r"""The models :mod:`experiments.bench_train` times side by side: each as a vai_jax call and its
torchvision / PyTorch twin (the same architecture, batch and input), run in a worker process.

A worker builds one side of one model (``spec``: model, side, mode, sizes), makes its first
``warmup`` calls (compilation for vai_jax; PyTorch's first two training steps are several times
slower than the later ones) and then answers the driver on stdin / stdout, one line each: ``run``
times one call (a training step or a forward pass, completed: ``block_until_ready`` /
synchronous torch) and returns its wall and process-CPU seconds; ``quit`` ends it. Protocol
lines start with ``@@`` (anything else a library prints is ignored). The driver alternates the
workers call by call, so every side sees the same machine load, and only one computes at a time.

Models (``MODELS``; any other classifier name of :func:`vai_jax.create_model` runs without a
twin unless torchvision has a builder of that name):

* classifiers: the vai_jax model is ``vai_jax.weights.model_for(name)`` for torchvision names
  (the architecture of torchvision's builder) or ``vai_jax.create_model(name)``; the twin is
  ``torchvision.models.<name>`` or, for ``resnet<6n+2>_cifar``, :func:`cifar_resnet` (He et al.
  2016's CIFAR ResNet with option-A shortcuts, as vai_jax's). Training: softmax cross-entropy,
  SGD with momentum 0.9 (no weight decay), BatchNorm in training mode, float32; the vai_jax
  step is :func:`vai_jax.train.step.make_train_step` jitted by
  :func:`vai_jax.train.parallel.data_parallel` (state donated). Inference: eval mode
  (``torch.inference_mode``). PyTorch runs in NCHW (``torch``) and channels-last
  (``torch_cl``).
* ``faster_rcnn_shapes``: the detection experiment's Faster R-CNN (its default config: ResNet
  stem + two basic units, 16/32 channels at stride 4, RPN with 9 anchors, RoIAlign 7x7, two
  128-wide FC layers, 6 classes) on a batch of its 64x64 shapes images, and the same
  architecture assembled from torchvision's ``FasterRCNN`` parts (``AnchorGenerator``,
  ``RPNHead``, ``MultiScaleRoIAlign``, ``TwoMLPHead``) with the same sampling sizes (RPN: 300 /
  64 proposals, 128 anchors per image; RoI heads: 32 RoIs per image, a quarter positive).
  Training: the summed losses, SGD with momentum.
* ``fasterrcnn_resnet50_fpn`` (inference only): torchvision's model converted to vai_jax
  (:mod:`vai_jax.detection.torchvision`, jit) and torchvision itself, the same seeded random
  weights, the 512x512 astronaut photograph at ``min_size = max_size = 512``, batch 1.
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

SIDES = ("vai_jax", "torch", "torch_cl")
MODES = ("train", "inference")
# name: (kind, image size, batch size, num_classes); --quick replaces the sizes by QUICK's.
MODELS = {
    "resnet50": ("classifier", 224, 8, 1000),
    "resnet32_cifar": ("classifier", 32, 128, 10),
    "mobilenet_v2": ("classifier", 224, 8, 1000),
    "faster_rcnn_shapes": ("detector", 64, 16, 6),
    "fasterrcnn_resnet50_fpn": ("torchvision_detector", 512, 1, 91),
}
QUICK = {"classifier": (32, 2), "detector": (64, 2), "torchvision_detector": (128, 1)}
LEARNING_RATE, MOMENTUM = 0.01, 0.9


def model_entry(name: str, *, quick: bool = False) -> dict:
    """``{"kind", "image_size", "batch_size", "num_classes"}`` of a model name (any vai_jax
    classifier name is a classifier at 224, batch 8, 1000 classes)."""
    kind, size, batch, classes = MODELS.get(name, ("classifier", 224, 8, 1000))
    if quick:
        size, batch = QUICK[kind]
    return dict(kind=kind, image_size=size, batch_size=batch, num_classes=classes)


def _cifar_depth(name: str) -> int | None:
    if name.startswith("resnet") and name.endswith("_cifar"):
        return int(name[len("resnet"):-len("_cifar")])
    return None


def has_twin(name: str, mode: str) -> bool:
    """Whether ``name`` has a PyTorch twin in ``mode`` (torchvision must be importable)."""
    if name in ("faster_rcnn_shapes", "fasterrcnn_resnet50_fpn") or _cifar_depth(name):
        return True
    from vai_jax.weights import SUPPORTED_CLASSIFICATION

    return name in SUPPORTED_CLASSIFICATION


def check_model(name: str, mode: str) -> None:
    """ValueError naming the model when it cannot run in ``mode``."""
    import vai_jax

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
    if name == "fasterrcnn_resnet50_fpn" and mode == "train":
        raise ValueError("fasterrcnn_resnet50_fpn (vai_jax.detection.torchvision) runs at "
                         "inference only; time training with faster_rcnn_shapes")
    if name not in MODELS and name not in vai_jax.list_models():
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)} or a vai_jax "
                         f"classifier name")


# ------------------------------------------------------------------------ synthetic inputs
def classifier_batch(spec: dict) -> dict:
    r = np.random.default_rng(0)
    s, b = spec["image_size"], spec["batch_size"]
    return {"image": r.standard_normal((b, s, s, 3)).astype(np.float32),
            "label": r.integers(0, spec["num_classes"], b).astype(np.int32)}


def detector_batch(spec: dict) -> dict:
    """``batch_size`` shapes images with their objects, checked as in training."""
    from vai_jax.data.shapes import ShapesDataset
    from vai_jax.detection.inputs import sanitize_targets

    ds = ShapesDataset("detection", split="train", num_examples=max(spec["batch_size"], 8),
                       image_size=spec["image_size"], seed=0)
    raw = ds.get_batch(list(range(spec["batch_size"])))
    batch, _ = sanitize_targets(raw, num_classes=spec["num_classes"])
    return {k: batch[k] for k in ("image", "boxes", "classes", "valid")}


# ---------------------------------------------------------------------------- vai_jax side
def _detection_config():
    from experiments.detection.configs.default import get_config

    return get_config()


def _vai_classifier(spec: dict):
    import jax

    import vai_jax
    from vai_jax import weights
    from vai_jax.classification.losses import softmax_cross_entropy
    from vai_jax.train import parallel
    from vai_jax.train.optim import make_optimizer
    from vai_jax.train.state import TrainState, init_variables
    from vai_jax.train.step import make_train_step

    name, s = spec["model"], spec["image_size"]
    if name in weights.SUPPORTED_CLASSIFICATION:
        model = weights.model_for(name, num_classes=spec["num_classes"])
    else:
        model = vai_jax.create_model(name, num_classes=spec["num_classes"])
    variables = init_variables(model, (1, s, s, 3), rng=jax.random.PRNGKey(0))
    mesh = parallel.make_mesh()
    batch = parallel.shard_batch(classifier_batch(spec), mesh)
    if spec["mode"] == "inference":
        apply = jax.jit(lambda v, x: model.apply(v, x, train=False)[0])
        return lambda: apply(variables, batch["image"])
    tx = make_optimizer("sgd", learning_rate=LEARNING_RATE, momentum=MOMENTUM)
    state = [parallel.replicate(TrainState.create(apply_fn=model.apply, variables=variables,
                                                  tx=tx, rng=jax.random.PRNGKey(1)), mesh)]
    step = parallel.data_parallel(make_train_step(softmax_cross_entropy), mesh)

    def one_step():
        state[0], metrics = step(state[0], batch)
        return metrics["loss"]

    return one_step


def _vai_detector(spec: dict):
    import jax
    import jax.numpy as jnp

    from experiments.detection.train import build_model
    from vai_jax.detection.inputs import detection_preprocess
    from vai_jax.detection.losses import detection_loss
    from vai_jax.train import parallel
    from vai_jax.train.optim import make_optimizer
    from vai_jax.train.state import TrainState
    from vai_jax.train.step import make_train_step

    cfg = _detection_config()
    model = build_model(cfg.model, "faster_rcnn", spec["num_classes"])
    s = spec["image_size"]
    variables = jax.jit(lambda r: model.init(r, {"image": jnp.zeros((1, s, s, 3))},
                                             train=False))(jax.random.PRNGKey(0))
    mesh = parallel.make_mesh()
    batch = parallel.shard_batch(detector_batch(spec), mesh)
    if spec["mode"] == "inference":
        apply = jax.jit(lambda v, b: model.apply(
            v, detection_preprocess(b, None, train=False), train=False))
        return lambda: apply(variables, {"image": batch["image"]})
    tx = make_optimizer("sgd", learning_rate=LEARNING_RATE, momentum=MOMENTUM)
    state = [parallel.replicate(TrainState.create(apply_fn=model.apply, variables=variables,
                                                  tx=tx, rng=jax.random.PRNGKey(1)), mesh)]
    step = parallel.data_parallel(make_train_step(detection_loss,
                                                  preprocess_fn=detection_preprocess), mesh)

    def one_step():
        state[0], metrics = step(state[0], batch)
        return metrics["loss"]

    return one_step


def _vai_torchvision_detector(spec: dict):
    import jax

    from experiments.bench_detection import NAME, photo, random_state_dict
    from vai_jax.weights import detection

    size = spec["image_size"]
    state = random_state_dict(detection.torchvision_keys(NAME))
    model, variables = detection.from_torchvision(NAME, state, min_size=size, max_size=size)
    apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
    images = jax.device_put(photo())
    return lambda: apply(variables, images)


def vai_jax_call(spec: dict):
    """A zero-argument call running one step (or forward pass) of the vai_jax side."""
    kind = spec["kind"]
    if kind == "classifier":
        return _vai_classifier(spec)
    if kind == "detector":
        return _vai_detector(spec)
    return _vai_torchvision_detector(spec)


# ------------------------------------------------------------------------------ torch side
def cifar_resnet(depth: int, num_classes: int):
    """He et al. 2016's CIFAR ResNet in PyTorch (3x3 stem of 16, three stages of ``(depth-2)/6``
    basic units of 16/32/64 channels, option-A shortcuts: subsample and zero channels), the
    architecture of vai_jax's ``resnet<depth>_cifar``."""
    import torch
    from torch import nn

    class Unit(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.stride, self.extra = stride, cout - cin

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            s = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
            if self.extra:
                s = nn.functional.pad(s, (0, 0, 0, 0, 0, self.extra))
            return torch.relu(y + s)

    n = (depth - 2) // 6
    layers = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    cin = 16
    for i, w in enumerate((16, 32, 64)):
        for j in range(n):
            layers.append(Unit(cin, w, 2 if (i > 0 and j == 0) else 1))
            cin = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes)]
    return nn.Sequential(*layers)


def shapes_faster_rcnn(num_classes: int, image_size: int):
    """The detection experiment's Faster R-CNN (default config) from torchvision's parts."""
    from torch import nn
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.resnet import BasicBlock
    from torchvision.ops import MultiScaleRoIAlign

    cfg = _detection_config()
    bb, rpn, roi = cfg.model.backbone, cfg.model.rpn, cfg.model.roi_stage
    (w1, w2), stem = bb["widths"], bb["stem_width"]
    down = nn.Sequential(nn.Conv2d(w1, w2, 1, bias=False), nn.BatchNorm2d(w2))
    backbone = nn.Sequential(
        nn.Conv2d(3, stem, 7, 2, 3, bias=False), nn.BatchNorm2d(stem), nn.ReLU(),
        nn.MaxPool2d(3, 2, 1), BasicBlock(stem, w1), BasicBlock(w1, w2, downsample=down))
    backbone.out_channels = w2
    pool = roi["pool_size"]
    return FasterRCNN(
        backbone, num_classes=None, min_size=image_size, max_size=image_size,
        image_mean=[0.0, 0.0, 0.0], image_std=[1.0, 1.0, 1.0],
        rpn_anchor_generator=AnchorGenerator(rpn["anchor_sizes"], (rpn["aspect_ratios"],)),
        rpn_pre_nms_top_n_train=rpn["pre_nms_top_n_train"],
        rpn_post_nms_top_n_train=rpn["post_nms_top_n_train"],
        rpn_pre_nms_top_n_test=rpn["pre_nms_top_n_test"],
        rpn_post_nms_top_n_test=rpn["post_nms_top_n_test"],
        rpn_batch_size_per_image=rpn["num_samples"],
        box_roi_pool=MultiScaleRoIAlign(["0"], pool, 2),
        box_head=TwoMLPHead(w2 * pool * pool, roi["hidden"]),
        box_predictor=FastRCNNPredictor(roi["hidden"], num_classes + 1),
        box_batch_size_per_image=roi["num_samples"],
        box_positive_fraction=roi["positive_fraction"], box_score_thresh=roi["score_threshold"],
        box_detections_per_img=roi["max_detections"])


def torch_call(spec: dict):
    """A zero-argument call running one step (or forward pass) of the PyTorch twin."""
    import torch
    import torchvision

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.manual_seed(0)
    fmt = torch.channels_last if spec["side"] == "torch_cl" else torch.contiguous_format
    name, kind, train = spec["model"], spec["kind"], spec["mode"] == "train"
    if kind == "torchvision_detector":
        from experiments.bench_detection import NAME, photo, random_state_dict, torchvision_runner
        from vai_jax.weights import detection

        size = spec["image_size"]
        run, _ = torchvision_runner(random_state_dict(detection.torchvision_keys(NAME)),
                                    dict(min_size=size, max_size=size))
        images = photo()
        return lambda: run(images)
    if kind == "detector":
        model = shapes_faster_rcnn(spec["num_classes"], spec["image_size"])
        b = detector_batch(spec)
        x = (torch.from_numpy(b["image"]).permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.25
        images = [im.contiguous() for im in x]
        targets = [{"boxes": torch.from_numpy(bx[v]), "labels": torch.from_numpy(c[v] + 1).long()}
                   for bx, c, v in zip(b["boxes"], b["classes"], b["valid"])]
    else:
        depth = _cifar_depth(name)
        if depth:
            model = cifar_resnet(depth, spec["num_classes"])
        else:
            model = getattr(torchvision.models, name)(num_classes=spec["num_classes"])
        b = classifier_batch(spec)
        x = torch.from_numpy(b["image"]).permute(0, 3, 1, 2).contiguous(memory_format=fmt)
        y = torch.from_numpy(b["label"]).long()
    model = model.to(memory_format=fmt)
    if not train:
        model.eval()

        def forward():
            with torch.inference_mode():
                return model(images if kind == "detector" else x)

        return forward
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)

    def step():
        opt.zero_grad(set_to_none=True)
        if kind == "detector":
            loss = sum(model(images, targets).values())
        else:
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


# ---------------------------------------------------------------------------------- worker
def set_convolutions(which: str) -> None:
    """The convolutions of this process's vai_jax models: ``"library"`` (as built: the modules
    that pass :func:`vai_jax.ops.conv.conv_general_dilated` to ``nn.Conv`` get its CPU
    rewrites of 1x1 and depthwise convolutions), ``"lax"`` (every convolution
    ``lax.conv_general_dilated``) or ``"rewrite_all"`` (every Flax ``nn.Conv`` through
    :mod:`vai_jax.ops.conv`)."""
    import types

    import flax.linen.linear
    from jax import lax

    from vai_jax.ops import conv

    if which == "lax":
        conv.rewrite_of = lambda *args, **kwargs: None
    elif which == "rewrite_all":
        proxy = types.SimpleNamespace(**{k: getattr(lax, k) for k in dir(lax)
                                         if not k.startswith("__")})
        proxy.conv_general_dilated = conv.conv_general_dilated
        flax.linen.linear.lax = proxy
    elif which != "library":
        raise ValueError(f"convolutions must be 'library', 'lax' or 'rewrite_all'; got "
                         f"{which!r}")


def _send(obj: dict) -> None:
    sys.stdout.write("@@" + json.dumps(obj) + "\n")
    sys.stdout.flush()


def worker(spec: dict) -> None:
    """Serve ``run`` / ``quit`` lines on stdin for one side of one model (module docstring)."""
    if spec["side"] == "vai_jax":
        import jax

        set_convolutions(os.environ.get("VAI_JAX_BENCH_CONV", "library"))
        call = vai_jax_call(spec)
        finish = jax.block_until_ready
        info = {"backend": jax.default_backend(), "jax": jax.__version__,
                "xla_flags": os.environ.get("XLA_FLAGS", "")}
    else:
        import torch
        import torchvision

        call = torch_call(spec)
        finish = lambda out: out  # noqa: E731 (torch CPU calls are synchronous)
        info = {"torch": torch.__version__, "torchvision": torchvision.__version__,
                "threads": torch.get_num_threads()}
    t0 = time.perf_counter()
    finish(call())
    info["first_call_s"] = time.perf_counter() - t0
    for _ in range(spec.get("warmup", 1) - 1):  # PyTorch's first calls set up its kernels
        finish(call())
    _send({"ready": True, **info})
    for line in sys.stdin:
        if line.strip() != "run":
            break
        w0, c0 = time.perf_counter(), time.process_time()
        finish(call())
        _send({"wall_s": time.perf_counter() - w0, "cpu_s": time.process_time() - c0})


if __name__ == "__main__":
    worker(json.loads(sys.argv[1]))
