"""Maximally activating image patches (Zeiler & Fergus 2014, Fig. 2's patch panels).

For a channel of a layer, run the data set through the network, find the examples whose
strongest unit of that channel is largest and crop, around that unit, exactly its receptive
field (computed from the architecture by :mod:`vai_jax.analysis.receptive_field`). Parts of a
field outside the image (the network's zero padding) are filled with ``fill``.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from vai_jax._validation import check_array
from vai_jax.analysis.layers import collect_outputs, check_layers, layer_shapes
from vai_jax.analysis.receptive_field import ReceptiveField, layer_receptive_field


@dataclasses.dataclass
class TopPatches:
    """Result of :func:`top_patches` for channels ``channels`` (``C`` of them), ``k`` each.

    Attributes:
      channels: int ``[C]``.
      image_index: int ``[C, k]`` index into the data set, best first.
      position: int ``[C, k, 2]`` ``(i, j)`` of the unit in the layer's feature map.
      value: float32 ``[C, k]`` its activation.
      crops: ``[C, k, rf_h, rf_w, 3]`` (display images' dtype) the receptive-field crops.
      field: the layer's :class:`ReceptiveField`.
    """

    channels: np.ndarray
    image_index: np.ndarray
    position: np.ndarray
    value: np.ndarray
    crops: np.ndarray
    field: ReceptiveField


def crop_field(image, field: ReceptiveField, i: int, j: int, *, fill=0) -> np.ndarray:
    """The receptive field of unit ``(i, j)`` cut from ``image [H, W, C]``: an array
    ``[size_h, size_w, C]``; pixels outside the image are ``fill``. Global fields return the
    whole image."""
    image = np.asarray(image)
    r0, c0, r1, c1 = field.box(i, j)
    out = np.full((r1 - r0, c1 - c0) + image.shape[2:], fill, dtype=image.dtype)
    h, w = image.shape[:2]
    rr0, cc0, rr1, cc1 = max(r0, 0), max(c0, 0), min(r1, h), min(c1, w)
    if rr1 > rr0 and cc1 > cc0:
        out[rr0 - r0:rr1 - r0, cc0 - c0:cc1 - c0] = image[rr0:rr1, cc0:cc1]
    return out


def top_patches(model, variables, layer: str, channels: Sequence[int], inputs, display=None, *,
                k: int = 9, batch_size: int = 128, fill=0, progress: bool = False,
                **call_kwargs) -> TopPatches:
    """Top-``k`` examples (one unit each, distinct examples) for each channel of ``layer``.

    Args:
      model, variables: the network (pass ``train=False``).
      layer: layer name with a ``[B, h, w, C]`` output; unknown names raise a ValueError
        listing the valid ones.
      channels: channel indices.
      inputs: float ``[N, H, W, C_in]`` model inputs (already normalised).
      display: ``[N, H, W, 3]`` images to crop from (e.g. the uint8 originals); default
        ``inputs``.
      k: examples per channel (at most ``N``).
      batch_size: examples per forward pass.
      fill: value for crop pixels outside the image.

    Returns:
      :class:`TopPatches`. Ties go to the lower example index, then the first unit in
      row-major order.
    """
    inputs = check_array(inputs, "inputs", ndim=4, kind="floating", shape_hint="[N, H, W, C]")
    display = inputs if display is None else display
    if np.shape(display)[:3] != tuple(inputs.shape[:3]):
        raise ValueError(f"display must have the inputs' [N, H, W]; got {np.shape(display)} "
                         f"and {inputs.shape}")
    n, h, w, c = inputs.shape
    channels = np.asarray(channels, np.int32).reshape(-1)
    shape = (min(batch_size, n), h, w, c)
    shapes = layer_shapes(model, variables, shape, **call_kwargs)
    check_layers([layer], list(shapes))
    out_shape = shapes[layer]
    if len(out_shape) != 4:
        raise ValueError(f"layer {layer!r} must output [B, h, w, C] feature maps; got {out_shape}")
    if channels.size == 0 or channels.min() < 0 or channels.max() >= out_shape[-1]:
        raise ValueError(f"channels must be non-empty and in [0, {out_shape[-1]}); got "
                         f"{channels.tolist()}")
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}] (the number of inputs); got {k}")
    field = layer_receptive_field(model, variables, layer, shape, **call_kwargs)
    chan = jnp.asarray(channels)

    @jax.jit
    def best_units(v, x):
        a = collect_outputs(model, v, x, [layer], call_kwargs)[layer][..., chan]  # [B, h, w, C']
        flat = a.reshape(a.shape[0], -1, a.shape[-1])
        return jnp.max(flat, axis=1), jnp.argmax(flat, axis=1)

    values, where = [], []
    for s in tqdm(range(0, n, batch_size), desc=f"top patches {layer}", disable=not progress):
        x = np.asarray(inputs[s:s + batch_size], np.float32)
        pad = shape[0] - len(x)
        if pad:
            x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
        v, idx = best_units(variables, x)
        values.append(np.asarray(v)[:len(x) - pad])
        where.append(np.asarray(idx)[:len(x) - pad])
    values = np.concatenate(values).T  # [C', N]
    where = np.concatenate(where).T
    order = np.argsort(-values, axis=1, kind="stable")[:, :k]  # [C', k]
    value = np.take_along_axis(values, order, 1).astype(np.float32)
    flat_pos = np.take_along_axis(where, order, 1)
    position = np.stack([flat_pos // out_shape[2], flat_pos % out_shape[2]], -1)
    display = np.asarray(display)
    crops = np.stack([np.stack([crop_field(display[order[a, b]], field, *position[a, b],
                                           fill=fill) for b in range(k)])
                      for a in range(len(channels))])
    return TopPatches(channels, order, position, value, crops, field)
