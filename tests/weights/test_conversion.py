"""Conversion API and bad input: names, checkpoint files (.npz, .safetensors, .pth), the
weights file (save / load), the command line, and one clear error for every kind of misfit."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vai_jax import weights
from vai_jax.weights.__main__ import main as cli
from tests.weights import parity

SMALL = "squeezenet1_1"  # 1.2 M parameters, no BatchNorm: the cheapest model to convert


@pytest.fixture(scope="module")
def small_state():
    manifest, _ = parity.read_reference(SMALL)
    return parity.random_state_dict(manifest, parity.seed_of(SMALL))


@pytest.fixture(scope="module")
def converted(small_state):
    return weights.from_torchvision(SMALL, small_state)


def test_unknown_names_list_the_supported_ones():
    with pytest.raises(ValueError, match="resnet50") as e:
        weights.from_torchvision("resnet51", {})
    assert "squeezenet1_1" in str(e.value)
    with pytest.raises(ValueError, match="timm"):
        weights.model_for("mobilenetv3_large_100.ra_in1k")
    assert weights.model_for("timm/resnet50.tv2_in1k").num_classes == 1000


def test_timm_names_share_torchvision_keys_except_vgg():
    assert weights.torchvision_keys("resnet18.tv_in1k") == weights.torchvision_keys("resnet18")
    keys = weights.torchvision_keys("vgg11.tv_in1k")
    assert keys["pre_logits.fc1.weight"] == (4096, 512, 7, 7)
    assert keys["pre_logits.fc2.weight"] == (4096, 4096, 1, 1)
    assert keys["head.fc.weight"] == (1000, 4096)


# Thin variants (the families read widths and pool sizes from the model) keep these cheap.
THIN_VGG = dict(widths=(4, 4, 8, 8, 8), hidden=16, num_classes=5)
THIN_ALEXNET = dict(widths=(4, 4, 4, 4, 8), hidden=16, num_classes=3)


def test_vgg_timm_layout_equals_torchvision_layout():
    # timm stores the first two linear layers as convolutions: the same numbers, reshaped.
    tv = parity.random_state_dict(sorted(weights.torchvision_keys("vgg11", **THIN_VGG).items()), 7)
    timm = {k: v for k, v in tv.items() if k.startswith("features.")}
    timm["pre_logits.fc1.weight"] = tv["classifier.0.weight"].reshape(16, 8, 7, 7)
    timm["pre_logits.fc1.bias"] = tv["classifier.0.bias"]
    timm["pre_logits.fc2.weight"] = tv["classifier.3.weight"].reshape(16, 16, 1, 1)
    timm["pre_logits.fc2.bias"] = tv["classifier.3.bias"]
    timm["head.fc.weight"] = tv["classifier.6.weight"]
    timm["head.fc.bias"] = tv["classifier.6.bias"]
    _, a = weights.from_torchvision("vgg11", tv, **THIN_VGG)
    _, b = weights.from_torchvision("vgg11.tv_in1k", timm, **THIN_VGG)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)


def test_flatten_chw_reorders_the_first_dense_rows():
    # AlexNet's fc1 input c·36 + h·6 + w (PyTorch's C, H, W flattening) is Flax row
    # (h·6 + w)·C + c (NHWC flattening).
    keys = weights.torchvision_keys("alexnet", **THIN_ALEXNET)
    state = {k: np.zeros(s, np.float32) for k, s in keys.items()}
    assert keys["classifier.1.weight"] == (16, 8 * 36)
    w = np.arange(16 * 8 * 36, dtype=np.float32).reshape(16, 8 * 36)
    state["classifier.1.weight"] = w
    _, variables = weights.from_torchvision("alexnet", state, **THIN_ALEXNET)
    kernel = np.asarray(variables["params"]["fc1"]["kernel"])
    for c, h, ww in ((5, 2, 3), (0, 0, 1), (7, 5, 5)):
        np.testing.assert_array_equal(kernel[(h * 6 + ww) * 8 + c], w[:, c * 36 + h * 6 + ww])


def test_misfit_checkpoint_lists_every_problem(small_state):
    state = dict(small_state)
    del state["features.3.squeeze.weight"]
    state["features.99.weight"] = np.zeros(3, np.float32)
    state["features.4.expand1x1.weight"] = np.zeros((64, 16, 3, 3), np.float32)
    with pytest.raises(weights.CheckpointError) as e:
        weights.from_torchvision(SMALL, state)
    err = e.value
    assert err.missing == ["features.3.squeeze.weight"]
    assert err.unexpected == ["features.99.weight"]
    assert len(err.mismatched) == 1 and "features.4.expand1x1.weight" in err.mismatched[0]
    for text in ("features.3.squeeze.weight", "features.99.weight", "(64, 16, 3, 3)",
                 "(64, 16, 1, 1)", "squeezenet1_1"):
        assert text in str(err)
    assert isinstance(err, ValueError)


def test_checkpoint_of_another_architecture():
    resnet18 = {k: np.zeros(s, np.float32) for k, s in weights.torchvision_keys("resnet18").items()}
    with pytest.raises(weights.CheckpointError, match="resnet34") as e:
        weights.from_torchvision("resnet34", resnet18)
    assert "layer1.2.conv1.weight" in e.value.missing
    with pytest.raises(weights.CheckpointError) as e:
        weights.from_torchvision(SMALL, resnet18)
    assert "conv1.weight" in e.value.unexpected and "features.0.weight" in e.value.missing


def test_non_float_entries_and_non_arrays(small_state):
    state = dict(small_state)
    state["features.0.bias"] = np.zeros(64, np.int64)
    with pytest.raises(weights.CheckpointError, match="dtype"):
        weights.from_torchvision(SMALL, state)
    with pytest.raises(ValueError, match="features.0.bias"):
        weights.from_torchvision(SMALL, {**small_state, "features.0.bias": object()})


def test_num_classes_from_the_checkpoint_and_backbone_only(small_state):
    state = dict(small_state)
    state["classifier.1.weight"] = state["classifier.1.weight"][:10]
    state["classifier.1.bias"] = state["classifier.1.bias"][:10]
    model, variables = weights.from_torchvision(SMALL, state)
    assert model.num_classes == 10
    backbone, bb = weights.from_torchvision(SMALL, small_state, num_classes=0)
    assert "classifier" not in bb["params"]
    logits, features = backbone.apply(bb, jnp.zeros((1, 63, 63, 3)), train=False)
    assert logits is None and features["stage3"].shape[-1] == 512


def test_auxiliary_heads_are_accepted_and_loadable():
    # The reference manifests are torchvision's pretrained layouts, auxiliary heads included.
    for name, aux in (("googlenet", "aux1."), ("inception_v3", "AuxLogits.")):
        manifest, _ = parity.read_reference(name)
        keys = {k: s for k, s in manifest if not k.endswith("num_batches_tracked")}
        assert any(k.startswith(aux) for k in keys)
        assert weights.torchvision_keys(name, aux_logits=True) == keys
        assert not any(k.startswith(aux) for k in weights.torchvision_keys(name))


def test_models_reject_images_of_the_wrong_rank_or_dtype(converted):
    model, variables = converted
    with pytest.raises(ValueError, match="x must have rank 4"):
        model.apply(variables, jnp.zeros((63, 63, 3)), train=False)
    with pytest.raises(TypeError, match="x must have a floating dtype"):
        model.apply(variables, jnp.zeros((1, 63, 63, 3), jnp.int32), train=False)


def test_checkpoint_files(tmp_path, small_state, converted):
    from safetensors.numpy import save_file

    _, expected = converted
    np.savez(tmp_path / "m.npz", **small_state)
    save_file({k: v for k, v in small_state.items()}, str(tmp_path / "m.safetensors"))
    for name in ("m.npz", "m.safetensors"):
        _, variables = weights.from_torchvision(SMALL, tmp_path / name)
        for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(expected)):
            np.testing.assert_array_equal(a, b)
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.safetensors"):
        weights.from_torchvision(SMALL, tmp_path / "cut.safetensors")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="junk.npz"):
        weights.read_state_dict(tmp_path / "junk.npz")
    (tmp_path / "m.h5").write_bytes(b"HDF")
    with pytest.raises(ValueError, match="suffix"):
        weights.read_state_dict(tmp_path / "m.h5")
    with pytest.raises(FileNotFoundError):
        weights.read_state_dict(tmp_path / "absent.safetensors")
    with pytest.raises(TypeError):
        weights.read_state_dict(42)


def test_pytorch_files(tmp_path, small_state):
    (tmp_path / "cut.pth").write_bytes(b"PK\x03\x04 truncated")
    try:
        import torch
    except Exception:  # noqa: BLE001
        with pytest.raises(ImportError, match="safetensors"):
            weights.read_state_dict(tmp_path / "cut.pth")
        return
    torch.save({"state_dict": {k: torch.from_numpy(v) for k, v in small_state.items()}},
               tmp_path / "m.pth")
    state = weights.read_state_dict(tmp_path / "m.pth")
    assert state.keys() == small_state.keys()
    with pytest.raises(ValueError, match="cut.pth"):
        weights.read_state_dict(tmp_path / "cut.pth")


def test_save_load_roundtrip_and_bad_files(tmp_path, converted):
    model, variables = converted
    path = weights.save(tmp_path / "sub" / "squeezenet.msgpack", variables)
    target = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 63, 63, 3)),
                                               train=False))
    for loaded in (weights.load(path), weights.load(path, target=target)):
        assert jax.tree.structure(loaded) == jax.tree.structure(variables)
        for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(variables)):
            np.testing.assert_array_equal(a, b)
    other = jax.eval_shape(lambda: weights.model_for("squeezenet1_0").init(
        jax.random.key(0), jnp.zeros((1, 63, 63, 3)), train=False))
    with pytest.raises(ValueError, match="does not fit"):
        weights.load(path, target=other)
    (tmp_path / "junk.msgpack").write_bytes(b"\xc1garbage")
    with pytest.raises(ValueError, match="junk.msgpack"):
        weights.load(tmp_path / "junk.msgpack")
    data = open(path, "rb").read()
    (tmp_path / "cut.msgpack").write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match="cut.msgpack"):
        weights.load(tmp_path / "cut.msgpack")


def test_command_line(tmp_path, small_state, converted, capsys):
    np.savez(tmp_path / "m.npz", **small_state)
    out = tmp_path / "out" / "squeezenet.msgpack"
    assert cli(["convert", SMALL, str(tmp_path / "m.npz"), str(out)]) == 0
    assert "1,235,496 parameters" in capsys.readouterr().out
    for a, b in zip(jax.tree.leaves(weights.load(out)), jax.tree.leaves(converted[1])):
        np.testing.assert_array_equal(a, b)
    assert cli(["convert", "resnet18", str(tmp_path / "m.npz"), str(tmp_path / "x.msgpack")]) == 1
    assert "missing keys" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x.msgpack")
    assert cli(["list"]) == 0
    listed = capsys.readouterr().out
    for name in ("mobilenet_v3_small", "keypointrcnn_resnet50_fpn", "deeplabv3_resnet101"):
        assert name in listed
    assert cli(["list", "--urls"]) == 0
    assert ("resnet50 https://download.pytorch.org/models/resnet50-11ad3fa6.pth"
            in capsys.readouterr().out.splitlines())
