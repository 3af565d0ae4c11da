"""Detection inputs: host-side checks and clean-up of targets before they enter a jitted step,
constant proposals added to a batch, the training batch iterator, and the detectors'
``preprocess_fn``.

Inside ``jax.jit`` bad values cannot raise, so batches are checked here (NumPy): class ids out
of range raise, boxes are clipped to the image, boxes that are degenerate after clipping (zero
or negative width/height, wholly outside the image) become padding, and the counts are
returned so that nothing is dropped silently. Images with no objects are valid input.
"""
from __future__ import annotations

from typing import Iterator, Mapping

import numpy as np


def sanitize_targets(batch: Mapping[str, np.ndarray], *, num_classes: int) -> tuple[dict, dict]:
    """Check and clean ``boxes [B, M, 4]``, ``classes [B, M]``, ``valid [B, M]`` of a batch.

    Args:
      batch: dict with ``image [B, H, W, 3]`` and the object keys (padded, e.g. by
        :func:`vai_jax.data.pipeline.make_loader` with ``max_objects``).
      num_classes: ``C``; valid objects must have class ids in ``[0, C)``.

    Returns:
      ``(batch, report)``: a copy with boxes clipped to ``[0, W] x [0, H]`` and degenerate
      boxes marked invalid (box and class zeroed); ``report`` counts ``"objects"`` (valid
      after clean-up), ``"clipped"``, ``"degenerate"`` and ``"dropped"`` (from the pipeline's
      ``num_dropped_objects`` when present: objects beyond ``max_objects``).

    Raises:
      ValueError: missing keys, wrong shapes, non-finite boxes of valid objects, or class ids
        of valid objects outside ``[0, num_classes)`` (names the image and object).
    """
    for k in ("image", "boxes", "classes", "valid"):
        if k not in batch:
            raise ValueError(f"batch must have key {k!r}; got keys {sorted(batch)}")
    boxes = np.asarray(batch["boxes"], np.float32)
    classes = np.asarray(batch["classes"])
    valid = np.asarray(batch["valid"]).astype(bool)
    h, w = np.asarray(batch["image"]).shape[1:3]
    if boxes.ndim != 3 or boxes.shape[-1] != 4 or classes.shape != boxes.shape[:2] or valid.shape != boxes.shape[:2]:
        raise ValueError(f"boxes must be [B, M, 4] with classes and valid [B, M]; got {boxes.shape}, "
                         f"{classes.shape}, {valid.shape}")
    if not np.issubdtype(classes.dtype, np.integer):
        raise ValueError(f"classes must be integers; got dtype {classes.dtype}")
    bad = valid & ((classes < 0) | (classes >= num_classes))
    if bad.any():
        b, m = np.argwhere(bad)[0]
        raise ValueError(f"classes must be in [0, {num_classes}) for valid objects; image {b} object {m} "
                         f"has class {int(classes[b, m])} ({int(bad.sum())} such object(s))")
    nonfinite = valid & ~np.all(np.isfinite(boxes), -1)
    if nonfinite.any():
        b, m = np.argwhere(nonfinite)[0]
        raise ValueError(f"boxes of valid objects must be finite; image {b} object {m} is {boxes[b, m].tolist()}")
    clipped = boxes.copy()
    clipped[..., [0, 2]] = np.clip(boxes[..., [0, 2]], 0, w)
    clipped[..., [1, 3]] = np.clip(boxes[..., [1, 3]], 0, h)
    was_clipped = valid & np.any(clipped != boxes, -1)
    degenerate = valid & ((clipped[..., 2] <= clipped[..., 0]) | (clipped[..., 3] <= clipped[..., 1]))
    keep = valid & ~degenerate
    out = dict(batch)
    out["boxes"] = np.where(keep[..., None], clipped, 0).astype(np.float32)
    out["classes"] = np.where(keep, classes, 0).astype(np.int32)
    out["valid"] = keep
    report = {"objects": int(keep.sum()), "clipped": int((was_clipped & keep).sum()),
              "degenerate": int(degenerate.sum()),
              "dropped": int(np.sum(batch.get("num_dropped_objects", 0)))}
    return out, report


TARGET_KEYS = ("boxes", "classes", "valid", "masks", "proposals", "proposal_valid")


def add_proposals(batch: Mapping[str, np.ndarray], proposals: np.ndarray) -> dict:
    """The same proposals for every image of ``batch`` (R-CNN, Fast R-CNN).

    Args: batch with ``image [B, H, W, 3]``; proposals ``[P, 4]`` xyxy input pixels.
    Returns: a copy of ``batch`` with ``proposals [B, P, 4]`` and ``proposal_valid [B, P]``
    (all True).
    """
    proposals = np.asarray(proposals)
    if proposals.ndim != 2 or proposals.shape[-1] != 4:
        raise ValueError(f"proposals must be [P, 4]; got shape {proposals.shape}")
    b = len(batch["image"])
    return dict(batch, proposals=np.broadcast_to(proposals, (b,) + proposals.shape).copy(),
                proposal_valid=np.ones((b, proposals.shape[0]), bool))


class DetectionBatches:
    """Training batches of a detector from a batch iterator (e.g. a grain loader's).

    Each batch goes through :func:`sanitize_targets`, keeps ``image``, ``boxes``, ``classes``,
    ``valid`` (and ``masks`` when ``keep_masks``) and gets ``proposals`` (when given, see
    :func:`add_proposals`). ``report`` sums the counts of :func:`sanitize_targets` over the
    batches drawn. ``get_state`` / ``set_state`` forward to the wrapped iterator, so that
    :func:`vai_jax.train.loop.fit` can checkpoint and resume it.

    Args:
      iterator: yields dicts of NumPy arrays padded to ``max_objects``.
      num_classes: ``C`` (class ids of valid objects in ``[0, C)``).
      proposals: ``[P, 4]`` proposals added to every image, or None.
      keep_masks: keep ``masks [B, M, H, W]`` (Mask R-CNN).
    """

    def __init__(self, iterator: Iterator[dict], *, num_classes: int,
                 proposals: np.ndarray | None = None, keep_masks: bool = False):
        self.iterator, self.proposals, self.keep_masks = iterator, proposals, keep_masks
        self.num_classes = num_classes
        self.report = {"objects": 0, "clipped": 0, "degenerate": 0, "dropped": 0}

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        batch, rep = sanitize_targets(next(self.iterator), num_classes=self.num_classes)
        for k, v in rep.items():
            self.report[k] += v
        keys = ("image", "boxes", "classes", "valid") + (("masks",) if self.keep_masks else ())
        out = {k: batch[k] for k in keys}
        if self.proposals is not None:
            return add_proposals(out, self.proposals)
        return out

    def get_state(self):
        return self.iterator.get_state()

    def set_state(self, state):
        self.iterator.set_state(state)


def detection_preprocess(batch, rng, *, train: bool, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)):
    """``preprocess_fn`` for :func:`vai_jax.train.step.make_train_step` and the detectors.

    Returns the detectors' input dict: ``image`` float32 ``(image / 255 - mean) / std``; when
    ``train`` also the targets present in ``batch`` (``boxes``, ``classes``, ``valid``,
    ``masks``) and ``rng`` (this step's key, for the anchor / RoI samplers); ``proposals`` and
    ``proposal_valid`` (Fast R-CNN, R-CNN) are passed in both modes.
    """
    import jax.numpy as jnp

    image = batch["image"]
    x = image.astype(jnp.float32)
    if image.dtype == jnp.uint8:
        x = x / 255.0
    x = (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)
    out = {"image": x}
    for k in ("proposals", "proposal_valid"):
        if k in batch:
            out[k] = batch[k]
    if train:
        for k in TARGET_KEYS[:4]:
            if k in batch:
                out[k] = batch[k]
        out["rng"] = rng
    return out
