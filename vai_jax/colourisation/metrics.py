"""Colourisation metrics: chrominance error in Lab units and PSNR of the reconstructed image.

:func:`colourisation_sums` is an eval step's ``sums_fn`` (see
:func:`vai_jax.train.step.make_eval_step`); :func:`vai_jax.train.loop.evaluate` turns its sums
into means over the images and :func:`summarise` into the reported figures.
"""
from __future__ import annotations

import jax.numpy as jnp

from vai_jax._validation import check_array, check_labels, check_number, invalid_labels
from vai_jax.colourisation.inputs import join_lab, split_lab


def psnr(predictions, targets, *, max_value: float = 1.0):
    """Per-example peak signal-to-noise ratio in dB, ``10 log10(max² / MSE)`` over all pixels
    and channels; an exact match gives ``10 log10(max² / 1e-12)`` (120 dB for ``max = 1``).

    Args:
      predictions, targets: floating ``[B, ...]`` of one shape.

    Returns:
      float32 ``[B]``.
    """
    predictions = check_array(predictions, "predictions", min_ndim=1, kind="floating")
    targets = check_array(targets, "targets", kind="numeric")
    check_number(max_value, "max_value", gt=0.0)
    if tuple(targets.shape) != tuple(predictions.shape):
        raise ValueError(f"targets must have the shape of predictions {tuple(predictions.shape)}; "
                         f"got {tuple(targets.shape)}")
    d = predictions.astype(jnp.float32) - jnp.asarray(targets, jnp.float32)
    mse = jnp.mean(jnp.square(d).reshape(d.shape[0], -1), axis=1)
    return 10.0 * jnp.log10(max_value ** 2 / jnp.maximum(mse, 1e-12))


def colourisation_sums(outputs, batch, mask):
    """Masked sums over a batch for :func:`vai_jax.train.loop.evaluate`.

    Args:
      outputs: the model's dict (``"ab"`` ``[B, H, W, 2]`` in Lab units, optional ``"logits"``).
      batch: ``"image"`` ``[B, H, W, 3]`` (uint8 or floating in ``[0, 1]``); optional
        ``"semantic"`` int ``[B, H, W]`` (0 = background) for errors on the object pixels;
        ``"label"`` ``[B]`` for the accuracy of ``"logits"``.
      mask: ``[B]`` 1 for real examples, 0 for padding.

    Returns:
      dict of float32 scalars: ``count`` (images), ``ab_abs_sum`` / ``ab_sq_sum`` (per-image
      means of ``|Δ|`` and ``Δ²`` over pixels and both channels), ``psnr_sum`` (the image ``L``
      with the predicted ``ab``, clipped to ``[0, 1]``, against the RGB image); with
      ``"semantic"``: ``object_ab_abs_sum``, ``object_ab_sq_sum`` (sums over object pixels and
      channels) and ``object_values_sum`` (their number); with ``"logits"`` and ``"label"``:
      ``top1_correct`` (labels outside ``[0, C)`` raise on eager calls and make it NaN under
      jit when their example has ``mask > 0``).
    """
    image = batch["image"]
    luminance, target = split_lab(image)
    ab = outputs["ab"].astype(jnp.float32)
    mask = jnp.asarray(mask, jnp.float32)
    d = ab - target
    rgb = image.astype(jnp.float32) / (1.0 if jnp.issubdtype(image.dtype, jnp.floating)
                                       else 255.0)
    sums = {"count": jnp.sum(mask),
            "ab_abs_sum": jnp.sum(jnp.mean(jnp.abs(d), axis=(1, 2, 3)) * mask),
            "ab_sq_sum": jnp.sum(jnp.mean(jnp.square(d), axis=(1, 2, 3)) * mask),
            "psnr_sum": jnp.sum(psnr(join_lab(luminance, ab), rgb) * mask)}
    if "semantic" in batch:
        obj = (batch["semantic"] > 0).astype(jnp.float32)[..., None] * mask[:, None, None, None]
        sums["object_ab_abs_sum"] = jnp.sum(jnp.abs(d) * obj)
        sums["object_ab_sq_sum"] = jnp.sum(jnp.square(d) * obj)
        sums["object_values_sum"] = 2.0 * jnp.sum(obj)
    if "logits" in outputs and "label" in batch:
        logits, labels = outputs["logits"], batch["label"]
        check_labels(labels, logits.shape[-1])
        bad = invalid_labels(labels, logits.shape[-1])
        hit = (jnp.argmax(logits, -1) == labels) & ~bad
        correct = jnp.sum(hit.astype(jnp.float32) * mask)
        sums["top1_correct"] = jnp.where(jnp.any(bad & (mask > 0)), jnp.nan, correct)
    return sums


def summarise(means: dict) -> dict:
    """The reported figures from :func:`vai_jax.train.loop.evaluate`'s means of
    :func:`colourisation_sums`: ``ab_mae``, ``ab_rmse`` (Lab units, over all pixels and both
    channels), ``psnr`` (dB, mean over images) and, when present, ``object_ab_mae``,
    ``object_ab_rmse`` (object pixels only) and ``top1``."""
    out = {"ab_mae": float(means["ab_abs"]), "ab_rmse": float(jnp.sqrt(means["ab_sq"])),
           "psnr": float(means["psnr"])}
    if "object_values" in means:
        n = max(float(means["object_values"]), 1e-12)
        out["object_ab_mae"] = float(means["object_ab_abs"]) / n
        out["object_ab_rmse"] = float(jnp.sqrt(means["object_ab_sq"] / n))
    if "top1" in means:
        out["top1"] = float(means["top1"])
    return out
