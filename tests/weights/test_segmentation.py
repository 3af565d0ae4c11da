"""Conversion of torchvision's segmentation checkpoints: which keys are loaded, accepted and
refused, the number of classes, and the key layout of both heads (numerics:
``tests/segmentation/torchvision/``)."""
import jax
import numpy as np
import pytest

from vai_jax import weights
from vai_jax.segmentation import ConvHead, DeepLabHead
from vai_jax.weights import CheckpointError

NAME = "fcn_resnet50"


def _checkpoint(name, **kwargs):
    """Distinct constant tensors (the i-th key holds i) with torchvision's keys, the
    auxiliary classifier and BatchNorm's ``num_batches_tracked``."""
    keys = weights.torchvision_keys(name, aux_loss=True, **kwargs)
    state = {k: np.full(s, i, np.float32) for i, (k, s) in enumerate(keys.items())}
    for k in keys:
        if k.endswith(".running_var"):
            state[k[: -len("running_var")] + "num_batches_tracked"] = np.array(7, np.int64)
    return state


@pytest.fixture(scope="module")
def fcn_state():
    return _checkpoint(NAME)


def test_heads_and_key_layouts():
    fcn = weights.torchvision_keys("fcn_resnet50")
    deeplab = weights.torchvision_keys("deeplabv3_resnet50", aux_loss=True)
    # torchvision: FCNHead = Sequential(conv 3x3, bn, relu, dropout, conv 1x1)
    assert fcn["classifier.0.weight"] == (512, 2048, 3, 3)
    assert fcn["classifier.4.weight"] == (21, 512, 1, 1)
    assert not any(k.startswith(("aux_classifier", "backbone.fc")) for k in fcn)
    # DeepLabHead = Sequential(ASPP, conv 3x3, bn, relu, conv 1x1); ASPP's convs: 1x1, three
    # dilated 3x3, Sequential(pool, conv, bn, relu); project = Sequential(conv, bn, relu, dropout)
    assert deeplab["classifier.0.convs.0.0.weight"] == (256, 2048, 1, 1)
    assert deeplab["classifier.0.convs.3.0.weight"] == (256, 2048, 3, 3)
    assert deeplab["classifier.0.convs.4.1.weight"] == (256, 2048, 1, 1)
    assert deeplab["classifier.0.convs.4.2.running_var"] == (256,)
    assert deeplab["classifier.0.project.0.weight"] == (256, 1280, 1, 1)
    assert deeplab["classifier.2.running_mean"] == (256,)
    assert deeplab["aux_classifier.0.weight"] == (256, 1024, 3, 3)
    model = weights.model_for("deeplabv3_resnet50")
    assert isinstance(model.head, DeepLabHead) and tuple(model.head.rates) == (12, 24, 36)
    assert model.head.dropout_rate == 0.5 and model.aux_head is None
    assert isinstance(weights.model_for("fcn_resnet101", aux_loss=True).aux_head, ConvHead)


def test_aux_classifier_loaded_or_dropped(fcn_state):
    model, variables = weights.from_torchvision(NAME, fcn_state)
    assert model.aux_head is None and model.head.num_classes == 21
    assert set(variables["params"]) == {"backbone", "head"}
    model_aux, with_aux = weights.from_torchvision(NAME, fcn_state, aux_loss=True)
    assert model_aux.aux_head is not None
    key = list(fcn_state).index("aux_classifier.4.weight")
    np.testing.assert_array_equal(with_aux["params"]["aux_head"]["classifier"]["kernel"], key)
    for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(
            {c: {k: v for k, v in t.items() if k != "aux_head"} for c, t in with_aux.items()})):
        np.testing.assert_array_equal(a, b)
    # the BatchNorm running variance lands in batch_stats
    i = list(fcn_state).index("backbone.bn1.running_var")
    np.testing.assert_array_equal(variables["batch_stats"]["backbone"]["stem"]["bn"]["var"], i)


def test_every_misfit_is_listed(fcn_state):
    state = dict(fcn_state)
    del state["classifier.1.running_mean"]
    state["classifier.5.weight"] = np.zeros((3,), np.float32)
    state["backbone.conv1.weight"] = np.zeros((64, 3, 3, 3), np.float32)
    with pytest.raises(CheckpointError) as e:
        weights.from_torchvision(NAME, state)
    assert e.value.missing == ["classifier.1.running_mean"]
    assert e.value.unexpected == ["classifier.5.weight"]
    assert e.value.mismatched == ["backbone.conv1.weight (64, 3, 3, 3) (expected (64, 3, 7, 7))"]
    no_aux = {k: v for k, v in fcn_state.items() if not k.startswith("aux_classifier.")}
    with pytest.raises(CheckpointError, match="aux_classifier.0.weight"):
        weights.from_torchvision(NAME, no_aux, aux_loss=True)
    with pytest.raises(CheckpointError, match="missing keys.*classifier.0.convs"):
        weights.from_torchvision("deeplabv3_resnet50", fcn_state)


def test_num_classes_from_the_checkpoint():
    state = _checkpoint("deeplabv3_resnet50", num_classes=5)
    model, variables = weights.from_torchvision("deeplabv3_resnet50", state, aux_loss=True)
    assert model.head.num_classes == model.aux_head.num_classes == 5
    assert variables["params"]["head"]["classifier"]["kernel"].shape == (1, 1, 256, 5)
    with pytest.raises(CheckpointError, match="2 shape mismatches: classifier.4.bias"):
        weights.from_torchvision("deeplabv3_resnet50", state, num_classes=21)


def test_names():
    assert set(weights.SUPPORTED_SEGMENTATION) <= set(weights.SUPPORTED)
    assert weights.task_of("deeplabv3_resnet101") == "segmentation"
    assert weights.task_of("maskrcnn_resnet50_fpn") == "detection"
    assert weights.task_of("resnet50.tv_in1k") == "classification"
    with pytest.raises(ValueError, match="segmentation: fcn_resnet50"):
        weights.from_torchvision("fcn_resnet18", {})
