"""sRGB ↔ CIE L*a*b* against an independent float64 NumPy reference and published values."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from vai_jax.ops import lab_to_rgb, rgb_to_lab

# ------------------------------------------------------------------ float64 reference
# Built differently from the library: the RGB -> XYZ matrix is derived from the chromaticities
# of the sRGB primaries and the D65 white (not typed in), the CIE functions use the
# epsilon/kappa form, and every pixel goes through scalar Python code.
_PRIMARIES = {"r": (0.64, 0.33), "g": (0.30, 0.60), "b": (0.15, 0.06)}
_WHITE = np.array([0.95047, 1.0, 1.08883])
_EPS = 216.0 / 24389.0
_KAPPA = 24389.0 / 27.0


def _reference_matrix():
    cols = np.array([[x / y, 1.0, (1.0 - x - y) / y] for x, y in _PRIMARIES.values()]).T
    s = np.linalg.solve(cols, _WHITE)  # scale each primary so that R = G = B = 1 is the white
    return cols * s


_M = _reference_matrix()


def _ref_rgb_to_lab(rgb):
    rgb = np.asarray(rgb, np.float64)
    out = np.empty(rgb.shape, np.float64)
    for idx in np.ndindex(rgb.shape[:-1]):
        lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb[idx]]
        xr, yr, zr = (_M @ np.array(lin)) / _WHITE
        f = [np.cbrt(t) if t > _EPS else (_KAPPA * t + 16.0) / 116.0 for t in (xr, yr, zr)]
        out[idx] = (116.0 * f[1] - 16.0, 500.0 * (f[0] - f[1]), 200.0 * (f[1] - f[2]))
    return out


def _ref_lab_to_rgb(lab):
    lab = np.asarray(lab, np.float64)
    out = np.empty(lab.shape, np.float64)
    for idx in np.ndindex(lab.shape[:-1]):
        big_l, a, b = lab[idx]
        fy = (big_l + 16.0) / 116.0
        fx, fz = fy + a / 500.0, fy - b / 200.0
        xr = fx ** 3 if fx ** 3 > _EPS else (116.0 * fx - 16.0) / _KAPPA
        yr = fy ** 3 if big_l > _KAPPA * _EPS else big_l / _KAPPA
        zr = fz ** 3 if fz ** 3 > _EPS else (116.0 * fz - 16.0) / _KAPPA
        lin = np.linalg.solve(_M, np.array([xr, yr, zr]) * _WHITE)
        out[idx] = [12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055 for c in lin]
    return out


def _random_rgb(shape, seed=0):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


# ---------------------------------------------------------------------------- values
@pytest.mark.parametrize("rgb, lab", [
    ((1.0, 1.0, 1.0), (100.0, 0.0, 0.0)),
    ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    ((1.0, 0.0, 0.0), (53.24, 80.09, 67.20)),
    ((0.0, 1.0, 0.0), (87.73, -86.18, 83.18)),
    ((0.0, 0.0, 1.0), (32.30, 79.19, -107.86)),
    ((0.5, 0.5, 0.5), (53.39, 0.0, 0.0)),
])
def test_published_values(rgb, lab):
    np.testing.assert_allclose(rgb_to_lab(np.float32(rgb)), lab, atol=0.01)
    np.testing.assert_allclose(lab_to_rgb(np.float32(lab)), rgb, atol=2e-3)  # 2-decimal Lab


def test_reference_matrix_is_the_standard_one():
    np.testing.assert_allclose(_M[0], (0.4124564, 0.3575761, 0.1804375), atol=2e-7)
    np.testing.assert_allclose(_M[1], (0.2126729, 0.7151522, 0.0721750), atol=2e-7)


def test_rgb_to_lab_matches_float64_reference():
    rgb = _random_rgb((6, 7, 3))
    rgb[0, :3] = [[0.01, 0.02, 0.03], [0.04045, 0.5, 1.0], [0.0, 0.0, 0.002]]  # linear segments
    got = np.asarray(jax.jit(rgb_to_lab)(rgb))
    assert got.dtype == np.float32 and got.shape == (6, 7, 3)
    np.testing.assert_allclose(got, _ref_rgb_to_lab(rgb), atol=2e-3)


def test_lab_to_rgb_matches_float64_reference():
    lab = np.stack(np.broadcast_arrays(*np.meshgrid(
        np.linspace(0.0, 100.0, 6), np.linspace(-40.0, 40.0, 5), np.linspace(-40.0, 40.0, 5),
        indexing="ij")), -1).astype(np.float32)
    np.testing.assert_allclose(lab_to_rgb(lab), _ref_lab_to_rgb(lab), atol=2e-5)


def test_round_trip():
    rgb = _random_rgb((2, 16, 16, 3), seed=1)
    np.testing.assert_allclose(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-5)
    lab = np.asarray(rgb_to_lab(rgb))
    np.testing.assert_allclose(rgb_to_lab(lab_to_rgb(lab)), lab, atol=2e-3)


def test_out_of_range_values_are_extended_without_nan():
    x = np.float32([[-0.2, 0.5, 1.3], [2.0, -1.0, 0.0]])
    assert np.isfinite(rgb_to_lab(x)).all()
    np.testing.assert_allclose(lab_to_rgb(rgb_to_lab(x)), x, atol=1e-4)
    assert np.isfinite(lab_to_rgb(np.float32([[50.0, 200.0, -200.0], [-5.0, 0.0, 0.0]]))).all()


def test_dtypes():
    rgb = _random_rgb((4, 3))
    assert rgb_to_lab(jnp.asarray(rgb, jnp.bfloat16)).dtype == jnp.bfloat16
    assert lab_to_rgb(jnp.asarray(rgb_to_lab(rgb), jnp.float16)).dtype == jnp.float16
    assert rgb_to_lab(rgb.tolist()).dtype == jnp.float32


# ------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("rgb", [(0.2, 0.5, 0.8), (0.9, 0.1, 0.3), (0.03, 0.5, 0.6)])
def test_gradients_match_finite_differences(rgb):
    x = jnp.float32(rgb)
    check_grads(jax.jit(rgb_to_lab), (x,), order=1, modes=("rev",), eps=1e-3, atol=0.5,
                rtol=2e-2)
    check_grads(jax.jit(lab_to_rgb), (rgb_to_lab(x),), order=1, modes=("rev",), eps=1e-2, atol=1e-3,
                rtol=2e-2)


def test_gradients_finite_at_black_and_thresholds():
    x = jnp.float32([[0.0, 0.0, 0.0], [0.04045, 0.04045, 0.04045], [-0.1, 1.0, 2.0]])
    g = jax.jacrev(rgb_to_lab)(x)
    assert np.isfinite(np.asarray(g)).all()
    lab = jnp.float32([[0.0, 0.0, 0.0], [8.0, 0.0, 0.0], [50.0, 120.0, -150.0]])
    assert np.isfinite(np.asarray(jax.jacrev(lab_to_rgb)(lab))).all()


# ---------------------------------------------------------------------------- errors
def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"rgb must have last dimension 3 \[\.\.\., 3\]"):
        rgb_to_lab(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="lab must have last dimension 3"):
        lab_to_rgb(np.zeros((4, 1), np.float32))
    with pytest.raises(TypeError, match="rgb must have a floating dtype.*uint8"):
        rgb_to_lab(np.zeros((2, 3), np.uint8))
    with pytest.raises(TypeError, match="lab must have a floating dtype"):
        lab_to_rgb(np.zeros((2, 3), np.int32))
