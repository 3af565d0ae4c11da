"""RoIAlign: float64 loop reference, sampling-matrix gradients, torchvision parity."""
import math
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from tests.ops.roi_inputs import B, C, H, W, boxes as _boxes, features as _features, torchvision as _torchvision, tv_inputs as _tv_inputs
from tests.ops.roi_reference import roi_align_ref, roi_align_sampling_matrix, roi_pool_ref
from vai_jax.ops import roi_align, roi_align_batched, roi_pool

MODES = [(a, s) for a in (True, False) for s in (-1, 0, 1, 2)]


@pytest.mark.parametrize("aligned,sampling", MODES)
@pytest.mark.parametrize("scale", [1.0, 0.5, 1 / 3])
def test_roi_align_matches_reference(aligned, sampling, scale):
    f = _features(1)
    boxes = _boxes(2, scale)
    idx = np.arange(len(boxes)) % B
    for output_size in ((2, 3), (1, 1)):
        got = roi_align(f, boxes, idx, output_size, spatial_scale=scale, sampling_ratio=sampling, aligned=aligned)
        ref = roi_align_ref(f, boxes, idx, output_size, scale, sampling, aligned)
        assert got.shape == (len(boxes), *output_size, C)
        np.testing.assert_allclose(np.asarray(got), ref, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("aligned", [True, False])
def test_adaptive_gather_formulation_exact_inside_map(aligned):
    """max_sampling = ceil(max(H, W) / min(oh, ow)) is exact for every box inside the map."""
    f = _features(3)
    rng = np.random.default_rng(4)
    xy1 = rng.uniform(0, [W - 1, H - 1], (20, 2))
    xy2 = xy1 + rng.uniform(0, 1, (20, 2)) * ([W, H] - xy1)
    boxes = np.concatenate([xy1, xy2], 1).astype(np.float32)
    boxes[0] = [0, 0, W, H]
    idx = np.arange(20) % B
    out = (2, 3)
    ms = math.ceil(max(H, W) / min(out))
    got = roi_align(f, boxes, idx, out, sampling_ratio=0, aligned=aligned, max_sampling=ms)
    ref = roi_align_ref(f, boxes, idx, out, 1.0, 0, aligned)
    np.testing.assert_allclose(np.asarray(got), ref, atol=2e-5, rtol=1e-4)
    dense = roi_align(f, boxes, idx, out, sampling_ratio=0, aligned=aligned)
    np.testing.assert_allclose(np.asarray(got), np.asarray(dense), atol=2e-5)


def test_known_values():
    """A box covering exactly cell centres: aligned RoIAlign of a linear ramp is the ramp at bin centres."""
    f = np.zeros((1, 5, 5, 1), np.float32)
    f[0, :, :, 0] = np.arange(5)[None, :] * 10.0 + np.arange(5)[:, None]  # 10 x + y (cell index)
    # aligned=True, box [1, 1, 4, 4] in pixels -> feature coords [0.5, 3.5] - 0.5 = [0.5, 3.5]...
    out = roi_align(f, np.array([[1.0, 1.0, 4.0, 4.0]], np.float32), np.array([0]), 3, sampling_ratio=2)
    # bin centres at 1.0, 2.0, 3.0 in cell-index units after the -0.5 shift: 10 * x + y (linear).
    centres = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(np.asarray(out)[0, :, :, 0], centres[None, :] * 10 + centres[:, None], atol=1e-5)


def test_batched_equals_flat():
    f = _features(5)
    boxes = _boxes(6).reshape(1, -1, 4)
    boxes = np.concatenate([boxes, boxes[:, ::-1] + 0.25], 0)  # [B=2, R, 4]
    idx = np.repeat(np.arange(2), boxes.shape[1])
    for sampling, ms in ((2, None), (-1, None), (0, 12)):  # compiled, the boxes as constants
        got = jax.jit(lambda f: roi_align_batched(f, boxes, (2, 2), spatial_scale=0.5,
                                                  sampling_ratio=sampling, max_sampling=ms))(f)
        flat = jax.jit(lambda f: roi_align(f, boxes.reshape(-1, 4), idx, (2, 2), spatial_scale=0.5,
                                           sampling_ratio=sampling, max_sampling=ms))(f)
        assert got.shape == (2, boxes.shape[1], 2, 2, C)
        np.testing.assert_allclose(np.asarray(got).reshape(flat.shape), np.asarray(flat), atol=1e-5)


@pytest.mark.parametrize("aligned,sampling,max_sampling", [(True, -1, None), (False, 2, None), (True, 0, 8), (False, 0, None)])
def test_feature_gradient_is_transposed_sampling_matrix(aligned, sampling, max_sampling):
    f = _features(13, (1, H, W, 1))
    box = np.array([[-0.7, 0.9, 5.1, 4.2]], np.float32)  # away from ceil() ties
    out_size = (2, 3)
    m = roi_align_sampling_matrix((H, W), box[0], out_size, 1.0, sampling, aligned)  # [6, H*W]
    fn = lambda x: roi_align(x, box, np.array([0]), out_size, sampling_ratio=sampling, aligned=aligned, max_sampling=max_sampling)
    g = np.random.default_rng(14).standard_normal((1, *out_size, 1)).astype(np.float32)
    _, vjp = jax.vjp(fn, jnp.asarray(f))
    (got,) = vjp(jnp.asarray(g))
    chex.assert_trees_all_close(np.asarray(got).reshape(-1), (m.T @ g.reshape(-1)).astype(np.float32), atol=1e-5)
    chex.assert_trees_all_close(np.asarray(fn(f)).reshape(-1), (m @ f.reshape(-1)).astype(np.float32), atol=1e-5)
    check_grads(jax.jit(fn), (jnp.asarray(f),), order=1, modes=("rev",), eps=0.5, atol=1e-3,
                rtol=1e-3)  # linear in f


@pytest.mark.parametrize("chunk", [1, 2, 3, None])
def test_gather_backward_is_transposed_sampling_matrices(chunk):
    """The custom VJP of the gather path (chunked scatter, any chunk size, K not a multiple of
    it): features cotangent = sum_k M_k^T g_k over several RoIs and two images (float64
    reference matrices), weight cotangents = plain autodiff of the gathers."""
    from vai_jax.ops.roi_align import _apply_gather, _axis_samples, _gather_sum

    f = _features(30, (2, H, W, 2))
    boxes = np.array([[-0.7, 0.9, 5.1, 4.2], [1.2, 0.3, 3.3, 5.6], [0.1, 0.2, 6.9, 5.8],
                      [4.4, 2.2, 6.1, 3.9], [-3.0, -2.0, -1.5, -1.8]], np.float32)
    idx = np.array([0, 1, 1, 0, 1], np.int32)
    out_size, sampling, aligned = (2, 3), 2, False
    g = np.random.default_rng(31).standard_normal((5, *out_size, 2)).astype(np.float32)
    want = np.zeros((2, H * W, 2))
    for k in range(5):
        m = roi_align_sampling_matrix((H, W), boxes[k], out_size, 1.0, sampling, aligned)
        want[idx[k]] += m.T @ g[k].reshape(-1, 2)
    bj = jnp.asarray(boxes)
    iy, wy = _axis_samples(bj[:, 1], bj[:, 3], 2, H, sampling, aligned, 1.0, sampling)
    ix, wx = _axis_samples(bj[:, 0], bj[:, 2], 3, W, sampling, aligned, 1.0, sampling)

    def cotangents(gather, images):  # (features, wy, wx) cotangents of g, one compiled program
        return jax.jit(lambda x, a, b, g: jax.vjp(
            lambda x, a, b: gather(x, iy, a, ix, b, images), x, a, b)[1](g))(
                jnp.asarray(f), wy, wx, jnp.asarray(g))

    gf, gwy, gwx = cotangents(lambda *a: _apply_gather(*a, chunk), jnp.asarray(idx))
    np.testing.assert_allclose(np.asarray(gf).reshape(2, H * W, 2), want, atol=1e-5)
    _, gwy_ad, gwx_ad = cotangents(_gather_sum, jnp.asarray(idx))
    np.testing.assert_allclose(np.asarray(gwy), np.asarray(gwy_ad), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(gwx), np.asarray(gwx_ad), atol=1e-5, rtol=1e-5)
    assert np.any(np.abs(np.asarray(gwy)) > 1e-2)
    # an image index outside [0, B) (possible only under jit) gets and gives no gradient
    bad = jnp.asarray(np.array([0, 7, 1, 0, -1], np.int32))
    gf_bad, gwy_bad, _ = cotangents(lambda *a: _apply_gather(*a, chunk), bad)
    want_bad = np.zeros((2, H * W, 2))
    for k in (0, 2, 3):
        want_bad[[0, 1, 1, 0, 1][k]] += roi_align_sampling_matrix((H, W), boxes[k], out_size, 1.0, sampling, aligned).T @ g[k].reshape(-1, 2)
    np.testing.assert_allclose(np.asarray(gf_bad).reshape(2, H * W, 2), want_bad, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(gwy_bad)[[1, 4]], 0)


def test_gather_path_has_no_forward_mode():
    """Documented: the gather path and roi_pool are custom VJPs, so forward-mode autodiff raises."""
    f = jnp.asarray(_features(32))
    fn = lambda x: roi_align(x, np.array([[0.5, 0.5, 4.0, 3.0]], np.float32), np.array([0]), 2, sampling_ratio=2)
    with pytest.raises(TypeError, match="custom_vjp"):
        jax.jvp(fn, (f,), (f,))
    pool = lambda x: roi_pool(x, np.array([[0.5, 0.5, 4.0, 3.0]], np.float32), np.array([0]), 2)
    with pytest.raises(TypeError, match="custom_vjp"):
        jax.jvp(pool, (f,), (f,))


@pytest.mark.parametrize("aligned,sampling", [(True, -1), (False, 2), (True, 3)])
def test_box_gradient_is_true_derivative(aligned, sampling):
    """d out / d boxes equals central differences of the float64 reference (away from kinks)."""
    f = _features(15, (1, H, W, 1)).astype(np.float64)
    box = np.array([[0.63, 0.91, 4.37, 4.77]])
    out_size = (2, 2)
    g = np.random.default_rng(16).standard_normal((1, *out_size, 1))
    fn = lambda b: jnp.sum(roi_align(jnp.asarray(f, jnp.float32), b, np.array([0]), out_size, sampling_ratio=sampling, aligned=aligned) * g)
    got = np.asarray(jax.grad(fn)(jnp.asarray(box, jnp.float32)))
    eps = 1e-3  # the reference rounds the RoI geometry to float32, as the kernel
    want = np.zeros(4)
    for i in range(4):
        bp, bm = box.copy(), box.copy()
        bp[0, i] += eps
        bm[0, i] -= eps
        want[i] = (np.sum(roi_align_ref(f, bp, [0], out_size, 1.0, sampling, aligned) * g)
                   - np.sum(roi_align_ref(f, bm, [0], out_size, 1.0, sampling, aligned) * g)) / (2 * eps)
    np.testing.assert_allclose(got[0], want, atol=2e-3, rtol=2e-3)
    assert np.any(np.abs(want) > 1e-2)
    stopped = jax.grad(lambda b: fn(jax.lax.stop_gradient(b)))(jnp.asarray(box, jnp.float32))
    np.testing.assert_array_equal(np.asarray(stopped), 0)


def test_jit_vmap():
    f = _features(17)
    boxes = _boxes(18)[:8]
    idx = np.arange(8) % B
    fn = jax.jit(lambda x, b, i: roi_align(x, b, i, 2, spatial_scale=0.5, sampling_ratio=-1))
    np.testing.assert_allclose(np.asarray(fn(f, boxes, idx)), roi_align_ref(f, boxes, idx, (2, 2), 0.5, -1, True), atol=2e-5)
    stacked = jnp.stack([jnp.asarray(f), jnp.asarray(f) * 2])
    vm = jax.vmap(lambda x: roi_align(x, boxes, idx, 2, sampling_ratio=2))(stacked)
    np.testing.assert_allclose(np.asarray(vm[1]), 2 * np.asarray(vm[0]), atol=1e-5)
    traced_scale = jax.jit(lambda s: roi_align(f, boxes, idx, 2, spatial_scale=s, sampling_ratio=2))(0.5)
    np.testing.assert_allclose(np.asarray(traced_scale), roi_align_ref(f, boxes, idx, (2, 2), 0.5, 2, True), atol=2e-5)


def test_bad_input_errors():
    f = _features(19)
    good = np.array([[0, 0, 2, 2]], np.float32)
    idx = np.array([0])
    with pytest.raises(ValueError, match="boxes must be .*x2 >= x1"):
        roi_align(f, np.array([[3, 0, 2, 2]], np.float32), idx, 2)
    with pytest.raises(ValueError, match="boxes must be finite"):
        roi_pool(f, np.array([[0, 0, np.nan, 2]], np.float32), idx, 2)
    with pytest.raises(ValueError, match="box_indices must lie in"):
        roi_align(f, good, np.array([2]), 2)
    with pytest.raises(ValueError, match=r"features must have rank 4"):
        roi_align(f[0], good, idx, 2)
    with pytest.raises(ValueError, match=r"boxes must have last dimension 4"):
        roi_align(f, good[:, :3], idx, 2)
    with pytest.raises(ValueError, match="box_indices must have shape"):
        roi_align(f, good, np.array([0, 1]), 2)
    with pytest.raises(TypeError, match="features must have a floating dtype"):
        roi_align(f.astype(np.int32), good, idx, 2)
    with pytest.raises(ValueError, match="output_size must be positive"):
        roi_align(f, good, idx, (0, 2))
    with pytest.raises(ValueError, match="spatial_scale must be finite and > 0"):
        roi_align(f, good, idx, 2, spatial_scale=0.0)
    with pytest.raises(TypeError, match="sampling_ratio must be a Python int"):
        roi_align(f, good, idx, 2, sampling_ratio=2.0)
    with pytest.raises(ValueError, match="max_sampling must be"):
        roi_align(f, good, idx, 2, max_sampling=0)


def test_unchecked_values_under_jit():
    """Inside jit: reversed boxes follow torchvision's rules, bad indices give zeros, NaN stays local."""
    f = _features(20)
    rev = np.array([[4.2, 3.1, 1.3, 0.4], [1.0, 1.0, 3.0, 3.0], [0.5, 0.5, np.nan, 2.0]], np.float32)
    idx = np.array([1, 5, 0])
    for aligned, sampling in MODES:
        out = jax.jit(lambda b, i: roi_align(f, b, i, 2, sampling_ratio=sampling, aligned=aligned))(rev, idx)
        out = np.asarray(out)
        np.testing.assert_allclose(out[0], roi_align_ref(f, rev[:1], [1], (2, 2), 1.0, sampling, aligned)[0], atol=2e-5)
        np.testing.assert_array_equal(out[1], 0)
        assert np.all(np.isnan(out[2]))
    pooled = jax.jit(lambda b, i: roi_pool(f, b, i, 2))(rev[:1], np.array([1]))
    np.testing.assert_allclose(np.asarray(pooled), roi_pool_ref(f, rev[:1], [1], (2, 2))[0], atol=1e-6)


@pytest.mark.parametrize("aligned,sampling", MODES)
def test_roi_align_torchvision_parity(aligned, sampling):
    torch, tv = _torchvision()
    f = _features(21, (2, 9, 11, 3))
    rng = np.random.default_rng(22)
    xy = rng.uniform(-40, 60, (40, 2))
    wh = np.abs(rng.normal(0, 25, (40, 2)))
    wh[:3] = 0
    wh[3:6] *= 1e-2
    wh[6:8] *= 20
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    boxes = np.concatenate([boxes, rng.integers(0, 30, (10, 4)).astype(np.float32)])
    boxes[-10:, 2:] = np.maximum(boxes[-10:, 2:], boxes[-10:, :2])
    idx = rng.integers(0, 2, len(boxes))
    tf, rois = _tv_inputs(torch, f, boxes, idx)
    for scale in (1.0, 0.5, 0.25, 1 / 3):
        for out in ((2, 2), (3, 4), (7, 7)):
            want = tv.ops.roi_align(tf, rois, out, scale, sampling, aligned).permute(0, 2, 3, 1).numpy()
            got = roi_align(f, boxes, idx, out, spatial_scale=scale, sampling_ratio=sampling, aligned=aligned)
            np.testing.assert_allclose(np.asarray(got), want, atol=1e-5, rtol=1e-5)
    # gradient with respect to features
    g = rng.standard_normal((len(boxes), 3, 3, 3)).astype(np.float32)
    tfg = tf.clone().requires_grad_(True)
    (tv.ops.roi_align(tfg, rois, (3, 3), 0.5, sampling, aligned) * torch.from_numpy(g.transpose(0, 3, 1, 2))).sum().backward()
    _, vjp = jax.vjp(lambda x: roi_align(x, boxes, idx, 3, spatial_scale=0.5, sampling_ratio=sampling, aligned=aligned), jnp.asarray(f))
    np.testing.assert_allclose(np.asarray(vjp(jnp.asarray(g))[0]), tfg.grad.numpy().transpose(0, 2, 3, 1), atol=1e-4)


@pytest.mark.parametrize("plan", ["cpu", "accelerator"])
def test_roi_align_loop_plans(plan):
    """Both loop formulations (chunks of RoIs on the CPU; one gather and one scatter-add on
    accelerators), forced on the CPU with more RoIs than a forward chunk: float64 reference
    values and the transposed sampling matrices as gradient."""
    from vai_jax.ops._roi_common import loop_plan
    from vai_jax.ops.roi_align import _FWD_CHUNK, _roi_align_impl

    f = _features(40, (2, H, W, 2))
    boxes = np.concatenate([_boxes(41)] * 4)[:_FWD_CHUNK + 5]
    idx = (np.arange(len(boxes)) % 2).astype(np.int32)
    g = np.random.default_rng(42).standard_normal((len(boxes), 2, 3, 2)).astype(np.float32)
    fn = lambda x: _roi_align_impl(x, jnp.asarray(boxes), jnp.asarray(idx), 2, 3, 1.0, 2, False,
                                   None, plan=plan)
    got, gf = jax.jit(lambda x, g: (fn(x), jax.vjp(fn, x)[1](g)[0]))(jnp.asarray(f), jnp.asarray(g))
    ref = roi_align_ref(f, boxes, idx, (2, 3), 1.0, 2, False)
    np.testing.assert_allclose(np.asarray(got), ref, atol=2e-5, rtol=1e-4)
    want = np.zeros((2, H * W, 2))
    for k in range(len(boxes)):
        m = roi_align_sampling_matrix((H, W), boxes[k], (2, 3), 1.0, 2, False)
        want[idx[k]] += m.T @ g[k].reshape(-1, 2)
    np.testing.assert_allclose(np.asarray(gf).reshape(2, H * W, 2), want, atol=1e-4)
    assert loop_plan() == ("cpu" if jax.default_backend() == "cpu" else "accelerator")
    with pytest.raises(ValueError, match="plan must be one of"):
        loop_plan("gpu")
