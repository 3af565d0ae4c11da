"""Up-sampling arithmetic for dense prediction: bilinear kernels, transposed-convolution sizes,
exact bilinear up-sampling by a transposed convolution, and the crop/align rule that fuses
score maps of different strides (FCN, Long et al. 2015).

Transposed convolution ("deconvolution") of an input of ``n`` pixels with kernel ``k``, stride
``s``, padding ``p`` (PyTorch convention: ``p`` pixels removed from each side of the full
output) and ``output_padding`` ``a`` gives::

    out = (n − 1)·s − 2·p + k + a

It is the adjoint (transpose) of the convolution with the same kernel, stride and padding,
which maps ``out`` pixels back to ``n``.

Bilinear up-sampling by an integer factor ``s``: kernel ``k = 2s − s mod 2`` with weights
``1 − |t − c| / f`` (``f = ⌈k / 2⌉``, ``c = f − 1`` for odd ``k`` else ``f − 0.5``; Caffe
FCN's ``upsample_filt``) and ``p = (k − s) / 2 = ⌊s / 2⌋`` give ``out = s·n``. In the
pixel-centre frame of :mod:`vai_jax.ops.coords` output pixel ``o`` then samples the input at
continuous coordinate ``(o + 0.5)/s`` — the half-pixel convention of ``jax.image.resize`` — so:

* with zero padding (a plain transposed convolution), the result equals
  ``jax.image.resize(x, ..., "bilinear")`` exactly on the interior output pixels
  ``⌊s/2⌋ ≤ o < s·n − ⌊s/2⌋`` (the others read one zero input and are darker);
* with edge replication (:func:`bilinear_upsample`, ``edge="replicate"``) it equals
  ``jax.image.resize`` on every pixel.

Alignment of stride-``s`` maps (:func:`align_to`): every network in
:mod:`vai_jax.segmentation.heads` rounds sizes up (``⌈H / s⌉`` cells, as a 3×3/2 convolution with padding 1 or a ``'SAME'``
2×2 max-pool does), and cell ``i`` of a stride-``s`` map stands for input pixels
``[s·i, s·(i + 1))``. All maps therefore share the top-left origin: after up-sampling by ``s``
a map has ``s·⌈H/s⌉ ≥ H`` pixels and the extra ones at the bottom/right are cropped (there is
no centre offset to remove, unlike Caffe FCN's 100-pixel input padding).
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from vai_jax._validation import check_array, check_int


def _check_factor(factor, name="factor"):
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise ValueError(f"{name} must be a positive int; got {factor!r}")
    return int(factor)


def transposed_conv_output_size(size: int, kernel_size: int, stride: int, padding: int = 0,
                                output_padding: int = 0, dilation: int = 1) -> int:
    """Output length of a transposed convolution: ``(n − 1)·s − 2p + d·(k − 1) + 1 + a``
    (``= (n − 1)·s − 2p + k + a`` for ``d = 1``), PyTorch's ``ConvTranspose2d`` rule.

    Raises ValueError when the result is < 1 or ``output_padding >= max(stride, dilation)``.
    """
    size = check_int(size, "size", ge=1)
    kernel_size = check_int(kernel_size, "kernel_size", ge=1)
    stride = check_int(stride, "stride", ge=1)
    padding = check_int(padding, "padding", ge=0)
    output_padding = check_int(output_padding, "output_padding")
    dilation = check_int(dilation, "dilation", ge=1)
    if output_padding < 0 or output_padding >= max(stride, dilation):
        raise ValueError(f"output_padding must be in [0, max(stride, dilation)); got "
                         f"{output_padding} with stride {stride}, dilation {dilation}")
    out = (size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + 1 + output_padding
    if out < 1:
        raise ValueError(f"transposed convolution of {size} pixels with kernel {kernel_size}, "
                         f"stride {stride}, padding {padding} would output {out} pixels")
    return out


def bilinear_kernel_size(factor: int) -> int:
    """Kernel size ``2s − s mod 2`` of the bilinear up-sampling filter for factor ``s``."""
    s = _check_factor(factor)
    return 2 * s - s % 2


def bilinear_padding(factor: int) -> int:
    """PyTorch-convention padding ``(k − s)/2 = ⌊s/2⌋`` making ``out = s·n``."""
    s = _check_factor(factor)
    return (bilinear_kernel_size(s) - s) // 2


def bilinear_kernel_1d(factor: int) -> np.ndarray:
    """1-D bilinear filter, float32 ``[2s − s mod 2]`` (Caffe FCN ``upsample_filt``).

    For ``s = 2``: ``[0.25, 0.75, 0.75, 0.25]``; for ``s = 3``: ``[1/3, 2/3, 1, 2/3, 1/3]``.
    """
    k = bilinear_kernel_size(factor)
    f = (k + 1) // 2
    c = f - 1 if k % 2 == 1 else f - 0.5
    t = np.arange(k, dtype=np.float64)
    return (1.0 - np.abs(t - c) / f).astype(np.float32)


def bilinear_kernel(factor: int) -> np.ndarray:
    """2-D bilinear filter ``[k, k]`` float32, the outer product of :func:`bilinear_kernel_1d`."""
    w = bilinear_kernel_1d(factor)
    return np.outer(w, w).astype(np.float32)


def conv_transpose(x, kernel, *, strides: int | Sequence[int] = 1,
                   padding: int | Sequence[int] = 0,
                   output_padding: int | Sequence[int] = 0, feature_group_count: int = 1):
    """Transposed 2-D convolution, the adjoint of ``lax.conv_general_dilated`` with the same
    kernel, strides and symmetric padding (PyTorch ``conv_transpose2d`` semantics).

    Args:
      x: ``[B, H, W, C_in]`` floating.
      kernel: ``[kh, kw, C_in, C_out / groups]`` (Flax ``ConvTranspose`` layout: the forward
        convolution it transposes maps ``C_out → C_in`` with kernel ``[kh, kw, C_out/g, C_in]``
        read with axes 2 and 3 swapped).
      strides, padding, output_padding: ints or ``(h, w)`` pairs, see
        :func:`transposed_conv_output_size`.
      feature_group_count: groups (``C_in`` for a per-channel up-sampler).

    Returns:
      ``[B, H', W', C_out]`` with ``H' = (H − 1)·s − 2p + kh + a``.
    """
    x = check_array(x, "x", ndim=4, kind="floating", shape_hint="[B, H, W, C_in]")
    kernel = check_array(kernel, "kernel", ndim=4, shape_hint="[kh, kw, C_in, C_out/groups]")
    def pair(v, name, ge):
        values = (v, v) if np.ndim(v) == 0 else tuple(v)
        if len(values) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints; got {v!r}")
        return tuple(check_int(u, name, ge=ge) for u in values)

    s, p, a = pair(strides, "strides", 1), pair(padding, "padding", 0), pair(
        output_padding, "output_padding", 0)
    kh, kw, cin, cout_g = kernel.shape
    g = check_int(feature_group_count, "feature_group_count", ge=1)
    if cin != x.shape[-1]:
        raise ValueError(f"kernel must have C_in = {x.shape[-1]} (x's channels) on axis 2; "
                         f"got kernel shape {tuple(kernel.shape)}")
    if cin % g:
        raise ValueError(f"feature_group_count {g} must divide C_in = {cin}")
    for n, k, si, pi, ai in zip(x.shape[1:3], (kh, kw), s, p, a):
        transposed_conv_output_size(n, k, si, pi, ai)
    # Sub-pixel (phase) decomposition, which never multiplies the zeros a stride-dilated input
    # would hold: full output o = s·q + r reads y_r[q] = Σ_m x[q − m]·w[s·m + r], a stride-1
    # correlation of x (padded M − 1 each side, M = ⌈k/s⌉) with the flipped phase kernel. All
    # s_h·s_w phases are one convolution with s_h·s_w·C_out/g outputs per group, interleaved
    # afterwards (depth-to-space); then p pixels are cropped from each side.
    (sh, sw), (ph, pw), (ah, aw) = s, p, a
    mh, mw = -(-kh // sh), -(-kw // sw)
    w = jnp.pad(kernel, ((0, mh * sh - kh), (0, mw * sw - kw), (0, 0), (0, 0)))
    w = w.reshape(mh, sh, mw, sw, g, cin // g, cout_g)[::-1, :, ::-1]
    w = jnp.transpose(w, (0, 2, 5, 4, 1, 3, 6)).reshape(mh, mw, cin // g, g * sh * sw * cout_g)
    y = lax.conv_general_dilated(
        x, w.astype(x.dtype), window_strides=(1, 1),
        padding=[(mh - 1, mh - 1), (mw - 1, mw - 1)],
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=g)
    b, qh, qw, _ = y.shape
    y = y.reshape(b, qh, qw, g, sh, sw, cout_g).transpose(0, 1, 4, 2, 5, 3, 6)
    y = y.reshape(b, qh * sh, qw * sw, g * cout_g)
    out_h = (x.shape[1] - 1) * sh - 2 * ph + kh + ah
    out_w = (x.shape[2] - 1) * sw - 2 * pw + kw + aw
    extra_h, extra_w = max(0, ph + out_h - qh * sh), max(0, pw + out_w - qw * sw)
    if extra_h or extra_w:  # output_padding beyond the full output: zeros
        y = jnp.pad(y, ((0, 0), (0, extra_h), (0, extra_w), (0, 0)))
    return y[:, ph:ph + out_h, pw:pw + out_w]


def bilinear_upsample(x, factor: int, *, edge: str = "replicate"):
    """Up-sample ``[B, H, W, C]`` by an integer factor with a per-channel bilinear transposed
    convolution (kernel :func:`bilinear_kernel`, padding :func:`bilinear_padding`).

    Args:
      x: ``[B, H, W, C]`` floating.
      factor: ``s >= 1``.
      edge: ``"replicate"`` (pad one edge pixel each side first, then crop ``s``: equal to
        ``jax.image.resize(x, (B, sH, sW, C), "bilinear")`` everywhere) or ``"zero"`` (the plain
        transposed convolution: equal to it on the interior ``⌊s/2⌋ ≤ o < s·n − ⌊s/2⌋``).

    Returns:
      ``[B, s·H, s·W, C]``, dtype of ``x``. Output pixel ``o`` samples input coordinate
      ``(o + 0.5)/s`` in the continuous pixel frame.
    """
    x = check_array(x, "x", ndim=4, kind="floating", shape_hint="[B, H, W, C]")
    s = _check_factor(factor)
    if edge not in ("replicate", "zero"):
        raise ValueError(f"edge must be 'replicate' or 'zero'; got {edge!r}")
    if s == 1:
        return x
    c = x.shape[-1]
    k = jnp.asarray(bilinear_kernel(s), x.dtype)
    kernel = jnp.broadcast_to(k[:, :, None, None], k.shape + (c, 1))
    if edge == "replicate":
        xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
        y = conv_transpose(xp, kernel, strides=s, padding=bilinear_padding(s),
                           feature_group_count=c)
        return y[:, s:-s, s:-s]
    return conv_transpose(x, kernel, strides=s, padding=bilinear_padding(s), feature_group_count=c)


def resize_bilinear(x, size: Sequence[int]):
    """Bilinear resize of ``[B, H, W, C]`` to ``size = (H', W')`` with half-pixel centres
    (``jax.image.resize``, no anti-aliasing when up-sampling): output pixel ``o`` samples the
    input at continuous coordinate ``(o + 0.5)·H / H'``. Used by DeepLab and ESPNet to go back
    to the input size for any ratio."""
    x = check_array(x, "x", ndim=4, kind="floating", shape_hint="[B, H, W, C]")
    h, w = (int(v) for v in size)
    if h < 1 or w < 1:
        raise ValueError(f"size must be two positive ints; got {tuple(size)}")
    if (h, w) == tuple(x.shape[1:3]):
        return x
    return jax.image.resize(x, (x.shape[0], h, w, x.shape[3]), method="bilinear")


def align_to(x, size: Sequence[int]):
    """Crop (or edge-pad) ``[B, H, W, C]`` at the bottom/right to ``size = (H', W')``, keeping the
    top-left origin: the FCN crop for maps that share the origin (see the module docstring).

    Up-sampled maps are at least as large as their target when every stage rounds up
    (``s·⌈n/s⌉ ≥ n``) and are then only cropped; a smaller map (a backbone that rounds down)
    is padded by replicating its last row/column.

    Returns ``[B, H', W', C]``.
    """
    x = check_array(x, "x", ndim=4, shape_hint="[B, H, W, C]")
    h, w = (int(v) for v in size)
    if h < 1 or w < 1:
        raise ValueError(f"size must be two positive ints; got {tuple(size)}")
    x = x[:, :h, :w]
    ph, pw = h - x.shape[1], w - x.shape[2]
    if ph or pw:
        x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    return x


def max_pool_with_argmax(x):
    """2×2/2 max-pool that also returns the "switches" (SegNet / deconvolution networks).

    Args:
      x: ``[B, H, W, C]`` floating. Odd sizes round up: the missing row/column is ``-inf``.

    Returns:
      ``(pooled [B, ⌈H/2⌉, ⌈W/2⌉, C], switches int32 [B, ⌈H/2⌉, ⌈W/2⌉, C])``; a switch is the
      position ``2·di + dj`` of the maximum inside its window (first one on ties).
    """
    x = check_array(x, "x", ndim=4, kind="floating", shape_hint="[B, H, W, C]")
    b, h, w, c = x.shape
    hh, ww = -(-h // 2), -(-w // 2)
    xp = jnp.pad(x, ((0, 0), (0, 2 * hh - h), (0, 2 * ww - w), (0, 0)), constant_values=-jnp.inf)
    win = xp.reshape(b, hh, 2, ww, 2, c).transpose(0, 1, 3, 5, 2, 4).reshape(b, hh, ww, c, 4)
    idx = jnp.argmax(win, axis=-1).astype(jnp.int32)
    return jnp.max(win, axis=-1), idx


def max_unpool(x, switches, size: Sequence[int]):
    """Inverse of :func:`max_pool_with_argmax`: put each value back at its switch position in
    its 2×2 window, zeros elsewhere.

    Args:
      x: ``[B, h, w, C]``; switches: int ``[B, h, w, C]`` in ``0..3``;
      size: ``(H, W)`` of the map that was pooled (``h = ⌈H/2⌉``).

    Returns:
      ``[B, H, W, C]``, dtype of ``x``.
    """
    x = check_array(x, "x", ndim=4, shape_hint="[B, h, w, C]")
    switches = check_array(switches, "switches", ndim=4, kind="integer", shape_hint="[B, h, w, C]")
    if tuple(switches.shape) != tuple(x.shape):
        raise ValueError(f"switches must have x's shape {tuple(x.shape)}; got "
                         f"{tuple(switches.shape)}")
    h, w = (int(v) for v in size)
    b, hh, ww, c = x.shape
    if (-(-h // 2), -(-w // 2)) != (hh, ww):
        raise ValueError(f"size {(h, w)} does not pool to x's {(hh, ww)} (ceil(size / 2))")
    onehot = jax.nn.one_hot(switches, 4, dtype=x.dtype) * x[..., None]
    y = onehot.reshape(b, hh, ww, c, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(b, 2 * hh, 2 * ww, c)
    return y[:, :h, :w]
