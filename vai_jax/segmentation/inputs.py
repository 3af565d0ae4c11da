"""Segmentation inputs on the host: a record transform that rejects bad masks before they enter
the pipeline, and the per-class pixel counts of a data source (for class weights).

Records are ``{"image": uint8 [H, W, 3], "semantic": int [H, W]}``; labels are class ids in
``[0, K)`` or the ignore label (:mod:`vai_jax.segmentation.losses`).
"""
from __future__ import annotations

import numpy as np

from vai_jax.segmentation.losses import IGNORE_LABEL, check_segmentation_labels


class CheckLabels:
    """Record transform (``transform(record, rng) -> record``, see
    :func:`vai_jax.data.pipeline.make_loader`) that raises ``ValueError`` when the record's
    ``"semantic"`` mask differs in size from its image or holds a label outside
    ``[0, num_classes)`` other than ``ignore_label``; returns the record unchanged."""

    def __init__(self, num_classes: int, ignore_label: int | None = IGNORE_LABEL):
        self.num_classes, self.ignore_label = num_classes, ignore_label

    def __call__(self, record, rng=None):
        del rng
        if record["semantic"].shape != record["image"].shape[:2]:
            raise ValueError(f"semantic mask shape {record['semantic'].shape} differs from the "
                             f"image's {record['image'].shape[:2]}")
        check_segmentation_labels(record["semantic"], self.num_classes,
                                  ignore_label=self.ignore_label, name="semantic")
        return record


def pixel_counts(source, num_classes: int, *, max_examples: int | None = None) -> np.ndarray:
    """Pixels per class over the ``"semantic"`` masks of ``source`` (a random-access source of
    records; the first ``max_examples`` of them, all when None). Labels outside
    ``[0, num_classes)`` (the ignore label) are not counted.

    Returns:
      int64 ``[num_classes]``.
    """
    n = len(source) if max_examples is None else min(len(source), max_examples)
    counts = np.zeros(num_classes, np.int64)
    for i in range(n):
        sem = np.asarray(source[i]["semantic"]).reshape(-1)
        counts += np.bincount(sem[(sem >= 0) & (sem < num_classes)], minlength=num_classes)
    return counts
