"""torchvision's Faster / Mask / Keypoint R-CNN (ResNet-50-FPN) converted to vai_jax: the same
proposals, detections, masks and keypoints as torchvision on a noise image and a photograph,
with seeded random weights (see :mod:`tests.detection.torchvision.parity`). The references are
torchvision's outputs: computed live when torch and torchvision are importable, otherwise read
from ``references/`` (written by ``make_references.py``)."""
from __future__ import annotations

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.detection.torchvision import parity
from tests.xla_options import run_time_options
from vai_jax.weights import CheckpointError, from_torchvision, torchvision_keys

LIVE = all(importlib.util.find_spec(m) for m in ("torch", "torchvision"))

# Measured differences (float32, CPU; the seeded network's activations reach ~1e3, so float32
# rounding differences grow through the ResNet): proposals <= 2.6e-3 px, boxes <= 5e-4 px,
# scores <= 4e-5, pasted masks <= 2e-4 (references stored as float16), keypoints: the same
# heatmap arg-max, x/y <= 3e-4 px, scores <= 2e-5. Proposals whose sigmoid scores tie in float32
# may swap places (their logits differ by less than the rounding of the two computations).
PROPOSAL_ATOL, BOX_ATOL, SCORE_ATOL, MASK_ATOL, KP_ATOL = 1e-2, 3e-3, 2e-4, 2e-3, 3e-3


def _reference(name):
    return parity.torch_outputs(name) if LIVE else parity.read_reference(name)


@pytest.fixture(scope="module", params=parity.NAMES)
def run(request):
    name = request.param
    ref = _reference(name)
    model, variables = from_torchvision(name, parity.state_dict(name, ref["manifest"]),
                                        **parity.KWARGS)
    # Keypoint R-CNN runs 63 s with the suite's fast-compiling options, 9-17 s with these.
    options = run_time_options() if name.startswith("keypoint") else {}
    out = jax.jit(lambda v, x: model.apply(v, x, train=False), compiler_options=options)(
        variables, parity.images())
    return name, model, ref, jax.tree.map(np.asarray, out)


def _iou(a, b):
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=-1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def _match(ours, ref, atol=BOX_ATOL):
    """Index in ``ours`` of each reference box: the same row unless the order differs (ties),
    then the box of highest IoU."""
    same = np.all(np.abs(ours[: len(ref)] - ref) <= atol, axis=1)
    best = np.argmax(_iou(ref, ours), axis=1)
    return np.where(same, np.arange(len(ref)), best), same


def test_keys_are_torchvisions(run):
    name, _, ref, _ = run
    assert torchvision_keys(name, **parity.KWARGS) == dict(ref["manifest"])


def test_proposals(run):
    _, _, ref, out = run
    for i in range(2):
        p = ref[f"proposals_{i}"]
        q = out["proposals"][i][out["proposal_valid"][i]]
        assert len(q) == len(p)
        j, same = _match(q, p, PROPOSAL_ATOL)
        assert same.mean() > 0.97, same.mean()
        np.testing.assert_allclose(q[j], p, atol=PROPOSAL_ATOL, rtol=0)


def test_detections(run):
    _, _, ref, out = run
    for i in range(2):
        boxes = ref[f"boxes_{i}"]
        assert out["valid"][i].sum() == len(boxes) > 0
        j, same = _match(out["boxes"][i][out["valid"][i]], boxes)
        assert same.all()
        np.testing.assert_allclose(out["boxes"][i][j], boxes, atol=BOX_ATOL, rtol=0)
        np.testing.assert_allclose(out["scores"][i][j], ref[f"scores_{i}"], atol=SCORE_ATOL)
        np.testing.assert_array_equal(out["labels"][i][j], ref[f"labels_{i}"])
        assert out["labels"].dtype == np.int32 and out["boxes"].shape[1] == 20
        assert not out["valid"][i][len(boxes):].any()


def test_masks_and_keypoints(run):
    name, _, ref, out = run
    if name == "fasterrcnn_resnet50_fpn":
        assert "masks" not in out and "keypoints" not in out
        return
    for i in range(2):
        n = len(ref[f"boxes_{i}"])
        if "masks" in out:
            m = ref[f"masks_{i}"]
            assert out["masks"].shape == (2, 20, 128, 100)
            np.testing.assert_allclose(out["masks"][i][: len(m)], m, atol=MASK_ATOL, rtol=0)
        else:
            k = ref[f"keypoints_{i}"]
            assert out["keypoints"].shape == (2, 20, 17, 3)
            np.testing.assert_allclose(out["keypoints"][i][:n], k, atol=KP_ATOL, rtol=0)


def test_bad_images(run):
    _, model, _, _ = run
    variables = {}  # the checks run before any parameter is needed
    with pytest.raises(ValueError, match="images"):
        model.apply(variables, jnp.zeros((64, 64, 3)), train=False)
    with pytest.raises(TypeError, match="images"):
        model.apply(variables, jnp.zeros((1, 64, 64, 3), jnp.uint8), train=False)
    with pytest.raises(ValueError, match="images"):
        model.apply(variables, jnp.zeros((1, 64, 64, 1)), train=False)


def test_checkpoint_of_another_architecture(run):
    name, _, ref, _ = run
    state = parity.state_dict(name, ref["manifest"])
    other = {"fasterrcnn_resnet50_fpn": "keypointrcnn_resnet50_fpn",
             "maskrcnn_resnet50_fpn": "fasterrcnn_resnet50_fpn",
             "keypointrcnn_resnet50_fpn": "maskrcnn_resnet50_fpn"}[name]
    with pytest.raises(CheckpointError) as err:
        from_torchvision(other, state, **parity.KWARGS)
    assert err.value.missing or err.value.unexpected
    # A classifier checkpoint: nothing of the detector is there.
    backbone = {k[len("backbone.body."):]: v for k, v in state.items()
                if k.startswith("backbone.body.")}
    with pytest.raises(CheckpointError, match="missing keys"):
        from_torchvision(name, backbone)
