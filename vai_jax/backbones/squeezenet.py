"""SqueezeNet (Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and
<0.5MB model size", 2016) in torchvision's layouts: ``squeezenet1_0`` (the paper's Table 1) and
``squeezenet1_1`` (the v1.1 of the authors' repository: 3×3 stem with 64 channels, earlier
pools, ~2.4× fewer multiply-adds at the same accuracy).

Convs have biases and ReLU, no BatchNorm; max pools are 3×3/2 in ceil mode; the unpadded stem
conv follows torchvision. Classifier: dropout 0.5, 1×1 conv to ``num_classes``, ReLU, global
average pooling (as in the paper: no fully connected layer). Parameter counts with 1000 classes:
1,248,424 (1.0) and 1,235,496 (1.1), torchvision's.

``bypass=True`` adds the paper's "simple bypass" (§6, Fig. 2 middle): identity shortcuts around
fire3, fire5, fire7 and fire9, the fire modules whose input and output widths match (no extra
parameters).

Features: ``"stem"`` (conv1, stride 2), ``"stage1"`` (stride 4), ``"stage2"`` (stride 8),
``"stage3"`` (stride 16, the last fire module, 512 channels); strides are nominal (the unpadded
stem conv trims a few pixels: 224 → 109 → 54 → 27 → 13 for 1.0). Parameter names: ``conv1``,
``fire2`` … ``fire9`` (see :class:`~vai_jax.nn.Fire`), ``classifier``.
"""
from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from vai_jax.backbones.base import FeatureInfo, check_image_input
from vai_jax.nn.conv import ConvBNAct
from vai_jax.nn.fire import Fire
from vai_jax.nn.spp import max_pool_2d, pool_output_size

# Fire modules fire2 … fire9: (squeeze, expand1x1, expand3x3).
FIRES = ((16, 64, 64), (16, 64, 64), (32, 128, 128), (32, 128, 128),
         (48, 192, 192), (48, 192, 192), (64, 256, 256), (64, 256, 256))
_BYPASS = ("fire3", "fire5", "fire7", "fire9")



def _squeezenet_fits(side: int, stem_kernel: int, pools: int) -> bool:
    """Whether the unpadded stride-2 stem and every ceil-mode 3x3/2 pool fit a side ``side``."""
    side = (side - stem_kernel) // 2 + 1
    try:
        for _ in range(pools):
            side = pool_output_size(side, 3, 2, 0, True)
    except ValueError:
        return False
    return side >= 1


class SqueezeNet(nn.Module):
    """SqueezeNet; see the module docstring.

    Attributes:
      num_classes: classifier width; 0 for none (``logits`` is None).
      stem_features, stem_kernel: the first conv (96, 7 for 1.0; 64, 3 for 1.1), stride 2.
      pool_after: a 3×3/2 max pool follows these fire modules (1.0: fire4, fire8; 1.1: fire3,
        fire5); one always follows conv1.
      bypass: simple bypass around fire3, fire5, fire7, fire9.
      dropout_rate: before the classifier conv (0.5).
      dtype, param_dtype: compute and parameter dtypes; ``bn_axis_name`` is accepted for a
        uniform interface (there is no BatchNorm).

    ``__call__(x, *, train)``: ``x`` ``[B, H, W, C]`` floating →
    ``(logits [B, num_classes] or None, features)``.
    """

    num_classes: int = 1000
    stem_features: int = 96
    stem_kernel: int = 7
    pool_after: Sequence[str] = ("fire4", "fire8")
    bypass: bool = False
    dropout_rate: float = 0.5
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    @property
    def feature_info(self) -> tuple[FeatureInfo, ...]:
        """(name, channels, stride) of ``"stem"``, ``"stage1"`` … ``"stage3"``."""
        info = [FeatureInfo("stem", self.stem_features, 2)]
        stride = 4
        for i, (_, e1, e3) in enumerate(FIRES):
            name = f"fire{i + 2}"
            if name in self.pool_after or i == len(FIRES) - 1:
                info.append(FeatureInfo(f"stage{len(info)}", e1 + e3, stride))
                stride *= 2
        return tuple(info)

    @property
    def min_input_size(self) -> int:
        """The smallest ``H`` and ``W`` (pixels) for which every feature map is non-empty."""
        s = self.stem_kernel
        while not _squeezenet_fits(s, self.stem_kernel, 1 + len(self.pool_after)):
            s += 1
        return s

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = check_image_input(self, x, family="SqueezeNet", stem="conv1/conv/kernel",
                              min_size=self.min_input_size)
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        init = nn.initializers.kaiming_uniform()
        pool = functools.partial(max_pool_2d, window=3, strides=2, ceil_mode=True)
        features = {}
        x = x.astype(self.dtype)
        x = ConvBNAct(self.stem_features, self.stem_kernel, strides=2, padding="VALID", norm=False,
                      kernel_init=init, name="conv1", **kw)(x, train=train)
        features["stem"] = x
        x = pool(x)
        stage = 1
        for i, widths in enumerate(FIRES):
            name = f"fire{i + 2}"
            x = Fire(*widths, bypass=self.bypass and name in _BYPASS, name=name, **kw)(x, train=train)
            if name in self.pool_after or i == len(FIRES) - 1:
                features[f"stage{stage}"] = x
                stage += 1
                if name in self.pool_after:
                    x = pool(x)
        logits = None
        if self.num_classes:
            x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
            x = ConvBNAct(self.num_classes, 1, norm=False, kernel_init=nn.initializers.normal(0.01),
                          name="classifier", **kw)(x, train=train)
            logits = jnp.mean(x, axis=(1, 2))
        return logits, features


MODELS = {
    "squeezenet1_0": SqueezeNet,
    "squeezenet1_1": functools.partial(SqueezeNet, stem_features=64, stem_kernel=3,
                                       pool_after=("fire3", "fire5")),
}
