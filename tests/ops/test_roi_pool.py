"""RoIPool: float64 loop reference, argmax gradients and ties, torchvision parity."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.ops.roi_inputs import B, C, H, W, boxes as _boxes, features as _features, torchvision as _torchvision, tv_inputs as _tv_inputs
from tests.ops.roi_reference import roi_pool_ref
from vai_jax.ops import roi_pool


@pytest.mark.parametrize("scale", [1.0, 0.5, 1 / 3, 0.25])
def test_roi_pool_matches_reference(scale):
    f = _features(8)
    boxes = _boxes(9, scale)
    boxes = np.concatenate([boxes, np.array([[2.5, 0.5, 4.5, 5.5], [-0.5, 1.5, 3.5, 2.5]], np.float32) / scale])
    idx = np.arange(len(boxes)) % B
    for output_size in ((2, 3), (3, 3), (1, 1)):
        got = roi_pool(f, boxes, idx, output_size, spatial_scale=scale)
        ref, _ = roi_pool_ref(f, boxes, idx, output_size, scale)
        np.testing.assert_allclose(np.asarray(got), ref, atol=1e-6)


def _argmax_cotangent(arg, idx, g):
    """``[B, H*W, C]`` features cotangent: each output's ``g`` added at its argmax element
    (``arg`` from :func:`roi_pool_ref`; -1 for an empty bin, which gets nothing)."""
    want = np.zeros((B, H * W, C))
    for k, p, q, c in np.ndindex(arg.shape):
        if arg[k, p, q, c] >= 0:
            want[idx[k], arg[k, p, q, c], c] += g[k, p, q, c]
    return want


def test_roi_pool_gradient_goes_to_argmax():
    f = _features(10)
    boxes = _boxes(11)[:9]
    idx = np.arange(9) % B
    g = np.random.default_rng(12).standard_normal((9, 2, 3, C)).astype(np.float32)
    _, vjp = jax.vjp(lambda x: roi_pool(x, boxes, idx, (2, 3)), jnp.asarray(f))
    (got,) = vjp(jnp.asarray(g))
    _, arg = roi_pool_ref(f, boxes, idx, (2, 3))
    np.testing.assert_allclose(np.asarray(got).reshape(B, H * W, C), _argmax_cotangent(arg, idx, g),
                               atol=1e-5)


def _check_values_and_argmax_gradient(fn, f, boxes, idx, g):
    """``fn(f)`` (RoIPool of ``boxes`` to 2x3) equals the float64 reference, and its
    cotangent ``g`` goes to the reference's argmax elements."""
    got, vjp = jax.vjp(fn, jnp.asarray(f))
    ref, arg = roi_pool_ref(f, boxes, idx, (2, 3))
    np.testing.assert_array_equal(np.asarray(got), ref.astype(np.float32))
    np.testing.assert_allclose(np.asarray(vjp(jnp.asarray(g))[0]).reshape(B, H * W, C),
                               _argmax_cotangent(arg, idx, g), atol=1e-5)


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_roi_pool_scan_chunks_and_ties(chunk):
    """Any chunk size gives the reference values; with ties (ReLU zeros, repeated values) the
    gradient goes to the first maximal element in row-major order, as torchvision's argmax."""
    from vai_jax.ops.roi_pool import _roi_pool_impl

    f = np.maximum(np.round(_features(33) * 2) / 2, 0).astype(np.float32)  # many ties
    boxes = np.concatenate([_boxes(34)[:13], np.array([[0, 0, W, H], [1, 1, 1, 1]], np.float32)])
    idx = np.arange(len(boxes)) % B
    g = np.random.default_rng(35).standard_normal((len(boxes), 2, 3, C)).astype(np.float32)
    fn = lambda x: _roi_pool_impl(x, jnp.asarray(boxes), jnp.asarray(idx), 2, 3, 1.0, chunk)
    _check_values_and_argmax_gradient(fn, f, boxes, idx, g)
    assert np.sum(f == 0) > 10


def test_roi_pool_vmap_and_nonfinite_boxes():
    f = _features(36)
    boxes = _boxes(37)[:6]
    idx = np.arange(6) % B
    stacked = jnp.stack([jnp.asarray(f), -jnp.asarray(f)])
    vm = jax.vmap(lambda x: roi_pool(x, boxes, idx, 2))(stacked)
    np.testing.assert_array_equal(np.asarray(vm[0]), roi_pool_ref(f, boxes, idx, (2, 2))[0].astype(np.float32))
    np.testing.assert_array_equal(np.asarray(vm[1]), roi_pool_ref(-f, boxes, idx, (2, 2))[0].astype(np.float32))
    bad = np.array([[np.nan, 1, 3, np.nan], [0, np.inf, 2, 3], [-np.inf, 0, np.inf, 2]], np.float32)
    out = jax.jit(lambda b: roi_pool(f, b, np.array([0, 1, 0]), 2))(bad)
    assert np.all(np.isfinite(np.asarray(out)))  # unspecified bins, but never reads outside the map


def test_roi_pool_torchvision_parity():
    torch, tv = _torchvision()
    f = _features(23, (2, 9, 11, 3))
    rng = np.random.default_rng(24)
    xy = rng.uniform(-40, 60, (40, 2))
    boxes = np.concatenate([xy, xy + np.abs(rng.normal(0, 25, (40, 2)))], 1).astype(np.float32)
    boxes = np.concatenate([boxes, rng.integers(-4, 30, (10, 4)).astype(np.float32) / 2])
    boxes[-10:, 2:] = np.maximum(boxes[-10:, 2:], boxes[-10:, :2])
    idx = rng.integers(0, 2, len(boxes))
    tf, rois = _tv_inputs(torch, f, boxes, idx)
    for scale in (1.0, 0.5, 1 / 3):
        for out in ((2, 2), (3, 4), (5, 5)):
            want = tv.ops.roi_pool(tf, rois, out, scale).permute(0, 2, 3, 1).numpy()
            got = roi_pool(f, boxes, idx, out, spatial_scale=scale)
            np.testing.assert_array_equal(np.asarray(got), want)
    g = rng.standard_normal((len(boxes), 3, 3, 3)).astype(np.float32)
    tfg = tf.clone().requires_grad_(True)
    (tv.ops.roi_pool(tfg, rois, (3, 3), 0.5) * torch.from_numpy(g.transpose(0, 3, 1, 2))).sum().backward()
    _, vjp = jax.vjp(lambda x: roi_pool(x, boxes, idx, 3, spatial_scale=0.5), jnp.asarray(f))
    np.testing.assert_allclose(np.asarray(vjp(jnp.asarray(g))[0]), tfg.grad.numpy().transpose(0, 2, 3, 1), atol=1e-5)


def test_roi_pool_torchvision_parity_with_ties():
    """ReLU-like features with many equal values: torchvision's argmax (first maximum) exactly."""
    torch, tv = _torchvision()
    f = np.maximum(np.round(_features(26, (2, 9, 11, 3)) * 2) / 2, 0).astype(np.float32)
    rng = np.random.default_rng(27)
    xy = rng.uniform(-8, 16, (30, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0, 12, (30, 2))], 1).astype(np.float32)
    idx = rng.integers(0, 2, 30)
    tf, rois = _tv_inputs(torch, f, boxes, idx)
    g = rng.standard_normal((30, 3, 4, 3)).astype(np.float32)
    tfg = tf.clone().requires_grad_(True)
    want = tv.ops.roi_pool(tfg, rois, (3, 4), 1.0)
    (want * torch.from_numpy(g.transpose(0, 3, 1, 2))).sum().backward()
    got, vjp = jax.vjp(lambda x: roi_pool(x, boxes, idx, (3, 4)), jnp.asarray(f))
    np.testing.assert_array_equal(np.asarray(got), want.detach().permute(0, 2, 3, 1).numpy())
    np.testing.assert_allclose(np.asarray(vjp(jnp.asarray(g))[0]), tfg.grad.numpy().transpose(0, 2, 3, 1), atol=1e-5)


@pytest.mark.parametrize("plan", ["cpu", "accelerator"])
def test_roi_pool_loop_plans(plan):
    """Both loop formulations (chunks of 8 RoIs and backward scatters of 64 on the CPU; one
    chunk and one scatter-add on accelerators), forced on the CPU: float64 reference values,
    gradient at the argmax."""
    from vai_jax.ops.roi_pool import _roi_pool_impl

    f = _features(50)
    boxes = np.concatenate([_boxes(51)] * 8)[:70]
    idx = np.arange(len(boxes)) % B
    g = np.random.default_rng(52).standard_normal((len(boxes), 2, 3, C)).astype(np.float32)
    fn = lambda x: _roi_pool_impl(x, jnp.asarray(boxes), jnp.asarray(idx), 2, 3, 1.0, plan=plan)
    _check_values_and_argmax_gradient(fn, f, boxes, idx, g)
