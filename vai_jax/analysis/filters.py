"""First-layer filters as images (Zeiler & Fergus / AlexNet Fig. 3 style)."""
from __future__ import annotations

from typing import Mapping

import numpy as np
from flax import traverse_util


def conv_kernels(params) -> dict[str, np.ndarray]:
    """Every convolution kernel in ``params``, in definition order.

    Args:
      params: a ``"params"`` collection (or a variables dict holding one).

    Returns:
      ``{layer name: kernel [kh, kw, C_in / groups, C_out]}`` for every 4-D ``kernel`` leaf
      (``"stem/conv"``, ``"stage1/block1/conv1"``, ...).
    """
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping (a params collection or a variables dict); "
                        f"got {type(params).__name__}")
    if "params" in params:
        params = params["params"]
    flat = traverse_util.flatten_dict(dict(params))
    return {"/".join(k[:-1]): np.asarray(v) for k, v in flat.items()
            if k[-1] == "kernel" and np.ndim(v) == 4}


def first_layer_kernel(params, layer: str | None = None, *, in_channels: int = 3
                       ) -> tuple[str, np.ndarray]:
    """``(name, kernel [kh, kw, C_in, C_out])`` of ``layer`` or, by default, the convolution that
    reads the image: the one with ``in_channels`` input channels (the first of them in the
    tree's order if several; dict order is not reliable after ``jit``/checkpoints, which sort
    keys, hence the channel rule). Falls back to the first convolution.

    Raises:
      ValueError: no convolution, or ``layer`` is not one (lists the convolutions).
    """
    kernels = conv_kernels(params)
    if not kernels:
        raise ValueError("params has no convolution kernels (4-D 'kernel' leaves)")
    if layer is None:
        readers = [n for n, k in kernels.items() if k.shape[2] == in_channels]
        layer = readers[0] if readers else next(iter(kernels))
    if layer not in kernels:
        raise ValueError(f"layer: no convolution named {layer!r}; convolutions are: "
                         f"{', '.join(kernels)}")
    return layer, kernels[layer]


def filter_images(kernel, *, normalise: str = "each") -> np.ndarray:
    """Filters as displayable images.

    Args:
      kernel: ``[kh, kw, C_in, C_out]``. With ``C_in == 3`` each filter is an RGB image;
        otherwise the mean over input channels is shown in grey.
      normalise: ``"each"`` scales every filter by its own max ``|w|``, ``"all"`` by the
        layer's; either way 0 maps to 0.5 (grey) and ``±max|w|`` to 0 / 1.

    Returns:
      float32 ``[C_out, kh, kw, 3]`` in ``[0, 1]``.
    """
    k = np.asarray(kernel, np.float64)
    if k.ndim != 4:
        raise ValueError(f"kernel must have shape [kh, kw, C_in, C_out]; got {k.shape}")
    if normalise not in ("each", "all"):
        raise ValueError(f"normalise must be 'each' or 'all'; got {normalise!r}")
    k = np.moveaxis(k, -1, 0)  # [C_out, kh, kw, C_in]
    if k.shape[-1] != 3:
        k = np.repeat(k.mean(-1, keepdims=True), 3, axis=-1)
    axes = (1, 2, 3) if normalise == "each" else (0, 1, 2, 3)
    scale = np.max(np.abs(k), axis=axes, keepdims=True)
    scale = np.where(scale > 0, scale, 1.0)
    return (0.5 + 0.5 * k / scale).astype(np.float32)
