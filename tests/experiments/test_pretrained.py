"""experiments/pretrained end to end without torch: a seeded random state dict with
torchvision's keys, written to a ``.safetensors`` file, stands in for the download of a
classifier, a detector (at a reduced size) and a segmenter; the demo writes its PNG, and what it
returns and prints equals a direct ``weights.from_torchvision`` + ``model.apply`` on its
input."""
import jax
import numpy as np
import pytest
from safetensors.numpy import save_file

from experiments.pretrained import run
from tests.weights.parity import random_state_dict, seed_of
from vai_jax import weights

PNG = b"\x89PNG\r\n\x1a\n"


def _checkpoint(tmp_path, name):
    manifest = list(weights.torchvision_keys(name).items())
    path = tmp_path / f"{name}.safetensors"
    save_file(random_state_dict(manifest, seed_of(name)), str(path))
    return str(path)


def _direct(name, checkpoint, out, *, compiled=False):
    """A fresh conversion of the file and ``model.apply`` on the demo's input: jitted here, or
    with ``compiled`` through the demo's jitted ``model.apply`` (a detector's compilation takes
    ~10 s on a 2-core CPU; the converted model and variables are still this call's own)."""
    model, variables = weights.from_torchvision(name, checkpoint, **out["model_kwargs"])
    if compiled:
        return jax.tree.map(np.asarray, run.infer(model, variables, out["input"]))
    apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
    return jax.tree.map(np.asarray, apply(variables, out["input"]))


def _check_common(tmp_path, name, checkpoint, out, *, compiled=False):
    assert (tmp_path / "work" / f"{name}.png").read_bytes()[:8] == PNG
    direct = _direct(name, checkpoint, out, compiled=compiled)
    for a, b in zip(jax.tree.leaves(out["outputs"]), jax.tree.leaves(direct), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    return direct


def test_classifier(tmp_path):
    name = "resnet18"
    checkpoint = _checkpoint(tmp_path, name)
    out = run.run(name, checkpoint, str(tmp_path / "work"), size=64)
    assert out["input"].shape == (1, 64, 64, 3)
    logits, _ = _check_common(tmp_path, name, checkpoint, out)
    top = out["summary"]["top"]
    assert [i for i, _, _ in top] == list(np.argsort(-logits[0])[:5])
    probs = np.exp(logits[0] - logits[0].max())
    np.testing.assert_allclose([p for _, _, p in top],
                               probs[[i for i, _, _ in top]] / probs.sum(), rtol=1e-5)
    assert all(f"{n} ({i})" in out["text"] for i, n, _ in top)


def test_detector(tmp_path):
    name = "fasterrcnn_resnet50_fpn"
    checkpoint = _checkpoint(tmp_path, name)
    out = run.run(name, checkpoint, str(tmp_path / "work"), size=64, score_threshold=0.0)
    assert out["model_kwargs"] == dict(min_size=64, max_size=107)
    direct = _check_common(tmp_path, name, checkpoint, out, compiled=True)
    dets = out["summary"]["detections"]
    kept = np.flatnonzero(direct["valid"][0])
    assert sorted(d["index"] for d in dets) == sorted(kept.tolist())
    for d in dets:
        np.testing.assert_allclose(d["box"], direct["boxes"][0, d["index"]], rtol=1e-6)
        assert d["name"] == weights.catalog.COCO_CATEGORIES[direct["labels"][0, d["index"]]]
    assert f"{len(dets)} detections" in out["text"]


def test_segmenter(tmp_path):
    name = "fcn_resnet50"
    checkpoint = _checkpoint(tmp_path, name)
    out = run.run(name, checkpoint, str(tmp_path / "work"), size=64)
    assert out["input"].shape == (1, 64, 64, 3)
    direct = _check_common(tmp_path, name, checkpoint, out)
    class_map = np.argmax(direct["out"][0], axis=-1)
    np.testing.assert_array_equal(out["summary"]["class_map"], class_map)
    fractions = {i: f for i, _, f in out["summary"]["classes"]}
    assert fractions == {int(c): float(np.mean(class_map == c)) for c in np.unique(class_map)}
    assert sum(fractions.values()) == pytest.approx(1.0)


def test_without_a_checkpoint_says_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        run.run("resnet50", None, str(tmp_path))
    message = str(e.value)
    assert "https://download.pytorch.org/models/resnet50-11ad3fa6.pth" in message
    assert "--name resnet50 --checkpoint resnet50-11ad3fa6.pth" in message
    assert weights.URLS["deeplabv3_resnet50"] in run.checkpoint_help("deeplabv3_resnet50")
    with pytest.raises(FileNotFoundError, match="missing.pth does not exist"):
        run.run("resnet50", str(tmp_path / "missing.pth"), str(tmp_path))
    with pytest.raises(ValueError, match="segmentation: fcn_resnet50"):
        run.run("resnet5", None, str(tmp_path))
    assert not list(tmp_path.iterdir())
