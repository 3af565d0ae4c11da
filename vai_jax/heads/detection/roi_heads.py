"""The Fast R-CNN box head: two fully connected layers on pooled RoI features, then sibling
softmax classifier (``C + 1`` classes, 0 = background) and class-specific box regressor."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp


class BoxHead(nn.Module):
    """TwoMLPHead + FastRCNNPredictor (torchvision).

    Attributes:
      num_classes: foreground classes ``C``.
      hidden: width of the two fully connected layers (1024 in the paper's ResNet setting).

    ``__call__(pooled, *, train)``: ``pooled [..., S, S, C_in]`` -> ``(cls_logits [..., C+1],
    box_deltas [..., C+1, 4])`` (deltas for box-coder weights ``(10, 10, 5, 5)``).
    """

    num_classes: int
    hidden: int = 1024
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, pooled, *, train: bool):
        del train
        lead = pooled.shape[:-3]
        x = pooled.reshape(lead + (-1,))
        dense = lambda n, name, **kw: nn.Dense(n, dtype=self.dtype, param_dtype=self.param_dtype,
                                               name=name, **kw)
        x = nn.relu(dense(self.hidden, "fc6")(x))
        x = nn.relu(dense(self.hidden, "fc7")(x))
        k = self.num_classes + 1
        cls = dense(k, "cls_score", kernel_init=nn.initializers.normal(0.01))(x)
        box = dense(4 * k, "bbox_pred", kernel_init=nn.initializers.normal(0.001))(x)
        return cls.astype(jnp.float32), box.reshape(lead + (k, 4)).astype(jnp.float32)
