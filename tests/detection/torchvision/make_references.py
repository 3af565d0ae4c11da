"""Write ``tests/detection/torchvision/references/<name>.npz``: torchvision's R-CNN outputs on the
inputs of :mod:`tests.detection.torchvision.parity` with its seeded random weights (float32, CPU).

Needs torch and torchvision (``pip install -e ".[ref]"``); run from the repository root:

    python -m tests.detection.torchvision.make_references                     # all three
    python -m tests.detection.torchvision.make_references maskrcnn_resnet50_fpn
"""
from __future__ import annotations

import sys
import time

from tests.detection.torchvision import parity


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
        counts = [len(out[f"boxes_{i}"]) for i in range(2)]
        print(f"{name}: {path} (detections {counts}, {time.perf_counter() - start:.1f} s)",
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
