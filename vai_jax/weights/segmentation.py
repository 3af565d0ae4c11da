"""torchvision's segmentation checkpoints (``fcn_resnet50``, ``fcn_resnet101``,
``deeplabv3_resnet50``, ``deeplabv3_resnet101``) as variables of the
:class:`~vai_jax.segmentation.Segmenter`\\ s of :mod:`vai_jax.segmentation.torchvision`.

Keys: ``backbone.*`` (the ResNet, the classifier family's names without ``fc``),
``classifier.*`` (the head: FCN ``classifier.{0,1,4}``; DeepLab v3
``classifier.0.convs.{0..4}`` and ``classifier.0.project`` for ASPP, then
``classifier.{1,2,4}``) and ``aux_classifier.{0,1,4}`` (the auxiliary FCN head, loaded with
``aux_loss=True`` and otherwise accepted and dropped).
"""
from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np

from vai_jax.weights.convert import Target, convert, expected_keys
from vai_jax.weights.io import read_state_dict
from vai_jax.weights.torchvision import RESNET

NAMES = ("fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101")
CLASSIFIER = "classifier.4.weight"  # the last 1x1 conv: its first axis is the number of classes
AUX = r"aux_classifier\..*"
_SEQ = {"conv": 0, "bn": 1}


def torch_name(model, path: str, modules) -> Target | str | None:
    """The PyTorch module prefix of a vai_jax module path of a torchvision Segmenter."""
    first, _, rest = path.partition("/")
    if first == "backbone":
        inner = RESNET.torch_name(model, rest, modules)
        return None if inner is None or inner == "fc" else f"backbone.{inner}"
    top = {"head": "classifier", "aux_head": "aux_classifier"}.get(first)
    if top is None:
        return None
    m = re.fullmatch(r"conv/(conv|bn)", rest)
    if m:  # the 3x3 conv-BN-ReLU: FCNHead's 0, 1; DeepLabHead's 1, 2 (after ASPP, 0)
        after_aspp = any(p.startswith(f"{first}/aspp/") for p in modules)
        return f"{top}.{_SEQ[m[1]] + after_aspp}"
    if rest == "classifier":
        return f"{top}.4"
    m = re.fullmatch(r"aspp/branch(\d+)/(conv|bn)", rest)
    if m:
        return f"{top}.0.convs.{m[1]}.{_SEQ[m[2]]}"
    m = re.fullmatch(r"aspp/pool/(conv|bn)", rest)
    if m:  # ASPPPooling: Sequential(AdaptiveAvgPool2d, conv, bn, ReLU)
        n = len({p for p in modules if re.fullmatch(r"head/aspp/branch\d+/conv", p)})
        return f"{top}.0.convs.{n}.{_SEQ[m[1]] + 1}"
    m = re.fullmatch(r"aspp/project/(conv|bn)", rest)
    if m:
        return f"{top}.0.project.{_SEQ[m[1]]}"
    return None


def model_for(name: str, **model_kwargs):
    """The Segmenter of builder ``name`` with ``model_kwargs`` (``num_classes``, ``aux_loss``)."""
    from vai_jax.segmentation.torchvision import BUILDERS

    if name not in BUILDERS:
        raise ValueError(f"unknown torchvision segmentation model {name!r}; supported: "
                         f"{', '.join(NAMES)}")
    return BUILDERS[name](**model_kwargs)


def abstract_variables(name: str, num_classes: int, aux_loss: bool):
    """The variables of ``model_for(name, num_classes=…, aux_loss=…)`` as shapes (a 64 x 64
    image is traced, nothing is computed)."""
    return _abstract(name, int(num_classes), bool(aux_loss))


@functools.lru_cache(maxsize=16)
def _abstract(name: str, num_classes: int, aux_loss: bool):
    model = model_for(name, num_classes=num_classes, aux_loss=aux_loss)
    x = jnp.zeros((1, 64, 64, 3), jnp.float32)
    return jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))


def _fields(model) -> tuple[int, bool]:
    return model.head.num_classes, model.aux_head is not None


def torchvision_keys(name: str, **model_kwargs) -> dict[str, tuple[int, ...]]:
    """State-dict keys and shapes a checkpoint of ``name`` must hold (``aux_classifier.*``
    only with ``aux_loss=True``; ``num_batches_tracked`` not listed)."""
    model = model_for(name, **model_kwargs)
    keys = expected_keys(abstract_variables(name, *_fields(model)),
                         lambda p, m: torch_name(model, p, m))
    return {k: v[1] for k, v in keys.items()}


def from_torchvision(name: str, source, **model_kwargs):
    """Convert a torchvision segmentation checkpoint.

    Args:
      name: ``"fcn_resnet50"``, ``"fcn_resnet101"``, ``"deeplabv3_resnet50"`` or
        ``"deeplabv3_resnet101"``.
      source: a checkpoint path or a ``{key: array}`` mapping (see
        :func:`vai_jax.weights.read_state_dict`).
      **model_kwargs: builder arguments: ``num_classes`` (default: the checkpoint's, 21 for
        torchvision's VOC-label weights), ``aux_loss`` (default False: the checkpoint's
        ``aux_classifier.*`` keys are accepted and not loaded; True loads them and adds
        ``"aux"`` to the outputs).

    Returns:
      ``(model, variables)``; ``model.apply(variables, x, train=False)`` with ``x [B, H, W, 3]``
      float32, ImageNet-normalised, returns ``{"out": logits [B, H, W, num_classes]}`` (and
      ``"aux"``), resized to the input size as torchvision does.

    Raises:
      CheckpointError: listing every missing key, unexpected key and shape mismatch.
    """
    state = read_state_dict(source)
    kwargs = dict(model_kwargs)
    if "num_classes" not in kwargs and CLASSIFIER in state:
        kwargs["num_classes"] = int(np.shape(state[CLASSIFIER])[0])
    model = model_for(name, **kwargs)
    num_classes, aux_loss = _fields(model)
    variables = convert(abstract_variables(name, num_classes, aux_loss), state,
                        lambda p, m: torch_name(model, p, m), model_name=name,
                        ignore=() if aux_loss else (AUX,))
    return model, variables
