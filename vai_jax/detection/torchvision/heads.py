"""torchvision's Keypoint R-CNN head (``KeypointRCNNHeads`` + ``KeypointRCNNPredictor``); the box
and mask heads are :class:`vai_jax.detection.roi_heads.BoxHead` and ``MaskHead``.

Transposed convolutions hold PyTorch's ``ConvTranspose2d`` kernel flipped in space, as
``[kh, kw, in, out]`` (``flax.linen.ConvTranspose`` without ``transpose_kernel``); the conversion
in :mod:`vai_jax.weights.detection` does the flip.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from vai_jax.ops.interpolate import interpolate


class KeypointHead(nn.Module):
    """``num_convs`` 3x3 convs of ``features`` channels with ReLU, a 4x4 stride-2 transposed conv
    (padding 1) to ``num_keypoints`` heatmaps and PyTorch's bilinear up-sampling by 2.

    ``__call__(pooled, *, train)``: ``pooled [K, 14, 14, C]`` -> heatmap logits
    ``[K, 56, 56, num_keypoints]``.
    """

    num_keypoints: int = 17
    features: int = 512
    num_convs: int = 8
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, pooled, *, train: bool):
        del train
        x = pooled
        for i in range(self.num_convs):
            x = nn.relu(nn.Conv(self.features, (3, 3), padding=1, dtype=self.dtype,
                                param_dtype=self.param_dtype, name=f"conv_fcn{i + 1}")(x))
        # PyTorch's padding p of a k-kernel transposed conv pads the dilated input by k - 1 - p.
        x = nn.ConvTranspose(self.num_keypoints, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)),
                             dtype=self.dtype, param_dtype=self.param_dtype,
                             name="kps_score_lowres")(x)
        return interpolate(x.astype(jnp.float32), None, mode="bilinear", scale_factor=2.0)
