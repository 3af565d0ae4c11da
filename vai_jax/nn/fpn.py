"""Feature pyramid network (Lin et al., 2017): lateral 1x1 convs, top-down nearest up-sampling
and 3x3 output convs, all levels with the same width; torchvision's ``FeaturePyramidNetwork``
with the optional ``LastLevelMaxPool`` extra level."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vai_jax.ops.conv import conv_general_dilated


def nearest_resize(x: jax.Array, size: Sequence[int]) -> jax.Array:
    """Nearest-neighbour resize of ``[B, h, w, C]`` to ``[B, H, W, C]`` with source index
    ``floor(i * h / H)`` (PyTorch's ``interpolate(mode="nearest")``); for ``H = 2h`` this is
    a plain 2x repetition."""
    (h, w), (oh, ow) = x.shape[1:3], (int(size[0]), int(size[1]))
    rows = (jnp.arange(oh) * h) // oh
    cols = (jnp.arange(ow) * w) // ow
    return jnp.take(jnp.take(x, rows, axis=1), cols, axis=2)


class FPN(nn.Module):
    """Feature pyramid over the backbone's named maps.

    Attributes:
      in_features: names of the input maps, finest first, each level coarser than the
        previous (strides doubling, as a ResNet's stages).
      features: output channels of every level (256 in the paper).
      last_level_max_pool: add the level ``"pool"``: the coarsest output subsampled by 2
        (torchvision's ``LastLevelMaxPool``, a max pool with kernel 1 and stride 2), which
        Faster R-CNN's RPN uses as its coarsest level.

    ``__call__(inputs, *, train)``: ``inputs`` the backbone's dict of named maps
    ``[B, H_l, W_l, C_l]`` -> dict ``{name: [B, H_l, W_l, features]}`` named like the inputs
    (as torchvision names its outputs), finest first, then ``"pool"``. Each coarser map is
    up-sampled to the next finer one's size by nearest neighbour (any size, as torchvision).

    Parameters ``inner{i}`` (lateral 1x1 convs) and ``layer{i}`` (3x3 output convs), ``i`` the
    position in ``in_features``: torchvision's ``inner_blocks[i]`` and ``layer_blocks[i]``.
    """

    in_features: Sequence[str]
    features: int = 64
    last_level_max_pool: bool = False
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, inputs: Mapping[str, jax.Array], *, train: bool) -> dict[str, jax.Array]:
        del train
        names = (self.in_features,) if isinstance(self.in_features, str) else tuple(self.in_features)
        missing = [n for n in names if n not in inputs]
        if not names or missing:
            raise ValueError(f"FPN.in_features must name maps of the input dict; missing {missing} "
                             f"of {names!r}; available: {sorted(inputs)}")
        maps = [inputs[n] for n in names]
        conv = lambda k, name: nn.Conv(self.features, (k, k), padding=k // 2, dtype=self.dtype,
                                       param_dtype=self.param_dtype,
                                       conv_general_dilated=conv_general_dilated, name=name)
        laterals = [conv(1, f"inner{i}")(m) for i, m in enumerate(maps)]
        outs = [None] * len(maps)
        top = laterals[-1]
        outs[-1] = conv(3, f"layer{len(maps) - 1}")(top)
        for i in range(len(maps) - 2, -1, -1):
            top = laterals[i] + nearest_resize(top, laterals[i].shape[1:3])
            outs[i] = conv(3, f"layer{i}")(top)
        result = dict(zip(names, outs))
        if self.last_level_max_pool:
            if "pool" in result:
                raise ValueError("FPN.in_features must not contain 'pool' with last_level_max_pool")
            result["pool"] = outs[-1][:, ::2, ::2]
        return result
