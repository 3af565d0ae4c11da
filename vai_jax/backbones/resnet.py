"""ResNet family: ImageNet ResNets (He et al. 2016, torchvision's v1.5 layout), CIFAR ResNets
(3×3 stem, 16/32/64 channels, option-A shortcuts), ResNeXt, Wide ResNet and SE-ResNet.

All are :class:`ResNet` with different fields; the unit ordering (``unit_order``, the five
variants of He et al. 2016b Fig. 4) and the shortcut option (``shortcut``) can be changed on any
of them, see :mod:`vai_jax.nn.residual`.

Dense prediction (DeepLab, Chen et al. 2017/2018): ``output_stride`` trades the stride of the
last stage(s) for dilation ("atrous" convolution), as torchvision's
``replace_stride_with_dilation``. A stage whose stride would take the network past
``output_stride`` gets stride 1 and multiplies the dilation by its stride instead; its first
unit's first k×k convolution keeps the previous dilation and every later one uses the new
rate (torchvision's ``previous_dilation``). For the ImageNet layouts: ``output_stride=16``
gives the last stage stride 1 and rate 2; ``8`` the last two stages stride 1 and rates 2 and
4. The parameters are those of the strided network (same names and shapes: the first unit
keeps its shortcut projection), so a classification checkpoint loads unchanged, and the
dense map sampled every ``32 / output_stride`` pixels equals the strided network's map. A
3×3 kernel at rate ``r`` spans ``2r + 1`` pixels per side with 9 weights; the dilated stages
run on 4× (16) or 16× (8) more positions, so multiply-accumulates grow, parameters do not.
``multi_grid`` multiplies the last stage's rates per unit (DeepLab v3's ``(1, 2, 4)``).

Features: ``"stem"`` (after the stem's conv-BN-ReLU, before its max-pool), ``"stage1"`` …
``"stageN"`` (output of each stage; for pre-activation orderings the last stage includes the
final BN-ReLU / ReLU), with the strides of :attr:`ResNet.feature_info`. Parameter names: ``stem/conv``, ``stem/bn``,
``stage2/block1/conv1``, ``stage2/block1/shortcut/conv``, ``final_bn`` (pre-activation only),
``fc``.
"""
from __future__ import annotations

import functools
from typing import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from vai_jax.backbones.base import FeatureInfo, batch_norm, check_image_input
from vai_jax.nn.conv import ConvBNAct
from vai_jax.nn.residual import PREACT_ORDERS, BasicUnit, BottleneckUnit


class Stage(nn.Module):
    """A sequence of units; ``blocks[j]`` is a constructor (usually a ``functools.partial``) of
    the j-th unit, named ``block{j+1}``."""

    blocks: Sequence[Callable]

    @nn.compact
    def __call__(self, x, *, train: bool):
        for j, block in enumerate(self.blocks):
            x = block(name=f"block{j + 1}")(x, train=train)
        return x


class ResNet(nn.Module):
    """Residual network.

    Attributes:
      stage_sizes: units per stage, e.g. ``(3, 4, 6, 3)``.
      block_cls: :class:`BasicUnit` or :class:`BottleneckUnit`.
      num_classes: classifier width; 0 for none (``logits`` is None).
      widths: per-stage base widths; a stage outputs ``widths[i] · block_cls.expansion``
        channels.
      stage_strides: stride of each stage's first unit (default 1, 2, 2, …).
      stem_width, stem_kernel, stem_stride, stem_pool: the stem convolution and whether a
        3×3/2 max-pool follows (ImageNet: 64, 7, 2, True; CIFAR: 16, 3, 1, False).
      groups, base_width: ResNeXt cardinality and per-group width; the bottleneck's inner
        width is ``int(widths[i] · base_width / 64) · groups`` (Wide ResNet-50-2:
        ``base_width=128``).
      se_reduction: > 0 adds squeeze-and-excitation with this reduction to every unit.
      shortcut: ``"projection"`` (option B), ``"padding"`` (option A) or ``"projection_all"``
        (option C).
      unit_order: one of :data:`vai_jax.nn.residual.UNIT_ORDERS`.
      zero_init_last: zero-init the last BN scale (or last conv) of each residual branch.
      inner_widths: ``None`` (the usual widths) or, per stage, per unit, the unit's
        ``inner_widths`` (one int for basic units, two for bottlenecks; see
        :mod:`vai_jax.nn.residual`): what channel pruning changes.
      output_stride: ``None`` (every stage strided: 32 for the ImageNet layouts, 4 for
        CIFAR) or the total stride to stop at, one of the strides reached after a stage
        (ImageNet: 4, 8, 16, 32); the later stages are dilated (module docstring).
      multi_grid: ``None`` or one multiplier per unit of the last stage: unit ``j`` uses rate
        ``dilation · multi_grid[j]`` in all its k×k convolutions (DeepLab v3).
      dtype, param_dtype, bn_axis_name: compute dtype, parameter dtype, ``pmap`` axis for
        BatchNorm statistics.

    ``__call__(x, *, train)``: ``x`` ``[B, H, W, 3]`` floating → ``(logits [B, num_classes] or
    None, features)``; ``features[name]`` is ``[B, ~H/stride, ~W/stride, channels]`` per
    :attr:`feature_info`.
    """

    stage_sizes: Sequence[int]
    block_cls: type = BottleneckUnit
    num_classes: int = 1000
    widths: Sequence[int] = (64, 128, 256, 512)
    stage_strides: Sequence[int] | None = None
    stem_width: int = 64
    stem_kernel: int = 7
    stem_stride: int = 2
    stem_pool: bool = True
    groups: int = 1
    base_width: int = 64
    se_reduction: int = 0
    shortcut: str = "projection"
    unit_order: str = "original"
    zero_init_last: bool = False
    inner_widths: Sequence[Sequence[Sequence[int]]] | None = None
    output_stride: int | None = None
    multi_grid: Sequence[int] | None = None
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    def unit_inner_widths(self) -> tuple[tuple[tuple[int, ...], ...], ...]:
        """Per stage, per unit, the unit's inner widths: ``inner_widths`` if set (validated
        against ``stage_sizes``), else the defaults (``widths[i]`` for basic units,
        ``int(widths[i] · base_width / 64) · groups`` twice for bottlenecks)."""
        if self.inner_widths is not None:
            ok = len(self.inner_widths) == len(self.stage_sizes) and all(
                len(s) == n for s, n in zip(self.inner_widths, self.stage_sizes))
            if not ok:
                raise ValueError(f"inner_widths must hold one entry per unit of each stage "
                                 f"(stage_sizes={tuple(self.stage_sizes)}); got "
                                 f"{self.inner_widths!r}")
            return tuple(tuple(tuple(u) for u in s) for s in self.inner_widths)
        out = []
        for w, n in zip(self.widths, self.stage_sizes):
            if self.block_cls.expansion == 1:
                unit = (int(w),)
            else:
                unit = (int(w * self.base_width / 64) * self.groups,) * 2
            out.append((unit,) * n)
        return tuple(out)

    def _strides(self):
        if self.stage_strides is not None:
            if len(self.stage_strides) != len(self.stage_sizes):
                raise ValueError(f"stage_strides must have {len(self.stage_sizes)} entries "
                                 f"(one per stage); got {self.stage_strides!r}")
            return tuple(self.stage_strides)
        return (1,) + (2,) * (len(self.stage_sizes) - 1)

    def stage_plan(self) -> tuple[tuple[int, int, int], ...]:
        """Per stage ``(stride, first_dilation, dilation)``: the stride of its first unit, the
        rate of that unit's first k×k convolution (the previous stage's rate) and the rate of
        the others. Every stage is ``(s, 1, 1)`` unless ``output_stride`` dilates it."""
        strides = self._strides()
        base = self.stem_stride * (2 if self.stem_pool else 1)
        reached, total = [], base
        for s in strides:
            total *= s
            reached.append(total)
        target = reached[-1] if self.output_stride is None else self.output_stride
        if target not in reached:
            raise ValueError(f"output_stride must be one of the strides reached after a stage, "
                             f"{sorted(set(reached))} for this network (or None); got "
                             f"{self.output_stride!r}")
        plan, stride, dilation = [], base, 1
        for s in strides:
            first = dilation
            if stride * s > target:
                dilation, s = dilation * s, 1
            stride *= s
            plan.append((s, first, dilation))
        return tuple(plan)

    @property
    def feature_info(self) -> tuple[FeatureInfo, ...]:
        """(name, channels, stride) of ``"stem"`` and each stage, from the fields alone (the
        strides follow ``output_stride``)."""
        if len(self.widths) != len(self.stage_sizes):
            raise ValueError(f"widths must have {len(self.stage_sizes)} entries (one per stage); "
                             f"got {self.widths!r}")
        info = [FeatureInfo("stem", self.stem_width, self.stem_stride)]
        stride = self.stem_stride * (2 if self.stem_pool else 1)
        for i, (w, (s, _, _)) in enumerate(zip(self.widths, self.stage_plan())):
            stride *= s
            info.append(FeatureInfo(f"stage{i + 1}", w * self.block_cls.expansion, stride))
        return tuple(info)

    @property
    def min_input_size(self) -> int:
        """The smallest ``H`` and ``W`` (pixels) for which every feature map is non-empty."""
        return 1  # padded convolutions and pools

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = check_image_input(self, x, family="ResNet", stem="stem/conv/kernel",
                              min_size=self.min_input_size)
        info = self.feature_info
        bottleneck = self.block_cls.expansion != 1
        if not bottleneck and (self.groups != 1 or self.base_width != 64):
            raise ValueError("groups and base_width apply to BottleneckUnit only; got "
                             f"groups={self.groups}, base_width={self.base_width} with BasicUnit")
        common = dict(unit_order=self.unit_order, shortcut=self.shortcut,
                      se_reduction=self.se_reduction, zero_init_last=self.zero_init_last,
                      dtype=self.dtype, param_dtype=self.param_dtype,
                      bn_axis_name=self.bn_axis_name)
        inner = self.unit_inner_widths()
        plan = self.stage_plan()
        last = len(self.stage_sizes) - 1
        if self.multi_grid is not None and len(self.multi_grid) != self.stage_sizes[last]:
            raise ValueError(f"multi_grid must have {self.stage_sizes[last]} entries (one per "
                             f"unit of the last stage); got {self.multi_grid!r}")
        features = {}
        x = x.astype(self.dtype)
        x = ConvBNAct(self.stem_width, self.stem_kernel, strides=self.stem_stride,
                      dtype=self.dtype, param_dtype=self.param_dtype,
                      bn_axis_name=self.bn_axis_name, name="stem")(x, train=train)
        features["stem"] = x
        if self.stem_pool:
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        for i, (n, (s, first, d), nominal) in enumerate(
                zip(self.stage_sizes, plan, self._strides())):
            out = info[i + 1].channels
            extra = dict(groups=self.groups) if bottleneck else {}
            rates = [(first if j == 0 else d, d) for j in range(n)]
            if i == last and self.multi_grid is not None:
                rates = [(d * g, d * g) for g in self.multi_grid]
            # A stride replaced by dilation keeps the strided unit's shortcut (and parameters).
            project = True if s != nominal else None
            blocks = tuple(
                functools.partial(self.block_cls, features=out, strides=s if j == 0 else 1,
                                  first_dilation=rates[j][0], dilation=rates[j][1],
                                  project=project if j == 0 else None,
                                  inner_widths=inner[i][j], **extra, **common)
                for j in range(n))
            x = Stage(blocks, name=f"stage{i + 1}")(x, train=train)
            if i == len(self.stage_sizes) - 1 and self.unit_order in PREACT_ORDERS:
                if self.unit_order == "full_preact":
                    x = batch_norm(train=train, dtype=self.dtype, param_dtype=self.param_dtype,
                                   axis_name=self.bn_axis_name)(name="final_bn")(x)
                x = nn.relu(x)
            features[f"stage{i + 1}"] = x
        logits = None
        if self.num_classes:
            pooled = jnp.mean(x, axis=(1, 2))
            logits = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype,
                              name="fc")(pooled)
        return logits, features


_IMAGENET = dict(block_cls=BottleneckUnit)
_CIFAR = dict(block_cls=BasicUnit, widths=(16, 32, 64), stem_width=16, stem_kernel=3,
              stem_stride=1, stem_pool=False, shortcut="padding")


def _cifar(depth: int):
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n + 2; got {depth}")
    n = (depth - 2) // 6
    return functools.partial(ResNet, stage_sizes=(n, n, n), **_CIFAR)


MODELS = {
    "resnet18": functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), block_cls=BasicUnit),
    "resnet34": functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block_cls=BasicUnit),
    "resnet50": functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), **_IMAGENET),
    "resnet101": functools.partial(ResNet, stage_sizes=(3, 4, 23, 3), **_IMAGENET),
    "resnet152": functools.partial(ResNet, stage_sizes=(3, 8, 36, 3), **_IMAGENET),
    "resnet200": functools.partial(ResNet, stage_sizes=(3, 24, 36, 3), **_IMAGENET),
    "resnext50_32x4d": functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), groups=32,
                                         base_width=4, **_IMAGENET),
    "resnext101_32x4d": functools.partial(ResNet, stage_sizes=(3, 4, 23, 3), groups=32,
                                          base_width=4, **_IMAGENET),
    "resnext101_32x8d": functools.partial(ResNet, stage_sizes=(3, 4, 23, 3), groups=32,
                                          base_width=8, **_IMAGENET),
    "resnext101_64x4d": functools.partial(ResNet, stage_sizes=(3, 4, 23, 3), groups=64,
                                          base_width=4, **_IMAGENET),
    "wide_resnet50_2": functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), base_width=128,
                                         **_IMAGENET),
    "wide_resnet101_2": functools.partial(ResNet, stage_sizes=(3, 4, 23, 3), base_width=128,
                                          **_IMAGENET),
    "se_resnet50": functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), se_reduction=16,
                                     **_IMAGENET),
    "se_resnet101": functools.partial(ResNet, stage_sizes=(3, 4, 23, 3), se_reduction=16,
                                      **_IMAGENET),
    "resnet20_cifar": _cifar(20),
    "resnet32_cifar": _cifar(32),
    "resnet44_cifar": _cifar(44),
    "resnet56_cifar": _cifar(56),
    "resnet110_cifar": _cifar(110),
}
