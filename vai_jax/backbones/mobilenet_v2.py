"""MobileNetV2 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR
2018) in torchvision's layout: a 3×3/2 conv-BN-ReLU6 stem (32), the 17 inverted residuals of
Table 2 (:class:`~vai_jax.nn.InvertedResidual`, ReLU6, BatchNorm eps 1e-5), a 1×1 conv-BN-ReLU6
to 1280 channels, global average pooling, dropout 0.2 and a linear classifier.
3,504,872 parameters at 1000 classes (torchvision's); 300.8M multiply-adds at 224×224.

``alpha`` (the paper's width multiplier) scales every width, rounded to a multiple of 8 by
:func:`~vai_jax.nn.make_divisible`; the last conv keeps 1280 channels for ``alpha <= 1``.

Features: ``"stem"`` (the stem conv, stride 2), ``"stage1"`` … ``"stage4"``: the last block
output at strides 4, 8, 16 (24, 32, 96 channels) and, for stride 32, the last 1×1 conv (1280).
Parameter names: ``stem``, ``block1`` … ``block17`` (``expand``, ``depthwise``, ``project``),
``last_conv`` (each conv-BN ``conv``, ``bn``), ``fc``.
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from vai_jax.backbones.base import FeatureInfo, check_image_input, pooled_classifier
from vai_jax.nn.conv import ConvBNAct
from vai_jax.nn.inverted_residual import InvertedResidual, make_divisible

# Table 2: (expansion t, output channels c, repeats n, first stride s).
MOBILENET_V2_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                        (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class MobileNetV2(nn.Module):
    """MobileNetV2; see the module docstring.

    Attributes:
      num_classes: classifier width; 0 for none (``logits`` is None).
      alpha: width multiplier.
      dropout_rate: before the classifier (0.2).
      dtype, param_dtype, bn_axis_name: compute dtype, parameter dtype, ``pmap`` BN axis.

    ``__call__(x, *, train)``: ``x`` ``[B, H, W, C]`` floating →
    ``(logits [B, num_classes] or None, features)``.
    """

    num_classes: int = 1000
    alpha: float = 1.0
    dropout_rate: float = 0.2
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    def blocks(self) -> tuple[tuple[int, int, int], ...]:
        """``(expanded channels, output channels, stride)`` of each inverted residual."""
        if not self.alpha > 0:
            raise ValueError(f"alpha must be > 0; got {self.alpha}")
        out, c_in = [], make_divisible(32 * self.alpha)
        for t, c, n, s in MOBILENET_V2_SETTING:
            c_out = make_divisible(c * self.alpha)
            for i in range(n):
                out.append((int(round(c_in * t)), c_out, s if i == 0 else 1))
                c_in = c_out
        return tuple(out)

    def _last_channels(self) -> int:
        return make_divisible(1280 * max(1.0, self.alpha))

    def _stage_ends(self) -> dict[int, int]:
        """{block index (1-based) ending a stride group: its cumulative stride}."""
        ends, stride = {}, 2
        blocks = self.blocks()
        for i, (_, _, s) in enumerate(blocks, start=1):
            stride *= s
            nxt = blocks[i][2] if i < len(blocks) else 2
            if stride >= 4 and nxt == 2:
                ends[i] = stride
        return ends

    @property
    def feature_info(self) -> tuple[FeatureInfo, ...]:
        """(name, channels, stride) of ``"stem"``, ``"stage1"`` … ``"stage4"``."""
        blocks = self.blocks()
        info = [FeatureInfo("stem", make_divisible(32 * self.alpha), 2)]
        ends = self._stage_ends()
        for k, (i, stride) in enumerate(ends.items(), start=1):
            channels = self._last_channels() if i == len(blocks) else blocks[i - 1][1]
            info.append(FeatureInfo(f"stage{k}", channels, stride))
        return tuple(info)

    @property
    def min_input_size(self) -> int:
        """The smallest ``H`` and ``W`` (pixels) for which every feature map is non-empty."""
        return 1  # padded convolutions

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = check_image_input(self, x, family="MobileNet v2", stem="stem/conv/kernel",
                              min_size=self.min_input_size)
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, bn_axis_name=self.bn_axis_name)
        blocks, ends = self.blocks(), self._stage_ends()
        features = {}
        x = x.astype(self.dtype)
        x = ConvBNAct(make_divisible(32 * self.alpha), 3, strides=2, act=nn.relu6, name="stem",
                      **kw)(x, train=train)
        features["stem"] = x
        for i, (expanded, c_out, s) in enumerate(blocks, start=1):
            x = InvertedResidual(c_out, expanded, strides=s, act=nn.relu6, name=f"block{i}",
                                 **kw)(x, train=train)
            if i == len(blocks):
                x = ConvBNAct(self._last_channels(), 1, act=nn.relu6, name="last_conv",
                              **kw)(x, train=train)
            if i in ends:
                features[f"stage{len(features)}"] = x
        return pooled_classifier(self, x, train=train), features


MODELS = {"mobilenet_v2": MobileNetV2}
