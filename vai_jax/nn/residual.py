"""Residual units: basic (two 3×3) and bottleneck (1×1, 3×3, 1×1) branches, the shortcut options
of He et al. 2016 ("Deep Residual Learning", options A/B/C) and the five unit orderings of He et
al. 2016 ("Identity Mappings in Deep Residual Networks", Fig. 4).

Orderings (``unit_order``), written for a branch of convolutions ``conv_1 … conv_n``:

* ``"original"`` (Fig. 4a): ``conv-BN-ReLU … conv-BN``, add, ReLU.
* ``"bn_after_add"`` (4b): ``conv-BN-ReLU … conv``, add, BN, ReLU.
* ``"relu_before_add"`` (4c): ``conv-BN-ReLU … conv-BN-ReLU``, add (output ≥ 0 on the branch).
* ``"relu_preact"`` (4d): ``ReLU-conv-BN … ReLU-conv-BN``, add (no activation after the add).
* ``"full_preact"`` (4e): ``BN-ReLU-conv … BN-ReLU-conv``, add (no activation after the add).

Shortcuts (``shortcut``), used when the unit changes the spatial size or the channel count:

* ``"padding"`` (option A): take every ``stride``-th pixel, starting at pixel 0, and append
  zero channels (parameter-free; :func:`padding_shortcut`).
* ``"projection"`` (option B): 1×1 convolution with stride (+ BN, except in ``full_preact``
  where the projection reads the pre-activated input as in the paper).
* ``"projection_all"`` (option C): the projection on every unit, even when shapes agree.

Inner widths (``inner_widths``): the output channels of every branch convolution but the last
(one entry for :class:`BasicUnit`, two for :class:`BottleneckUnit`). They default to the usual
widths; channel pruning (:mod:`vai_jax.analysis.pruning`) sets them per unit, since only these
channels can be removed without changing the unit's input/output (the identity shortcut ties
the last convolution's channels to the unit's input).

Dilation (``dilation``, ``first_dilation``): the rate of the k×k convolutions, for networks
that trade stride for dilation (DeepLab's atrous ResNet, torchvision's
``replace_stride_with_dilation``). The unit's first k×k convolution uses ``first_dilation``
(default ``dilation``), every later one ``dilation``; padding is ``d·(k − 1) / 2`` so the size
is kept. ``project=True`` keeps the shortcut's projection (or option-A padding) on a unit whose
stride was replaced by dilation, so that it has the parameters of its strided original.

Parameter names: ``conv1``, ``bn1``, ``conv2``, … (in ``full_preact`` ``bn_i`` precedes
``conv_i``; in ``bn_after_add`` the last ``bn_n`` normalises the sum), ``shortcut/conv``,
``shortcut/bn``, ``se/fc1``, ``se/fc2``.
"""
from __future__ import annotations

from typing import ClassVar, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from vai_jax._validation import check_array
from vai_jax.nn.norm import batch_norm
from vai_jax.nn.conv import ConvBNAct, same_padding
from vai_jax.nn.squeeze_excite import SqueezeExcite
from vai_jax.ops.conv import conv_general_dilated

UNIT_ORDERS = ("original", "bn_after_add", "relu_before_add", "relu_preact", "full_preact")
SHORTCUTS = ("padding", "projection", "projection_all")
# Orders whose unit output is not followed by an activation: a network built from them needs a
# final (BN-)ReLU after its last unit (He et al. 2016b).
PREACT_ORDERS = ("relu_preact", "full_preact")

_KERNEL_INIT = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def padding_shortcut(x, out_channels: int, stride: int):
    """Option-A shortcut: spatial subsampling ``x[:, ::stride, ::stride]`` then zero channels
    appended after the existing ones.

    Args:
      x: ``[B, H, W, C]`` floating.
      out_channels: ``C' >= C``.
      stride: positive int.
    Returns:
      ``[B, ceil(H / stride), ceil(W / stride), C']``, same dtype; channels ``C:`` are zero. Pixel
      ``(i, j)`` of the output is input pixel ``(stride·i, stride·j)``, which is also the centre of
      a stride-``stride`` convolution with PyTorch-convention padding.
    """
    x = check_array(x, "x", ndim=4, shape_hint="[B, H, W, C]")
    if not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride must be a positive int; got {stride!r}")
    extra = out_channels - x.shape[-1]
    if extra < 0:
        raise ValueError(f"out_channels must be >= the input's {x.shape[-1]} channels; got {out_channels}")
    y = x[:, ::stride, ::stride, :]
    return jnp.pad(y, ((0, 0), (0, 0), (0, 0), (0, extra)))


class _ResidualUnit(nn.Module):
    """Shared fields and forward pass; subclasses define the branch's convolutions."""

    features: int
    strides: int = 1
    unit_order: str = "original"
    shortcut: str = "projection"
    se_reduction: int = 0
    zero_init_last: bool = False
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None
    inner_widths: Sequence[int] | None = None
    dilation: int = 1
    first_dilation: int | None = None
    project: bool | None = None

    expansion: ClassVar[int] = 1
    num_inner: ClassVar[int] = 1

    def _branch(self, in_channels: int) -> list[tuple[int, int, int, int, object, int]]:
        """(features, kernel, stride, groups, padding, dilation) of each convolution."""
        raise NotImplementedError

    def _dilations(self) -> tuple[int, int]:
        """(rate of the first k×k convolution, rate of the later ones), validated."""
        first = self.dilation if self.first_dilation is None else self.first_dilation
        for name, d in (("dilation", self.dilation), ("first_dilation", first)):
            if not isinstance(d, (int, np.integer)) or isinstance(d, bool) or d < 1:
                raise ValueError(f"{name} must be a positive int; got {d!r}")
        return int(first), int(self.dilation)

    def _inner(self, default: int) -> tuple[int, ...]:
        """The inner widths (``inner_widths`` or ``default`` for each), validated."""
        if self.inner_widths is None:
            return (default,) * self.num_inner
        widths = tuple(self.inner_widths)
        if len(widths) != self.num_inner or any(
                not isinstance(w, (int, np.integer)) or isinstance(w, bool) or w < 1 for w in widths):
            raise ValueError(f"inner_widths must be {self.num_inner} positive int(s) (the output "
                             f"channels of the branch's convolutions before the last); got "
                             f"{self.inner_widths!r}")
        return tuple(int(w) for w in widths)

    def _conv(self, i, spec, zero):
        features, kernel, stride, groups, padding, dilation = spec
        return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding=padding,
                       kernel_dilation=(dilation, dilation),
                       feature_group_count=groups, use_bias=False, dtype=self.dtype,
                       param_dtype=self.param_dtype,
                       kernel_init=nn.initializers.zeros if zero else _KERNEL_INIT,
                       conv_general_dilated=conv_general_dilated, name=f"conv{i + 1}")

    def _bn(self, i, train, zero=False):
        return batch_norm(train=train, dtype=self.dtype, param_dtype=self.param_dtype,
                          axis_name=self.bn_axis_name,
                          scale_init=nn.initializers.zeros if zero else nn.initializers.ones)(
                              name=f"bn{i + 1}")

    def _match(self, shortcut, branch):
        """Crop the shortcut to the branch's spatial size (only differs for 'VALID' branches)."""
        dh = shortcut.shape[1] - branch.shape[1]
        dw = shortcut.shape[2] - branch.shape[2]
        if dh or dw:
            shortcut = shortcut[:, :shortcut.shape[1] - dh, :shortcut.shape[2] - dw]
        return shortcut

    @nn.compact
    def __call__(self, x, *, train: bool):
        """``[B, H, W, C_in]`` → ``[B, ceil(H / strides), ceil(W / strides), features]``."""
        x = check_array(x, "x", ndim=4, kind="floating", shape_hint="[B, H, W, C]")
        if self.unit_order not in UNIT_ORDERS:
            raise ValueError(f"unit_order must be one of {UNIT_ORDERS}; got {self.unit_order!r}")
        if self.shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut must be one of {SHORTCUTS}; got {self.shortcut!r}")
        specs = self._branch(x.shape[-1])
        n = len(specs)
        order = self.unit_order
        # zero_init_last zeroes the last BN scale of the branch, or the last conv when the
        # branch ends with a conv (bn_after_add, full_preact), so each unit starts as identity.
        zero_bn = self.zero_init_last and order in ("original", "relu_before_add", "relu_preact")
        zero_conv = self.zero_init_last and not zero_bn

        h = x
        pre = x  # input of the projection shortcut
        for i, spec in enumerate(specs):
            last = i == n - 1
            if order == "full_preact":
                h = nn.relu(self._bn(i, train)(h))
                if i == 0:
                    pre = h
                h = self._conv(i, spec, zero_conv and last)(h)
            elif order == "relu_preact":
                h = nn.relu(h)
                h = self._conv(i, spec, False)(h)
                h = self._bn(i, train, zero_bn and last)(h)
            else:
                h = self._conv(i, spec, zero_conv and last)(h)
                if order == "bn_after_add" and last:
                    break
                h = self._bn(i, train, zero_bn and last)(h)
                if not last or order == "relu_before_add":
                    h = nn.relu(h)
        if self.se_reduction:
            h = SqueezeExcite(max(1, self.features // self.se_reduction), dtype=self.dtype,
                              param_dtype=self.param_dtype, name="se")(h)

        needs_change = self.strides != 1 or x.shape[-1] != self.features
        if self.project is not None:
            needs_change = bool(self.project)
        if self.shortcut == "projection_all" or (needs_change and self.shortcut == "projection"):
            s = ConvBNAct(self.features, 1, strides=self.strides, act=None,
                          norm=order != "full_preact", dtype=self.dtype,
                          param_dtype=self.param_dtype, bn_axis_name=self.bn_axis_name,
                          name="shortcut")(pre if order == "full_preact" else x, train=train)
        elif needs_change:
            s = padding_shortcut(x, self.features, self.strides)
        else:
            s = x
        y = h + self._match(s, h)
        if order == "original":
            y = nn.relu(y)
        elif order == "bn_after_add":
            y = nn.relu(self._bn(n - 1, train)(y))
        return y


class BasicUnit(_ResidualUnit):
    """Two 3×3 convolutions (ResNet-18/34 and the CIFAR ResNets); the first has the stride.

    Input ``[B, H, W, C_in]`` → ``[B, ceil(H/strides), ceil(W/strides), features]``.
    See the module docstring for ``unit_order``, ``shortcut``, ``dilation`` (the first 3×3
    uses ``first_dilation``, the second ``dilation``); ``se_reduction`` > 0 adds a
    squeeze-and-excitation on the branch (hidden = features // se_reduction);
    ``inner_widths=(w,)`` sets the first convolution's output channels (default ``features``).
    """

    expansion: ClassVar[int] = 1

    def _branch(self, in_channels):
        d1, d2 = self._dilations()
        (inner,) = self._inner(self.features)
        return [(inner, 3, self.strides, 1, same_padding(3, d1), d1),
                (self.features, 3, 1, 1, same_padding(3, d2), d2)]


class BottleneckUnit(_ResidualUnit):
    """1×1 (reduce to ``width``) → k×k (stride, ``groups``) → 1×1 (expand to ``features``):
    torchvision's ResNet v1.5 bottleneck (the stride is on the k×k convolution).

    Extra attributes:
      width: inner width (default ``features // 4``); ResNeXt uses ``groups · base_width``.
      inner_widths: ``(w1, w2)`` overrides the outputs of the 1×1 and the k×k convolutions
        separately (both ``width`` by default; multiples of ``groups``).
      groups: groups of the k×k convolution (ResNeXt cardinality).
      kernel_size: of the middle convolution (BagNet uses 1 in its later units).
      valid: unpadded middle convolution (BagNet); the shortcut is then cropped at the
        bottom/right to the branch's size, as in the BagNet reference code.
      first_dilation: the rate of the k×k convolution (the only one; default ``dilation``), as
        torchvision's ``Bottleneck(dilation=…)``.
    """

    width: int | None = None
    groups: int = 1
    kernel_size: int = 3
    valid: bool = False

    expansion: ClassVar[int] = 4
    num_inner: ClassVar[int] = 2

    def _branch(self, in_channels):
        w1, w2 = self._inner(self.features // 4 if self.width is None else self.width)
        if w1 % self.groups or w2 % self.groups:
            raise ValueError(f"inner widths must be multiples of groups={self.groups}; got "
                             f"({w1}, {w2})")
        k = self.kernel_size
        d, _ = self._dilations()
        pad = ((0, 0), (0, 0)) if self.valid else same_padding(k, d)
        return [(w1, 1, 1, 1, ((0, 0), (0, 0)), 1),
                (w2, k, self.strides, self.groups, pad, d),
                (self.features, 1, 1, 1, ((0, 0), (0, 0)), 1)]
