"""Write ``tests/segmentation/torchvision/references/<name>.npz``: torchvision's segmentation
outputs on the seeded inputs of :mod:`tests.segmentation.torchvision.parity` with its seeded
random weights (float32, CPU).

Needs torch and torchvision (``pip install -e ".[ref]"``); run from the repository root:

    python -m tests.segmentation.torchvision.make_references                  # all four
    python -m tests.segmentation.torchvision.make_references fcn_resnet50
"""
from __future__ import annotations

import sys
import time

import numpy as np

from tests.segmentation.torchvision import parity


def main(names):
    import torch
    import torchvision

    torch.set_num_threads(2)
    for name in names or parity.NAMES:
        if name not in parity.NAMES:
            raise SystemExit(f"unknown name {name!r}; choose from {', '.join(parity.NAMES)}")
        start = time.perf_counter()
        out = parity.torch_outputs(name)
        versions = f"torch {torch.__version__}, torchvision {torchvision.__version__}"
        path = parity.write_reference(name, out, versions)
        scale = max(float(np.abs(out[f"out_{s}"]).max()) for s in parity.SIZES)
        print(f"{name}: {path} (max |logit| {scale:.3g}, {time.perf_counter() - start:.1f} s)",
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
