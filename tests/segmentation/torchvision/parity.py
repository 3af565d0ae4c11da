"""What the torchvision segmentation parity tests and ``make_references.py`` share: the names,
input sizes, seeded random weights and inputs, the torchvision run, the reference files and an
independent float64 NumPy port of torchvision's final resize. Not a test module.

Weights are never committed: ``references/<name>.npz`` holds torchvision's state-dict keys and
shapes (the manifest, with the auxiliary classifier: ``aux_loss=True``), the seed, and for each
input size torchvision's head outputs before the resize (``out_logits_<size>``,
``aux_logits_<size>``, ``[1, h, w, 21]`` NHWC, 8 x 8 cells at both sizes) and its resized outputs
at :data:`SAMPLES` fixed pixels (``out_samples_<size>``, ``aux_samples_<size>``, ``[SAMPLES,
21]``). The weights are regenerated from the manifest with
:func:`tests.weights.parity.random_state_dict` (PCG64's raw stream; BatchNorm statistics not
the identity). The full ``[1, H, W, 21]`` references are :func:`resize_reference` of the head
outputs (the sampled pixels check that port against torchvision).
"""
from __future__ import annotations

import json
import os
import zlib

import numpy as np

from tests.weights.parity import random_input, random_state_dict, relative_error  # noqa: F401

HERE = os.path.dirname(__file__)
REFERENCES = os.path.join(HERE, "references")
NAMES = ("fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101")
# An even size (a multiple of the stride 8) and an odd one (its 8 x 8 cells stretched over 63
# pixels: torchvision resizes straight to the input size).
SIZES = (64, 63)
# The default test run: each head once, one at each size (every (name, size) runs with
# VAI_JAX_WEIGHTS_FULL=1).
DEFAULT = (("fcn_resnet50", 64), ("deeplabv3_resnet50", 63))
SAMPLES = 64
RTOL = 1e-4
KEYS = ("out", "aux")


def seed_of(name: str) -> int:
    return zlib.crc32(name.encode())


def state_dict(name: str, manifest) -> dict:
    return random_state_dict(manifest, seed_of(name))


def sample_pixels(size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, cols)`` int [SAMPLES] of the stored full-size pixels: the four corners, then
    seeded positions."""
    rng = np.random.Generator(np.random.PCG64(size))
    rows = np.concatenate([[0, 0, size - 1, size - 1], rng.integers(0, size, SAMPLES - 4)])
    cols = np.concatenate([[0, size - 1, 0, size - 1], rng.integers(0, size, SAMPLES - 4)])
    return rows, cols


def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``[n_out, n_in]`` float64: PyTorch's bilinear weights, ``align_corners=False`` with an
    output size (source ``max((o + 0.5) · n_in / n_out − 0.5, 0)``, upper index clamped)."""
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        src = max((o + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = int(np.floor(src))
        i1 = min(i0 + 1, n_in - 1)
        frac = src - i0
        m[o, i0] += 1.0 - frac
        m[o, i1] += frac
    return m


def resize_reference(logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``[B, h, w, K]`` → ``[B, H, W, K]`` float64, torchvision's ``F.interpolate(...,
    mode="bilinear", align_corners=False)``."""
    x = np.asarray(logits, np.float64)
    rh, rw = _resize_matrix(x.shape[1], size[0]), _resize_matrix(x.shape[2], size[1])
    return np.einsum("oh,bhwk,pw->bopk", rh, x, rw)


def torch_model(name: str):
    """torchvision's builder ``name`` (21 classes, auxiliary classifier, no weights downloaded)
    in evaluation mode."""
    import torchvision

    build = getattr(torchvision.models.segmentation, name)
    return build(weights=None, weights_backbone=None, num_classes=21, aux_loss=True).eval()


def torch_outputs(name: str) -> dict:
    """Run torchvision on the seeded inputs with the seeded weights: ``{"manifest",
    "<key>_logits_<size>" (head outputs, NHWC), "<key>_<size>" (resized outputs, NHWC)}`` for
    ``key`` in ``out``, ``aux``."""
    import torch

    torch.manual_seed(0)
    model = torch_model(name)
    manifest = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict(name, manifest).items()},
                          strict=True)
    captured = {}
    model.classifier.register_forward_hook(lambda m, i, o: captured.update(out=o))
    model.aux_classifier.register_forward_hook(lambda m, i, o: captured.update(aux=o))
    out = {"manifest": manifest}
    with torch.no_grad():
        for size in SIZES:
            x = torch.from_numpy(random_input(name, size).transpose(0, 3, 1, 2).copy())
            result = model(x)
            for key in KEYS:
                out[f"{key}_logits_{size}"] = captured[key].numpy().transpose(0, 2, 3, 1)
                out[f"{key}_{size}"] = result[key].numpy().transpose(0, 2, 3, 1)
    return out


def write_reference(name: str, out: dict, versions: str) -> str:
    os.makedirs(REFERENCES, exist_ok=True)
    path = os.path.join(REFERENCES, f"{name}.npz")
    arrays = {}
    for size in SIZES:
        rows, cols = sample_pixels(size)
        for key in KEYS:
            arrays[f"{key}_logits_{size}"] = out[f"{key}_logits_{size}"].astype(np.float32)
            arrays[f"{key}_samples_{size}"] = out[f"{key}_{size}"][0, rows, cols].astype(
                np.float32)
    np.savez_compressed(path, manifest=np.array(json.dumps([[k, list(s)] for k, s in
                                                            out["manifest"]])),
                        versions=np.array(versions), seed=np.array(seed_of(name)), **arrays)
    return path


def read_reference(name: str) -> dict:
    """``{"manifest": [(key, shape)], "<key>_logits_<size>", "<key>_samples_<size>"}``."""
    with np.load(os.path.join(REFERENCES, f"{name}.npz"), allow_pickle=False) as z:
        out = {k: z[k] for k in z.files if k not in ("manifest", "versions", "seed")}
        out["manifest"] = [(k, tuple(s)) for k, s in json.loads(str(z["manifest"]))]
    return out
