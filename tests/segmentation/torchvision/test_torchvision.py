"""torchvision's fcn_resnet50/101 and deeplabv3_resnet50/101 converted to vai_jax: the same
seeded random weights (BatchNorm statistics not the identity) give the same ``out`` and ``aux``
logits as torchvision, to 1e-4 relative (``max |ours − ref| / max |ref|``), float32, on a 64 and
a 63 pixel input (see :mod:`tests.segmentation.torchvision.parity`).

Without torch the references are the committed head outputs (resized with a float64 NumPy port
of torchvision's bilinear resize) and torchvision's own resized outputs at sampled pixels; with
torch and torchvision importable each test also runs torchvision now and compares the whole
outputs. The default run covers the FCN head at 64 pixels and the DeepLab head at 63
(``parity.DEFAULT``); every name at both sizes runs with ``VAI_JAX_WEIGHTS_FULL=1``.
"""
from __future__ import annotations

import functools
import importlib.util
import os

import jax
import numpy as np
import pytest

from tests.segmentation.torchvision import parity
from vai_jax import weights

LIVE = all(importlib.util.find_spec(m) for m in ("torch", "torchvision"))
FULL = os.environ.get("VAI_JAX_WEIGHTS_FULL", "") not in ("", "0")


def test_every_segmentation_name_has_a_reference():
    assert set(parity.NAMES) == set(weights.SUPPORTED_SEGMENTATION)
    for name in parity.NAMES:
        assert os.path.isfile(os.path.join(parity.REFERENCES, f"{name}.npz")), name


def test_numpy_resize_port():
    # 2 cells to 5 pixels: sources (o + 0.5) * 2 / 5 - 0.5 = -0.3, 0.1, 0.5, 0.9, 1.3 -> clamped
    # at 0 on the left, the upper index clamped on the right.
    x = np.array([0.0, 10.0]).reshape(1, 2, 1, 1)
    got = parity.resize_reference(x, (5, 1))[0, :, 0, 0]
    np.testing.assert_allclose(got, [0.0, 1.0, 5.0, 9.0, 10.0], atol=1e-12)


@functools.lru_cache(maxsize=1)
def _converted(name):
    """``(reference, live torchvision outputs or None, model, variables, jitted apply)``."""
    ref = parity.read_reference(name)
    live = parity.torch_outputs(name) if LIVE else None
    if live is not None:
        assert live["manifest"] == ref["manifest"], "torchvision's state-dict layout changed"
    model, variables = weights.from_torchvision(name, parity.state_dict(name, ref["manifest"]),
                                                aux_loss=True)
    return ref, live, model, variables, jax.jit(lambda v, x: model.apply(v, x, train=False))


@pytest.mark.parametrize("name", parity.NAMES)
def test_keys_are_torchvisions(name):
    ref = parity.read_reference(name)
    expected = {k: s for k, s in ref["manifest"] if not k.endswith("num_batches_tracked")}
    assert weights.torchvision_keys(name, aux_loss=True) == expected


@pytest.mark.parametrize("name,size", [(n, s) for n in parity.NAMES for s in parity.SIZES])
def test_outputs_match_torchvision(name, size):
    if (name, size) not in parity.DEFAULT and not FULL:
        pytest.skip("set VAI_JAX_WEIGHTS_FULL=1 to run every name and size")
    ref, live, _, variables, apply = _converted(name)
    out = apply(variables, parity.random_input(name, size))
    assert set(out) == set(parity.KEYS)
    rows, cols = parity.sample_pixels(size)
    for key in parity.KEYS:
        ours = np.asarray(out[key])
        full = parity.resize_reference(ref[f"{key}_logits_{size}"], (size, size))
        assert ours.shape == full.shape == (1, size, size, 21)
        assert parity.relative_error(ours, full) <= parity.RTOL, (name, key, size)
        samples = ref[f"{key}_samples_{size}"]
        assert parity.relative_error(ours[0, rows, cols], samples) <= parity.RTOL
        if live is not None:
            assert parity.relative_error(ours, live[f"{key}_{size}"]) <= parity.RTOL
            np.testing.assert_allclose(live[f"{key}_logits_{size}"],
                                       ref[f"{key}_logits_{size}"], rtol=0,
                                       atol=parity.RTOL * np.abs(samples).max())
