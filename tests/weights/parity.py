"""What the torchvision parity tests and ``make_references.py`` share: the input sizes, the
seeded random state dicts and inputs, the reference files. Not a test module.

Weights are never committed: each reference file (``references/<name>.npz``) holds
torchvision's state-dict keys and shapes (the manifest), the seed, and torchvision's logits
for two inputs; the state dict is regenerated from the manifest and the seed. Random numbers
come from PCG64's raw 64-bit stream (an algorithm, not a NumPy sampling routine, so they do not
change with NumPy versions), turned into uniform floats:

* conv / linear weights: uniform with variance ``1 / fan_in`` (activations stay O(1));
* BatchNorm: scale in [0.5, 1.5], bias in [-0.2, 0.2], running mean in [-0.2, 0.2], running
  variance in [0.5, 2.0] (not the identity);
* other 1-D parameters (biases): uniform in [-0.1, 0.1];
* inputs: uniform in [-1.7, 1.7] (about unit variance, as ImageNet-normalised images).
"""
from __future__ import annotations

import json
import os
import zlib

import numpy as np

REFERENCES = os.path.join(os.path.dirname(__file__), "references")

# Every torchvision builder name the converter supports, with the even and the odd input size
# of its parity test (the odd size gives other map sizes after the strided layers).
SIZES = {
    "alexnet": (64, 67),
    **{f"vgg{d}{bn}": (64, 63) for d in (11, 13, 16, 19) for bn in ("", "_bn")},
    **{n: (64, 63) for n in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
                             "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
                             "wide_resnet50_2", "wide_resnet101_2")},
    **{n: (64, 63) for n in ("densenet121", "densenet161", "densenet169", "densenet201")},
    "squeezenet1_0": (64, 65),
    "squeezenet1_1": (64, 63),
    "googlenet": (64, 63),
    "inception_v3": (76, 75),  # 75 is the smallest input Inception v3 takes
    "mobilenet_v2": (64, 63),
    "mobilenet_v3_large": (64, 63),
    "mobilenet_v3_small": (64, 63),
    **{f"shufflenet_v2_{k}": (64, 63) for k in ("x0_5", "x1_0", "x1_5", "x2_0")},
}
# Built as torchvision's pretrained builders build them (the checkpoint then also holds the
# auxiliary heads, which the conversion accepts and drops).
TORCH_KWARGS = {"googlenet": dict(aux_logits=True, transform_input=True, init_weights=False),
                "inception_v3": dict(aux_logits=True, transform_input=True, init_weights=False)}
# The default test run: one or two per family (the rest run with VAI_JAX_WEIGHTS_FULL=1).
DEFAULT = ("alexnet", "vgg11_bn", "resnet18", "resnext50_32x4d", "densenet121", "squeezenet1_1",
           "googlenet", "inception_v3", "mobilenet_v2", "mobilenet_v3_small",
           "shufflenet_v2_x0_5")
RTOL = 1e-4


def seed_of(name: str) -> int:
    return zlib.crc32(name.encode())


def _uniform(seed: int, n: int) -> np.ndarray:
    """``n`` float32 in [0, 1) from PCG64's raw stream (24 bits each)."""
    raw = np.random.Generator(np.random.PCG64(seed)).bit_generator.random_raw((n + 1) // 2)
    bits = raw.astype("<u8", copy=False).view("<u4")[:n]
    bits >>= np.uint32(8)  # in place: VGG's classifier alone is 10^8 values
    out = bits.astype(np.float32)
    out *= np.float32(2.0 ** -24)
    return out


def _between(seed, shape, lo, hi):
    """float32 ``lo + (hi - lo) * u`` (two float32 roundings), ``u`` from :func:`_uniform`."""
    u = _uniform(seed, int(np.prod(shape)))
    u *= hi - lo
    u += lo
    return u.reshape(shape)


def random_state_dict(manifest: list[tuple[str, tuple[int, ...]]], seed: int) -> dict:
    """``{key: array}`` for torchvision's keys and shapes, deterministic in ``seed``."""
    out = {}
    bn_prefixes = {k[: -len(".running_var")] for k, _ in manifest if k.endswith(".running_var")}
    for i, (key, shape) in enumerate(manifest):
        s = seed * 100_003 + i
        prefix, leaf = key.rsplit(".", 1)
        if leaf == "num_batches_tracked":
            out[key] = np.zeros(shape, np.int64)
        elif prefix in bn_prefixes:
            lo, hi = {"weight": (0.5, 1.5), "bias": (-0.2, 0.2), "running_mean": (-0.2, 0.2),
                      "running_var": (0.5, 2.0)}[leaf]
            out[key] = _between(s, shape, lo, hi)
        elif len(shape) >= 2:
            a = float(np.sqrt(3.0 / np.prod(shape[1:])))
            out[key] = _between(s, shape, -a, a)
        else:
            out[key] = _between(s, shape, -0.1, 0.1)
    return out


def random_input(name: str, size: int) -> np.ndarray:
    """``[1, size, size, 3]`` float32 (NHWC)."""
    return _between(seed_of(name) + size, (1, size, size, 3), -1.7, 1.7)


def reference_path(name: str) -> str:
    return os.path.join(REFERENCES, f"{name}.npz")


def write_reference(name, manifest, logits: dict[int, np.ndarray], versions: str) -> str:
    path = reference_path(name)
    os.makedirs(REFERENCES, exist_ok=True)
    np.savez_compressed(
        path, manifest=np.array(json.dumps([[k, list(s)] for k, s in manifest])),
        versions=np.array(versions), seed=np.array(seed_of(name)),
        **{f"logits_{size}": np.asarray(v, np.float32) for size, v in logits.items()})
    return path


def read_reference(name: str) -> tuple[list, dict[int, np.ndarray]]:
    """``(manifest [(key, shape)], {input size: torchvision's logits [1, 1000]})``."""
    with np.load(reference_path(name), allow_pickle=False) as z:
        manifest = [(k, tuple(s)) for k, s in json.loads(str(z["manifest"]))]
        logits = {int(k.split("_")[1]): z[k] for k in z.files if k.startswith("logits_")}
    return manifest, logits


def relative_error(ours, ref) -> float:
    """``max |ours − ref| / max |ref|``."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return float(np.max(np.abs(ours - ref)) / np.max(np.abs(ref)))
