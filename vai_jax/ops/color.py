"""CIE L*a*b* colour space conversions of sRGB images (D65 white point, 2° observer).

``rgb_to_lab`` maps sRGB values in ``[0, 1]`` through the sRGB transfer function (IEC
61966-2-1), the sRGB → XYZ matrix of the D65 primaries and the CIE 1976 L*a*b* formulas;
``lab_to_rgb`` is its inverse. White ``(1, 1, 1)`` maps to ``(100, 0, 0)``, black to
``(0, 0, 0)``, pure red to about ``(53.24, 80.09, 67.20)``. L lies in ``[0, 100]``; a and b of
sRGB colours lie in about ``[-86, 98]`` and ``[-108, 95]``.

Both functions work on the last axis (``[..., 3]``), compute in float32 (float64 when given
float64) and return the input's dtype. They are defined for every real input: below the
thresholds of the piecewise curves the linear segments are used, so values outside ``[0, 1]``
(or Lab values outside the sRGB gamut) are extended smoothly instead of producing NaN, and
``lab_to_rgb`` does not clip (clip the result to ``[0, 1]`` for display). Gradients are finite
everywhere: each power is taken of an argument kept inside its own branch's domain.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vai_jax._validation import check_array

# sRGB (linear) -> XYZ for the sRGB primaries and the D65 white point.
RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                       [0.2126729, 0.7151522, 0.0721750],
                       [0.0193339, 0.1191920, 0.9503041]], np.float64)
XYZ_TO_RGB = np.linalg.inv(RGB_TO_XYZ)
# The D65 reference white (X, Y, Z) = (0.95047, 1.0, 1.08883): the image of RGB (1, 1, 1).
D65_WHITE = RGB_TO_XYZ.sum(axis=1)

_DELTA = 6.0 / 29.0           # CIE f(t): cube root above DELTA³, linear below
_SRGB_LINEAR_IN = 0.04045      # sRGB decoding: linear below (in encoded units)
_SRGB_LINEAR_OUT = 0.0031308   # sRGB encoding: linear below (in linear units)


def _check(x, name):
    """(output dtype, input as a compute-dtype array)."""
    x = check_array(x, name, kind="floating", last_dim=3, shape_hint="[..., 3]")
    dtype = jax.dtypes.canonicalize_dtype(x.dtype)  # float64 -> float32 unless x64 is on
    compute = jnp.float64 if dtype == jnp.float64 else jnp.float32
    return dtype, jnp.asarray(x, dtype).astype(compute)


def _srgb_to_linear(c):
    power = ((jnp.maximum(c, _SRGB_LINEAR_IN) + 0.055) / 1.055) ** 2.4
    return jnp.where(c > _SRGB_LINEAR_IN, power, c / 12.92)


def _linear_to_srgb(c):
    power = 1.055 * jnp.maximum(c, _SRGB_LINEAR_OUT) ** (1.0 / 2.4) - 0.055
    return jnp.where(c > _SRGB_LINEAR_OUT, power, 12.92 * c)


def _f(t):
    cube_root = jnp.cbrt(jnp.maximum(t, _DELTA ** 3))
    return jnp.where(t > _DELTA ** 3, cube_root, t / (3.0 * _DELTA ** 2) + 4.0 / 29.0)


def _f_inv(t):
    return jnp.where(t > _DELTA, t ** 3, 3.0 * _DELTA ** 2 * (t - 4.0 / 29.0))


def _matmul(m, x):
    return jnp.einsum("ij,...j->...i", jnp.asarray(m, x.dtype), x)


def rgb_to_lab(rgb):
    """sRGB → CIE L*a*b* (D65).

    Args:
      rgb: floating ``[..., 3]`` sRGB values in ``[0, 1]`` (divide uint8 images by 255 first).

    Returns:
      ``[..., 3]`` ``(L, a, b)`` in the input's dtype: L in ``[0, 100]``, a and b in Lab units.

    Raises:
      TypeError: ``rgb`` is not floating (e.g. a uint8 image).
      ValueError: the last dimension is not 3.
    """
    dtype, x = _check(rgb, "rgb")
    xyz = _matmul(RGB_TO_XYZ, _srgb_to_linear(x)) / jnp.asarray(D65_WHITE, x.dtype)
    fx, fy, fz = _f(xyz[..., 0]), _f(xyz[..., 1]), _f(xyz[..., 2])
    lab = jnp.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)
    return lab.astype(dtype)


def lab_to_rgb(lab):
    """CIE L*a*b* (D65) → sRGB, the inverse of :func:`rgb_to_lab` (not clipped).

    Args:
      lab: floating ``[..., 3]`` ``(L, a, b)``.

    Returns:
      ``[..., 3]`` sRGB values in the input's dtype; in ``[0, 1]`` for colours inside the sRGB
      gamut, outside it otherwise (clip for display).

    Raises:
      TypeError: ``lab`` is not floating. ValueError: the last dimension is not 3.
    """
    dtype, x = _check(lab, "lab")
    fy = (x[..., 0] + 16.0) / 116.0
    fx = fy + x[..., 1] / 500.0
    fz = fy - x[..., 2] / 200.0
    xyz = jnp.stack([_f_inv(fx), _f_inv(fy), _f_inv(fz)], axis=-1)
    linear = _matmul(XYZ_TO_RGB, xyz * jnp.asarray(D65_WHITE, x.dtype))
    return _linear_to_srgb(linear).astype(dtype)
