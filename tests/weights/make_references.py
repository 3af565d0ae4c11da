"""Write ``tests/weights/references/<name>.npz``: torchvision's state-dict manifest and its
logits on the seeded inputs of :mod:`tests.weights.parity`, with the seeded random weights
(BatchNorm statistics not the identity), in evaluation mode, float32 on the CPU.

Needs torch and torchvision (``pip install -e ".[ref]"``); run from the repository root:

    python -m tests.weights.make_references            # every name of parity.SIZES
    python -m tests.weights.make_references resnet50   # some names
"""
from __future__ import annotations

import sys
import time

import numpy as np

from tests.weights import parity


def reference_logits(name: str):
    import torch
    import torchvision

    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None, **parity.TORCH_KWARGS.get(name, {}))
    manifest = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    state = parity.random_state_dict(manifest, parity.seed_of(name))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    model.eval()
    logits = {}
    with torch.no_grad():
        for size in parity.SIZES[name]:
            x = torch.from_numpy(parity.random_input(name, size).transpose(0, 3, 1, 2).copy())
            logits[size] = model(x).numpy()
    versions = f"torch {torch.__version__}, torchvision {torchvision.__version__}"
    return manifest, logits, versions


def main(names):
    torch_threads()
    for name in names or parity.SIZES:
        if name not in parity.SIZES:
            raise SystemExit(f"unknown name {name!r}; choose from {', '.join(parity.SIZES)}")
        start = time.perf_counter()
        manifest, logits, versions = reference_logits(name)
        path = parity.write_reference(name, manifest, logits, versions)
        scale = max(float(np.abs(v).max()) for v in logits.values())
        print(f"{name}: {path} (max |logit| {scale:.3g}, {time.perf_counter() - start:.1f} s)",
              flush=True)


def torch_threads():
    import torch

    torch.set_num_threads(2)


if __name__ == "__main__":
    main(sys.argv[1:])
