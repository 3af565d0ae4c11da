"""torchvision's detection checkpoints (``fasterrcnn_resnet50_fpn``, ``maskrcnn_resnet50_fpn``,
``keypointrcnn_resnet50_fpn``) as variables of
:class:`vai_jax.detection.torchvision.TorchvisionRCNN`.

Keys: ``backbone.body.*`` (ResNet-50, the classifier family's names), ``backbone.fpn.*``,
``rpn.head.*``, ``roi_heads.box_head.*``, ``roi_heads.box_predictor.*`` and the mask or keypoint
branch. ``ConvTranspose2d`` weights ``[in, out, kh, kw]`` are flipped in space and stored as a
Flax ``ConvTranspose`` kernel ``[kh, kw, in, out]``.
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

NAMES = ("fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn", "keypointrcnn_resnet50_fpn")
# Checkpoint keys of PyTorch transposed convolutions.
_TRANSPOSED = (r"roi_heads\.mask_predictor\.conv5_mask\.weight",
               r"roi_heads\.keypoint_predictor\.kps_score_lowres\.weight")
_HEADS = {
    "rpn_head/conv": "rpn.head.conv.0.0", "rpn_head/cls_logits": "rpn.head.cls_logits",
    "rpn_head/bbox_pred": "rpn.head.bbox_pred", "box_head/fc7": "roi_heads.box_head.fc7",
    "box_head/cls_score": "roi_heads.box_predictor.cls_score",
    "box_head/bbox_pred": "roi_heads.box_predictor.bbox_pred",
    "mask_head/conv5_mask": "roi_heads.mask_predictor.conv5_mask",
    "mask_head/mask_logits": "roi_heads.mask_predictor.mask_fcn_logits",
    "keypoint_head/kps_score_lowres": "roi_heads.keypoint_predictor.kps_score_lowres",
}


def torch_name(model, path: str, modules) -> Target | str | None:
    """The PyTorch module prefix of a vai_jax module path of ``TorchvisionRCNN``."""
    if path.startswith("body/"):
        inner = RESNET.torch_name(model, path[len("body/"):], modules)
        return None if inner is None else f"backbone.body.{inner}"
    m = re.fullmatch(r"fpn/(inner|layer)(\d+)", path)
    if m:
        return f"backbone.fpn.{m[1]}_blocks.{m[2]}.0"
    if path == "box_head/fc6":  # torchvision flattens the [256, 7, 7] RoI features channels first
        return Target("roi_heads.box_head.fc6", "flatten_chw", (256, 7, 7))
    m = re.fullmatch(r"mask_head/mask_fcn(\d+)", path)
    if m:
        return f"roi_heads.mask_head.{int(m[1]) - 1}.0"
    m = re.fullmatch(r"keypoint_head/conv_fcn(\d+)", path)
    if m:
        return f"roi_heads.keypoint_head.{2 * (int(m[1]) - 1)}"
    return _HEADS.get(path)


def _prepare(state: dict) -> dict:
    """Transposed-conv weights ``[in, out, kh, kw]`` -> ``[out, in, kh, kw]`` flipped in space
    (the generic conversion then gives Flax's ``[kh, kw, in, out]``)."""
    out = dict(state)
    for key, value in state.items():
        if any(re.fullmatch(p, key) for p in _TRANSPOSED):
            v = np.asarray(value)
            if v.ndim == 4:
                out[key] = np.ascontiguousarray(v.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
    return out


def model_for(name: str, **model_kwargs):
    """The ``TorchvisionRCNN`` of builder ``name`` with ``model_kwargs`` (builder arguments)."""
    from vai_jax.detection.torchvision import BUILDERS

    if name not in BUILDERS:
        raise ValueError(f"unknown torchvision detection model {name!r}; supported: "
                         f"{', '.join(NAMES)}")
    return BUILDERS[name](**model_kwargs)


def abstract_variables(model):
    """The model's variables as shapes (a 64 x 64 image is traced, nothing is computed). They
    depend only on the fields that shape parameters, so traces are shared across sizes and
    thresholds."""
    return _abstract(model.num_classes, model.masks, model.keypoints, model.num_keypoints)


@functools.lru_cache(maxsize=16)
def _abstract(num_classes: int, masks: bool, keypoints: bool, num_keypoints: int):
    from vai_jax.detection.torchvision import TorchvisionRCNN

    small = TorchvisionRCNN(num_classes=num_classes, masks=masks, keypoints=keypoints,
                            num_keypoints=num_keypoints, min_size=64, max_size=64,
                            rpn_pre_nms_top_n_test=8, rpn_post_nms_top_n_test=8,
                            box_detections_per_img=4, box_candidates=8)
    x = jnp.zeros((1, 64, 64, 3), jnp.float32)
    return jax.eval_shape(lambda: small.init(jax.random.key(0), x, train=False))


def torchvision_keys(name: str, **model_kwargs) -> dict[str, tuple[int, ...]]:
    """State-dict keys and shapes a checkpoint of ``name`` must hold (as stored by PyTorch,
    transposed-conv weights ``[in, out, kh, kw]``)."""
    model = model_for(name, **model_kwargs)
    keys = expected_keys(abstract_variables(model), lambda p, m: torch_name(model, p, m))
    out = {}
    for k, v in keys.items():
        shape = v[1]
        if any(re.fullmatch(p, k) for p in _TRANSPOSED):
            shape = (shape[1], shape[0]) + tuple(shape[2:])
        out[k] = shape
    return out


def from_torchvision(name: str, source, **model_kwargs):
    """Convert a torchvision detection checkpoint.

    Args:
      name: ``"fasterrcnn_resnet50_fpn"``, ``"maskrcnn_resnet50_fpn"`` or
        ``"keypointrcnn_resnet50_fpn"``.
      source: a checkpoint path or a ``{key: array}`` mapping (see
        :func:`vai_jax.weights.read_state_dict`).
      **model_kwargs: builder arguments (``min_size``, ``box_score_thresh``, …);
        ``num_classes`` (and ``num_keypoints``) default to the checkpoint's.

    Returns:
      ``(model, variables)``; ``model.apply(variables, images, train=False)`` with ``images
      [B, H, W, 3]`` float32 in [0, 1].

    Raises:
      CheckpointError: listing every missing key, unexpected key and shape mismatch (e.g. a
        checkpoint of another architecture).
    """
    state = _prepare(read_state_dict(source))
    kwargs = dict(model_kwargs)
    if "num_classes" not in kwargs and "roi_heads.box_predictor.cls_score.weight" in state:
        kwargs["num_classes"] = int(np.shape(state["roi_heads.box_predictor.cls_score.weight"])[0])
    lowres = "roi_heads.keypoint_predictor.kps_score_lowres.weight"
    if name == NAMES[2] and "num_keypoints" not in kwargs and lowres in state:
        kwargs["num_keypoints"] = int(np.shape(state[lowres])[0])
    model = model_for(name, **kwargs)
    variables = convert(abstract_variables(model), state,
                        lambda p, m: torch_name(model, p, m), model_name=name)
    return model, variables
