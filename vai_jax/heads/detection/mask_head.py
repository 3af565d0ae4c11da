"""Mask R-CNN mask branch: a small fully convolutional network on 14x14 RoIAlign features,
a 2x2 stride-2 transposed conv to 28x28 and one binary mask logit map per class."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp


class MaskHead(nn.Module):
    """Attributes: num_classes ``C`` (output channels ``C + 1``; channel 0 unused background),
    features (conv width, 256 in the paper), num_convs (4).

    ``__call__(pooled, *, train)``: ``pooled [..., 14, 14, C_in]`` -> mask logits
    ``[..., 28, 28, C+1]`` (twice the input size). Each RoI's mask is the channel of its class.
    """

    num_classes: int
    features: int = 256
    num_convs: int = 4
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, pooled, *, train: bool):
        del train
        lead = pooled.shape[:-3]
        x = pooled.reshape((-1,) + pooled.shape[-3:])
        for i in range(self.num_convs):
            x = nn.relu(nn.Conv(self.features, (3, 3), padding=1, dtype=self.dtype,
                                param_dtype=self.param_dtype, name=f"mask_fcn{i + 1}")(x))
        x = nn.relu(nn.ConvTranspose(self.features, (2, 2), strides=(2, 2), padding="VALID",
                                     dtype=self.dtype, param_dtype=self.param_dtype,
                                     name="conv5_mask")(x))
        x = nn.Conv(self.num_classes + 1, (1, 1), dtype=self.dtype, param_dtype=self.param_dtype,
                    name="mask_logits")(x)
        return x.reshape(lead + x.shape[1:]).astype(jnp.float32)
