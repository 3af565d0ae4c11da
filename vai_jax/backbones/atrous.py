"""Atrous (dilated) ResNet for dense prediction (DeepLab, Chen et al. 2017/2018).

A backbone of total stride 32 keeps only ``H/32 × W/32`` cells. DeepLab removes the stride of
the last stage(s) and dilates their convolutions instead ("atrous" convolution, torchvision's
``replace_stride_with_dilation``): with ``output_stride`` 16 the last stage has stride 1 and
dilation 2; with 8 the last two stages have stride 1 and dilations 2 and 4. Every weight still
sees the same input pixels as in the strided network (same receptive field, same parameters),
but the output map is 2× or 4× denser.

Receptive field: an ``n × n`` kernel with dilation (rate) ``r`` spans ``(n − 1)·r + 1`` input
pixels per side (:func:`vai_jax.nn.effective_kernel_size`) with only ``n²`` weights: a 3×3
kernel at rate 2 covers 5×5, at rate 4 9×9. Costs: the dilated stages run on 4× (16) or 16×
(8) more positions, so multiply-accumulates grow while parameters do not.

As in torchvision, the first unit's first 3×3 (the one whose stride was removed) uses the
previous dilation and every later 3×3 the new one. Then the dense map sampled every
``32 / output_stride`` pixels equals the stride-32 network's map exactly, with the same
parameters (tested).
``multi_grid`` multiplies the last stage's rates per unit (DeepLab v3's ``(1, 2, 4)``).

Sizes round up: a stage of stride 2 maps ``n`` to ``⌈n/2⌉`` (3×3 convs with padding ``d``).
Features: ``"stem"``, ``"stage1"`` … ``"stageN"`` with strides from :attr:`feature_info`.
Param names follow :mod:`vai_jax.backbones.resnet`: ``stem/conv``, ``stage2/block1/conv1/conv``,
``stage2/block1/shortcut/conv``, ``fc``.
"""
from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from vai_jax._validation import check_array
from vai_jax.backbones.base import FeatureInfo
from vai_jax.nn.conv import ConvBNAct


class AtrousUnit(nn.Module):
    """Residual unit with dilation: basic (3×3, 3×3) or bottleneck (1×1, 3×3, 1×1) branch,
    BN after every conv, ReLU after the add; projection shortcut when the shape changes.
    ``dilation`` is the rate of the (possibly strided) first 3×3, ``dilation2`` (default
    ``dilation``) that of the basic unit's second 3×3, which already runs on the output grid.
    ``project``: 1×1 projection shortcut (default: when the stride or the width changes; a
    dilated stage keeps the projection its strided original had).
    ``[B, H, W, C] → [B, ⌈H/s⌉, ⌈W/s⌉, features]``."""

    features: int
    strides: int = 1
    dilation: int = 1
    dilation2: int | None = None
    project: bool | None = None
    bottleneck: bool = False
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x, *, train: bool):
        conv = functools.partial(ConvBNAct, dtype=self.dtype, param_dtype=self.param_dtype,
                                 bn_axis_name=self.bn_axis_name)
        s, d = self.strides, self.dilation
        if self.bottleneck:
            width = self.features // 4
            y = conv(width, 1, name="conv1")(x, train=train)
            y = conv(width, 3, strides=s, dilation=d, name="conv2")(y, train=train)
            y = conv(self.features, 1, act=None, bn_scale_init=nn.initializers.zeros,
                     name="conv3")(y, train=train)
        else:
            y = conv(self.features, 3, strides=s, dilation=d, name="conv1")(x, train=train)
            d2 = d if self.dilation2 is None else self.dilation2
            y = conv(self.features, 3, dilation=d2, act=None, name="conv2")(y, train=train)
        project = self.project
        if project is None:
            project = s != 1 or x.shape[-1] != self.features
        if project:
            x = conv(self.features, 1, strides=s, act=None, name="shortcut")(x, train=train)
        return nn.relu(x + y)


class AtrousStage(nn.Module):
    """Units ``block1 … blockN`` (``len(rates)`` of them); the first has ``strides`` and reads
    its input at ``first_rate`` (the previous stage's dilation), unit ``j`` otherwise uses
    ``rates[j]``."""

    features: int
    strides: int
    rates: Sequence[int]
    first_rate: int
    project_first: bool | None = None
    bottleneck: bool = False
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x, *, train: bool):
        for j, r in enumerate(self.rates):
            x = AtrousUnit(self.features, strides=self.strides if j == 0 else 1,
                           dilation=self.first_rate if j == 0 else r, dilation2=r,
                           project=self.project_first if j == 0 else None,
                           bottleneck=self.bottleneck, dtype=self.dtype,
                           param_dtype=self.param_dtype, bn_axis_name=self.bn_axis_name,
                           name=f"block{j + 1}")(x, train=train)
        return x


class AtrousResNet(nn.Module):
    """ResNet whose last stages trade stride for dilation (see the module docstring).

    Attributes:
      stage_sizes: units per stage, e.g. ``(2, 2, 2, 2)`` (ResNet-18 layout).
      widths: output channels per stage.
      output_stride: 32 (a plain ResNet), 16 or 8 (power of two, at least the stem's stride
        times 2 when ``stem_pool``).
      bottleneck: bottleneck units (``widths`` are then the expanded widths).
      stem_width, stem_kernel, stem_stride, stem_pool: stem conv and optional 3×3/2 max-pool.
      multi_grid: per-unit rate multipliers of the last stage (length = its units) or None.
      num_classes: 0 for no classifier (``logits`` is None).

    ``__call__(x [B, H, W, 3], *, train)`` → ``(logits | None, features)``; ``features[name]``
    is ``[B, ⌈H/stride⌉, ⌈W/stride⌉, channels]`` per :attr:`feature_info`.
    """

    stage_sizes: Sequence[int] = (2, 2, 2, 2)
    widths: Sequence[int] = (64, 128, 256, 512)
    output_stride: int = 32
    bottleneck: bool = False
    stem_width: int = 64
    stem_kernel: int = 7
    stem_stride: int = 2
    stem_pool: bool = True
    multi_grid: Sequence[int] | None = None
    num_classes: int = 0
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    def stage_plan(self) -> tuple[tuple[int, int], ...]:
        """``(stride, dilation)`` of each stage (the dilation of its units after the first)."""
        n = len(self.stage_sizes)
        if len(self.widths) != n:
            raise ValueError(f"widths must have {n} entries (one per stage); got {self.widths!r}")
        stride = self.stem_stride * (2 if self.stem_pool else 1)
        full = stride * 2 ** (n - 1)
        os_ = self.output_stride
        if os_ < stride or os_ > full or os_ & (os_ - 1):
            raise ValueError(f"output_stride must be a power of two in [{stride}, {full}] for "
                             f"this stem and {n} stages; got {os_}")
        plan, dilation = [], 1
        for i in range(n):
            s = 1 if i == 0 else 2
            if s == 2 and stride * 2 > os_:
                s, dilation = 1, dilation * 2
            stride *= s
            plan.append((s, dilation))
        return tuple(plan)

    @property
    def feature_info(self) -> tuple[FeatureInfo, ...]:
        """(name, channels, stride) of ``"stem"`` and each stage."""
        info = [FeatureInfo("stem", self.stem_width, self.stem_stride)]
        stride = self.stem_stride * (2 if self.stem_pool else 1)
        for i, ((s, _), w) in enumerate(zip(self.stage_plan(), self.widths)):
            stride *= s
            info.append(FeatureInfo(f"stage{i + 1}", w, stride))
        return tuple(info)

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = check_array(x, "x", ndim=4, kind="floating", shape_hint="[B, H, W, C]")
        plan = self.stage_plan()
        last = len(self.stage_sizes) - 1
        if self.multi_grid is not None and len(self.multi_grid) != self.stage_sizes[last]:
            raise ValueError(f"multi_grid must have {self.stage_sizes[last]} entries (units of "
                             f"the last stage); got {self.multi_grid!r}")
        common = dict(dtype=self.dtype, param_dtype=self.param_dtype,
                      bn_axis_name=self.bn_axis_name)
        x = x.astype(self.dtype)
        features = {}
        x = ConvBNAct(self.stem_width, self.stem_kernel, strides=self.stem_stride, name="stem",
                      **common)(x, train=train)
        features["stem"] = x
        if self.stem_pool:
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        prev_dilation = 1
        for i, ((s, d), n, w) in enumerate(zip(plan, self.stage_sizes, self.widths)):
            rates, first = [d] * n, prev_dilation
            if i == last and self.multi_grid is not None:
                rates = [d * g for g in self.multi_grid]
                first = rates[0]
            x = AtrousStage(w, strides=s, rates=tuple(rates), first_rate=first,
                            project_first=(i > 0) or x.shape[-1] != w,
                            bottleneck=self.bottleneck,
                            name=f"stage{i + 1}", **common)(x, train=train)
            prev_dilation = d
            features[f"stage{i + 1}"] = x
        logits = None
        if self.num_classes:
            logits = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype,
                              name="fc")(jnp.mean(x, axis=(1, 2)))
        return logits, features
