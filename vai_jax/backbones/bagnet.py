"""BagNets (Brendel & Bethge, "Approximating CNNs with Bag-of-local-Features models works
surprisingly well on ImageNet", ICLR 2019): a ResNet-50 whose 3×3 convolutions are unpadded and,
beyond the first ``num_3x3[i]`` units of each stage, replaced by 1×1, so every output position
sees only a ``receptive_field``-pixel square patch (9, 17 or 33 px). The classifier is applied
to each position (per-patch class evidence) and the logits are the spatial mean of the evidence.

Layout as the authors' reference code (``bagnets/pytorch.py``): stem = 1×1 conv (3→64, no BN)
then an unpadded 3×3 conv-BN-ReLU; bottleneck units with stage strides (2, 2, 2, 1); projection
shortcuts (1×1 conv + BN) when shapes change, cropped at the bottom/right to the branch's
unpadded size (as the reference does). Parameter counts at 1000 classes: bagnet9 15,688,744;
bagnet17 16,213,032; bagnet33 18,310,184 (the closed form in the tests; pytorchcv's BagNet port
asserts the same three numbers).

Features: ``"stem"``, ``"stage1"`` … ``"stage4"`` (strides 1, 2, 4, 8, 8; spatial sizes shrink by
the unpadded convolutions, e.g. 224 → 222, 110, 54, 26, 24 for bagnet33) and, when
``num_classes > 0``, ``"evidence"`` ``[B, h, w, num_classes]``: the classifier applied at each
position of ``stage4``; ``logits = mean_{h, w} evidence``.
"""
from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from vai_jax.backbones.base import FeatureInfo, check_image_input
from vai_jax.backbones.resnet import Stage
from vai_jax.nn.conv import ConvBNAct
from vai_jax.nn.residual import BottleneckUnit

_VALID = ((0, 0), (0, 0))


class BagNet(nn.Module):
    """BagNet.

    Attributes:
      num_3x3: per stage, how many leading units keep a 3×3 (unpadded) middle convolution; the
        others use 1×1. ``(1, 1, 1, 1)`` → 33 px, ``(1, 1, 1, 0)`` → 17 px, ``(1, 1, 0, 0)`` → 9 px.
      stage_sizes: units per stage (3, 4, 6, 3).
      widths: per-stage bottleneck widths; stages output ``4 · widths[i]`` channels.
      stage_strides: (2, 2, 2, 1).
      stem_width: 64.
      num_classes: classifier width, 0 for none (no ``"evidence"`` either).
    ``__call__(x [B, H, W, 3], *, train)`` → ``(logits [B, num_classes] | None, features)``.
    """

    num_3x3: Sequence[int] = (1, 1, 1, 1)
    stage_sizes: Sequence[int] = (3, 4, 6, 3)
    widths: Sequence[int] = (64, 128, 256, 512)
    stage_strides: Sequence[int] = (2, 2, 2, 1)
    stem_width: int = 64
    num_classes: int = 1000
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    def _check(self):
        n = len(self.stage_sizes)
        for field in ("num_3x3", "widths", "stage_strides"):
            if len(getattr(self, field)) != n:
                raise ValueError(f"{field} must have {n} entries (one per stage); "
                                 f"got {getattr(self, field)!r}")

    def _kernels(self, i):
        return tuple(3 if j < self.num_3x3[i] else 1 for j in range(self.stage_sizes[i]))

    @property
    def feature_info(self) -> tuple[FeatureInfo, ...]:
        """(name, channels, stride) of the stem and each stage, from the fields alone."""
        self._check()
        info, stride = [FeatureInfo("stem", self.stem_width, 1)], 1
        for i, (w, s) in enumerate(zip(self.widths, self.stage_strides)):
            stride *= s
            info.append(FeatureInfo(f"stage{i + 1}", 4 * w, stride))
        return tuple(info)

    @property
    def receptive_field(self) -> int:
        """Side in input pixels of the square patch one output position depends on."""
        self._check()
        rf, jump = 3, 1  # the stem's 3x3
        for i, s in enumerate(self.stage_strides):
            for j, k in enumerate(self._kernels(i)):
                rf += (k - 1) * jump
                if j == 0:
                    jump *= s
        return rf

    @property
    def min_input_size(self) -> int:
        """The smallest ``H`` and ``W`` (pixels) for which every feature map is non-empty: the
        receptive field."""
        return self.receptive_field  # unpadded convolutions

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = check_image_input(self, x, family=f"BagNet-{self.receptive_field}",
                              stem="stem_conv1/kernel", min_size=self.min_input_size)
        info = self.feature_info
        common = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        x = nn.Conv(self.stem_width, (1, 1), use_bias=False, **common, name="stem_conv1")(
            x.astype(self.dtype))
        x = ConvBNAct(self.stem_width, 3, padding=_VALID, bn_axis_name=self.bn_axis_name,
                      **common, name="stem")(x, train=train)
        features = {"stem": x}
        for i, s in enumerate(self.stage_strides):
            blocks = tuple(
                functools.partial(BottleneckUnit, features=info[i + 1].channels,
                                  width=self.widths[i], strides=s if j == 0 else 1,
                                  kernel_size=k, valid=True, shortcut="projection",
                                  bn_axis_name=self.bn_axis_name, **common)
                for j, k in enumerate(self._kernels(i)))
            x = Stage(blocks, name=f"stage{i + 1}")(x, train=train)
            features[f"stage{i + 1}"] = x
        if not self.num_classes:
            return None, features
        evidence = nn.Dense(self.num_classes, **common, name="fc")(x)
        features["evidence"] = evidence
        return jnp.mean(evidence, axis=(1, 2)), features


MODELS = {
    "bagnet9": functools.partial(BagNet, num_3x3=(1, 1, 0, 0)),
    "bagnet17": functools.partial(BagNet, num_3x3=(1, 1, 1, 0)),
    "bagnet33": functools.partial(BagNet, num_3x3=(1, 1, 1, 1)),
}
