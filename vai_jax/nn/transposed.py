"""Transposed convolution ("deconvolution") layer, optionally initialised to bilinear
up-sampling (FCN, Long et al. 2015).

Size arithmetic (PyTorch ``ConvTranspose2d`` convention, see :mod:`vai_jax.ops.upsample`)::

    out = (in − 1)·stride − 2·padding + kernel_size + output_padding

e.g. kernel 4, stride 2, padding 1 doubles the size; kernel ``2s − s mod 2``, stride ``s``,
padding ``⌊s/2⌋`` multiplies it by ``s`` (:func:`bilinear_upsampler`). The layer computes the
adjoint of the strided convolution with the same kernel, so ``<conv(x), y> = <x, convT(y)>``.
"""
from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vai_jax._validation import check_array, check_int
from vai_jax.ops.upsample import (bilinear_kernel, bilinear_kernel_size, bilinear_padding,
                                  conv_transpose)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else tuple(int(u) for u in v)


def bilinear_init(key, shape, dtype=jnp.float32):
    """Kernel initialiser for a ``[k, k, C_in, C_out]`` (or grouped ``[k, k, C, 1]``)
    transposed-conv kernel: bilinear filter for factor ``s`` with ``k = 2s − s mod 2`` on the
    diagonal ``kernel[:, :, c, c]`` (each channel up-sampled on its own), zero elsewhere.

    Raises ValueError for non-square kernels, a size that is not ``2s − s mod 2`` for any
    ``s``, or ``C_in != C_out`` (ungrouped).
    """
    del key
    if len(shape) != 4:
        raise ValueError(f"shape must be a kernel shape [k, k, C_in, C_out]; got {tuple(shape)}")
    kh, kw, cin, cout = shape
    if kh != kw:
        raise ValueError(f"bilinear_init needs a square kernel; got shape {tuple(shape)}")
    factor = (kh + 1) // 2
    if bilinear_kernel_size(factor) != kh:
        raise ValueError(f"kernel size {kh} is not 2s - s % 2 for any factor s")
    k = jnp.asarray(bilinear_kernel(factor), dtype)
    if cout == 1:  # grouped / depthwise
        return jnp.broadcast_to(k[:, :, None, None], shape).astype(dtype)
    if cin != cout:
        raise ValueError(f"bilinear_init needs C_in == C_out (per-channel up-sampling); "
                         f"got kernel shape {tuple(shape)}")
    return (k[:, :, None, None] * jnp.eye(cin, dtype=dtype)).astype(dtype)


class TransposedConv(nn.ConvTranspose):
    """2-D transposed convolution on NHWC input (PyTorch ``ConvTranspose2d`` semantics).

    A subclass of ``flax.linen.ConvTranspose`` only so that tools that recognise that class
    (e.g. :func:`vai_jax.analysis.summarize`'s multiply-accumulate count,
    ``in positions · kh·kw·C_in·C_out/groups``) see it; the computation is
    :func:`vai_jax.ops.upsample.conv_transpose` and only the fields below are used.

    Attributes:
      features: output channels ``C_out``.
      kernel_size, strides, padding, output_padding: ints or ``(h, w)``;
        ``out = (in − 1)·s − 2p + k + a``.
      groups: feature groups (``groups == C_in == features`` up-samples each channel alone).
      use_bias: add a bias (zero-initialised).
      trainable: ``False`` wraps the kernel in ``stop_gradient`` (FCN's fixed final
        bilinear interpolation); the parameter still exists.
      kernel_init: e.g. :func:`bilinear_init`.

    Param names: ``kernel`` ``[kh, kw, C_in, C_out / groups]``, ``bias`` ``[C_out]``.
    ``[B, H, W, C_in] → [B, H', W', C_out]``.
    """

    features: int
    kernel_size: int | Sequence[int] = 4
    strides: int | Sequence[int] = 2
    padding: int | Sequence[int] = 1
    output_padding: int | Sequence[int] = 0
    groups: int = 1
    use_bias: bool = True
    trainable: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):  # noqa: D102  (no train-dependent behaviour, like nn.Conv)
        x = check_array(x, "x", ndim=4, kind="floating", shape_hint="[B, H, W, C_in]")
        check_int(self.features, "features", ge=1)
        check_int(self.groups, "groups", ge=1)
        cin = x.shape[-1]
        if cin % self.groups or self.features % self.groups:
            raise ValueError(f"groups={self.groups} must divide C_in={cin} and "
                             f"features={self.features}")
        kh, kw = _pair(self.kernel_size)
        kernel = self.param("kernel", self.kernel_init,
                            (kh, kw, cin, self.features // self.groups), self.param_dtype)
        if not self.trainable:
            kernel = jax.lax.stop_gradient(kernel)
        y = conv_transpose(x.astype(self.dtype), kernel.astype(self.dtype), strides=self.strides,
                           padding=self.padding, output_padding=self.output_padding,
                           feature_group_count=self.groups)
        if self.use_bias:
            bias = self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
            y = y + bias.astype(self.dtype)
        return y


def bilinear_upsampler(features: int, factor: int, *, trainable: bool = True,
                       per_channel: bool = False, use_bias: bool = False, name: str | None = None,
                       dtype=jnp.float32, param_dtype=jnp.float32) -> TransposedConv:
    """A :class:`TransposedConv` that multiplies ``H, W`` by ``factor`` and starts as exact
    bilinear up-sampling (equal to ``jax.image.resize(..., "bilinear")`` on the interior output
    pixels ``⌊s/2⌋ ≤ o < s·n − ⌊s/2⌋``; the border reads zero padding).

    ``per_channel=False`` (FCN): a full ``C → C`` kernel with the bilinear filter on its diagonal,
    learnable into any mix of channels; ``per_channel=True``: depthwise (``groups = C``).
    """
    return TransposedConv(
        features, kernel_size=bilinear_kernel_size(factor), strides=factor,
        padding=bilinear_padding(factor), groups=features if per_channel else 1,
        use_bias=use_bias, trainable=trainable, kernel_init=bilinear_init, name=name,
        dtype=dtype, param_dtype=param_dtype)
