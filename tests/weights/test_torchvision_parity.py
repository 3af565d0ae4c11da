"""torchvision parity of the converted classifiers: the same seeded random weights (BatchNorm
statistics not the identity) give the same logits in vai_jax and in torchvision, to 1e-4
relative (``max |ours − ref| / max |ref|``), float32, on an even and an odd input size.

Without torch the reference is the committed ``references/<name>.npz`` (written by
``python -m tests.weights.make_references``); with torch and torchvision importable each test
also runs torchvision now and compares with it (and checks the committed manifest is still
torchvision's).

Every supported name has its test. The default run covers one or two per family
(``parity.DEFAULT``); the others are skipped unless ``VAI_JAX_WEIGHTS_FULL=1`` is set:

    VAI_JAX_WEIGHTS_FULL=1 pytest tests/weights/test_torchvision_parity.py
"""
import os

import jax
import numpy as np
import pytest

from vai_jax import weights
from tests.weights import parity

FULL = os.environ.get("VAI_JAX_WEIGHTS_FULL", "") not in ("", "0")


def _torchvision():
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - absent, or a mismatched pair failing on import
        return False
    return True


def test_every_supported_name_has_a_parity_test_and_a_reference():
    assert set(parity.SIZES) == set(weights.SUPPORTED_CLASSIFICATION)
    assert set(parity.DEFAULT) <= set(parity.SIZES)
    for name in parity.SIZES:
        assert os.path.isfile(parity.reference_path(name)), name


@pytest.mark.parametrize("name", list(parity.SIZES))
def test_logits_match_torchvision(name):
    if name not in parity.DEFAULT and not FULL:
        pytest.skip("set VAI_JAX_WEIGHTS_FULL=1 to run every name")
    manifest, reference = parity.read_reference(name)
    assert sorted(reference) == sorted(parity.SIZES[name])
    state = parity.random_state_dict(manifest, parity.seed_of(name))
    model, variables = weights.from_torchvision(name, state)
    apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
    live = None
    if _torchvision():
        from tests.weights.make_references import reference_logits

        live_manifest, live, _ = reference_logits(name)
        assert live_manifest == manifest, "torchvision's state-dict layout changed"
    for size, ref in reference.items():
        x = parity.random_input(name, size)
        logits, features = apply(variables, x)
        assert logits.shape == ref.shape == (1, 1000)
        assert {f.name for f in model.feature_info} <= set(features)
        err = parity.relative_error(logits, ref)
        assert err <= parity.RTOL, (name, size, err)
        if live is not None:
            assert parity.relative_error(logits, live[size]) <= parity.RTOL, (name, size)
            np.testing.assert_allclose(live[size], ref, rtol=0,
                                       atol=parity.RTOL * np.abs(ref).max())
