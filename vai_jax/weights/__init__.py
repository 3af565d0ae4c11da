"""Pretrained weights: torchvision (and timm) classifier, detection and segmentation
checkpoints as vai_jax variables, and a JAX-native file for converted variables.

    model, variables = vai_jax.weights.from_torchvision("resnet50", "resnet50-11ad3fa6.pth")
    logits, features = model.apply(variables, x, train=False)   # x [B, H, W, 3] float32,
                                                                # ImageNet-normalised
    vai_jax.weights.save("resnet50.msgpack", variables)
    variables = vai_jax.weights.load("resnet50.msgpack")
    # command line:
    #   python -m vai_jax.weights convert resnet50 resnet50-11ad3fa6.pth resnet50.msgpack

The converted model computes what torchvision's builder computes with pretrained weights
(GoogLeNet and Inception v3 with their input transform; see :data:`SUPPORTED`): classifiers
return ``(logits, features)``, detectors (:mod:`vai_jax.weights.detection`) padded detections,
segmenters (:mod:`vai_jax.weights.segmentation`) ``{"out": logits [B, H, W, K]}``.
:data:`URLS` gives torchvision's download address of each name's default weights. Checkpoints:
``.pth`` files (torchvision's download URLs; reading them needs torch), ``.safetensors`` (timm
publishes torchvision's weights so, e.g. ``timm/resnet50.tv_in1k``; no torch needed), ``.npz``
or an in-memory ``{key: array}`` mapping.
"""
from __future__ import annotations

from vai_jax.weights.convert import CheckpointError, Target, abstract_init, convert, expected_keys
from vai_jax.weights.io import load, read_state_dict, save
from vai_jax.weights import detection, segmentation
from vai_jax.weights.catalog import URLS
from vai_jax.weights.torchvision import TIMM, TORCHVISION, resolve

__all__ = ["CheckpointError", "SUPPORTED", "SUPPORTED_CLASSIFICATION", "SUPPORTED_DETECTION",
           "SUPPORTED_SEGMENTATION", "SUPPORTED_TIMM", "Target", "URLS", "from_torchvision",
           "load", "model_for", "read_state_dict", "save", "task_of", "torchvision_keys"]

# torchvision builder names that convert, per task, and timm architectures (with any pretrained
# tag: "resnet50.tv_in1k").
SUPPORTED_CLASSIFICATION = tuple(sorted(TORCHVISION))
SUPPORTED_DETECTION = detection.NAMES
SUPPORTED_SEGMENTATION = segmentation.NAMES
SUPPORTED = SUPPORTED_CLASSIFICATION + SUPPORTED_DETECTION + SUPPORTED_SEGMENTATION
SUPPORTED_TIMM = tuple(sorted(TIMM))


def task_of(name: str) -> str:
    """``"classification"``, ``"detection"`` or ``"segmentation"`` for a supported torchvision
    (or timm) name; ValueError otherwise."""
    if name in SUPPORTED_DETECTION:
        return "detection"
    if name in SUPPORTED_SEGMENTATION:
        return "segmentation"
    try:
        resolve(name)
    except ValueError as e:
        raise ValueError(f"{e}; detection: {', '.join(SUPPORTED_DETECTION)}; segmentation: "
                         f"{', '.join(SUPPORTED_SEGMENTATION)}") from None
    return "classification"


def model_for(name: str, **model_kwargs):
    """The vai_jax model that computes torchvision's (or timm's) ``name`` with pretrained
    weights, without weights: ``vai_jax.create_model`` with the needed fields, then
    ``model_kwargs`` (e.g. ``num_classes``)."""
    from vai_jax.backbones.registry import create_model

    task = task_of(name)
    if task == "detection":
        return detection.model_for(name, **model_kwargs)
    if task == "segmentation":
        return segmentation.model_for(name, **model_kwargs)
    spec, _ = resolve(name)
    return create_model(spec.model, **{**dict(spec.overrides), **model_kwargs})


def torchvision_keys(name: str, **model_kwargs) -> dict[str, tuple[int, ...]]:
    """The state-dict keys and shapes a checkpoint of ``name`` must hold (buffers such as
    ``num_batches_tracked`` and auxiliary heads not built are not listed)."""
    task = task_of(name)
    if task == "detection":
        return detection.torchvision_keys(name, **model_kwargs)
    if task == "segmentation":
        return segmentation.torchvision_keys(name, **model_kwargs)
    spec, _ = resolve(name)
    model = model_for(name, **model_kwargs)
    abstract = abstract_init(model, spec.trace_size)
    name_fn = lambda path, modules: spec.family.torch_name(model, path, modules)  # noqa: E731
    return {k: v[1] for k, v in expected_keys(abstract, name_fn).items()}


def from_torchvision(name: str, source, **model_kwargs):
    """Convert a torchvision (or timm) checkpoint.

    Args:
      name: torchvision's builder name (``"resnet50"``, ``"googlenet"``, …; see
        :data:`SUPPORTED`) or timm's name with its tag (``"resnet50.tv_in1k"``,
        ``"timm/vgg16.tv_in1k"``). Detection and segmentation names go to
        :func:`vai_jax.weights.detection.from_torchvision` and
        :func:`vai_jax.weights.segmentation.from_torchvision` (their arguments and outputs).
      source: a checkpoint path (``.pth``/``.pt``/``.bin``/``.ckpt`` need torch;
        ``.safetensors``, ``.npz`` do not) or a mapping of state-dict keys to arrays
        (``{k: v.numpy() for k, v in sd.items()}``).
      **model_kwargs: fields of the vai_jax model. ``num_classes`` defaults to the checkpoint's
        classifier width; ``num_classes=0`` builds the backbone alone (the classifier's keys
        are then ignored); ``aux_logits=True`` (GoogLeNet, Inception v3) loads the auxiliary
        classifiers too (otherwise their keys are ignored).

    Returns:
      ``(model, variables)``: ``model.apply(variables, x, train=False)`` with ``x`` ``[B, H, W,
      3]`` float32, normalised as torchvision expects (ImageNet mean and std), returns
      ``(logits [B, num_classes], features)``.

    Raises:
      ValueError: an unknown name; a file that cannot be read.
      CheckpointError: (a ``ValueError``) listing every missing key, unexpected key and shape
        mismatch; nothing is converted then.
    """
    task = task_of(name)
    if task == "detection":
        return detection.from_torchvision(name, source, **model_kwargs)
    if task == "segmentation":
        return segmentation.from_torchvision(name, source, **model_kwargs)
    spec, canonical = resolve(name)
    state = read_state_dict(source)
    family = spec.family
    if family.rename is not None:
        state = {family.rename(k): v for k, v in state.items()}
    kwargs = dict(model_kwargs)
    if "num_classes" not in kwargs and family.classifier in state:
        kwargs["num_classes"] = int(state[family.classifier].shape[0])
    model = model_for(canonical, **kwargs)
    abstract = abstract_init(model, spec.trace_size)
    ignore = list(family.extra)
    if not getattr(model, "num_classes", 1):
        ignore.append(family.head)
    name_fn = lambda path, modules: family.torch_name(model, path, modules)  # noqa: E731
    variables = convert(abstract, state, name_fn, model_name=canonical, ignore=ignore)
    return model, variables
