"""Training metrics as JSON lines and TensorBoard event files (tensorboardX: no TensorFlow).

Each :meth:`MetricsWriter.write` appends one line ``{"step": s, "split": "train", "loss": ...}``
to ``<workdir>/metrics.jsonl`` and one scalar per key (tag ``"<split>/<key>"``) to the event
file in ``<workdir>/tensorboard/``. Only process 0 writes on a multi-host run.
"""
from __future__ import annotations

import json
import math
import os

import jax
import numpy as np


def read_metrics(path: str) -> list[dict]:
    """All records of a ``metrics.jsonl`` file (an incomplete last line is ignored)."""
    out = []
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


class MetricsWriter:
    """Append-only metrics writer.

    Args:
      workdir: the run directory (created).
      tensorboard: also write TensorBoard events.
    """

    def __init__(self, workdir: str, *, tensorboard: bool = True):
        if not isinstance(workdir, (str, os.PathLike)) or not os.fspath(workdir):
            raise TypeError(f"workdir must be a directory path; got {workdir!r}")
        self.active = jax.process_index() == 0
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._tb = None
        if not self.active:
            return
        os.makedirs(workdir, exist_ok=True)
        self._file = open(self.path, "a")
        if tensorboard:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

    def write(self, step: int, scalars: dict, *, split: str = "train") -> None:
        """Record scalars (Python/NumPy/JAX numbers) of ``step`` under ``split``."""
        if not self.active:
            return
        values = {k: float(np.asarray(v)) for k, v in scalars.items()}
        record = {"step": int(step), "split": split,
                  **{k: (v if math.isfinite(v) else str(v)) for k, v in values.items()}}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(f"{split}/{k}", v, int(step))

    def flush(self) -> None:
        if self.active:
            self._file.flush()
            if self._tb is not None:
                self._tb.flush()

    def close(self) -> None:
        if self.active:
            self._file.close()
            if self._tb is not None:
                self._tb.close()
