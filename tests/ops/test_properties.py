"""Property-based tests of the ops: invariants over random shapes and values (hypothesis).

Each property runs a jitted function on inputs padded to one static shape, so that an example
costs a call, not a compilation; the real (unpadded) part of each example has a random size.
Examples are derandomised and no example database is written, so a run is reproducible.
"""
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from vai_jax.ops import (
    box_iou,
    clip_boxes,
    decode_boxes,
    encode_boxes,
    generalized_box_iou,
    logsumexp,
    nms,
    roi_align,
    soft_argmax,
    softmax,
)

PAD = 8  # static number of boxes per example


def _settings(n):
    return settings(max_examples=n, deadline=None, database=None, derandomize=True)


def _f32(lo, hi):
    return st.floats(lo, hi, width=32, allow_nan=False, allow_infinity=False)


@st.composite
def _boxes(draw, *, lo=-50.0, hi=50.0, min_size=0.0, max_size=40.0, min_n=1):
    """``[n, 4]`` float32 xyxy boxes, ``n`` in ``[min_n, PAD]``; sides may be 0 when
    ``min_size`` is 0."""
    n = draw(st.integers(min_n, PAD))
    rows = draw(st.lists(st.tuples(_f32(lo, hi), _f32(lo, hi), _f32(min_size, max_size),
                                   _f32(min_size, max_size)), min_size=n, max_size=n))
    return np.array([[x, y, x + w, y + h] for x, y, w, h in rows], np.float32)


def _pad(boxes):
    out = np.zeros((PAD, 4), np.float32)
    out[: len(boxes)] = boxes
    return out


def _iou64(a, b):
    """Float64 IoU of two xyxy boxes; 0 when the union is not positive."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


_IOU = jax.jit(lambda a, b: (box_iou(a, b), generalized_box_iou(a, b)))


@_settings(40)
@given(_boxes(), _boxes())
def test_iou_symmetric_in_range_and_giou_below_iou(a, b):
    n, m = len(a), len(b)
    iou_ab, giou_ab = (np.asarray(r)[:n, :m] for r in _IOU(_pad(a), _pad(b)))
    iou_ba, giou_ba = (np.asarray(r)[:m, :n] for r in _IOU(_pad(b), _pad(a)))
    # Symmetric up to float32 rounding: the compiled union may add the areas in another order.
    np.testing.assert_allclose(iou_ab, iou_ba.T, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(giou_ab, giou_ba.T, rtol=1e-6, atol=1e-7)
    eps = 1e-6
    assert np.all((iou_ab >= 0) & (iou_ab <= 1 + eps))
    assert np.all((giou_ab >= -1 - eps) & (giou_ab <= 1 + eps))
    assert np.all(giou_ab <= iou_ab + eps)
    # A box has IoU 1 with itself when its float32 area is a normal number: XLA flushes
    # subnormal results to zero, so a box of area below float32's tiny counts as empty.
    area = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    for i in range(n):
        if area[i] >= np.finfo(np.float32).tiny:
            assert abs(float(_IOU(_pad(a[i:i + 1]), _pad(a[i:i + 1]))[0][0, 0]) - 1) <= eps


_NMS = jax.jit(lambda b, s, v, t: nms(b, s, t, max_outputs=PAD, valid=v))


@st.composite
def _nms_case(draw):
    boxes = draw(_boxes(lo=0.0, hi=30.0, max_size=30.0))
    n = len(boxes)
    # Few distinct values make ties (broken by index) common.
    scores = draw(st.lists(st.one_of(_f32(0, 1), st.sampled_from([0.25, 0.5])),
                           min_size=n, max_size=n))
    return boxes, np.array(scores, np.float32), draw(_f32(0, 1))


@_settings(60)
@given(_nms_case())
def test_nms_keeps_a_sorted_subset_and_suppresses_only_overlaps(case):
    boxes, scores, threshold = case
    n = len(boxes)
    valid = np.arange(PAD) < n
    out = np.asarray(_NMS(_pad(boxes), np.pad(scores, (0, PAD - n)), valid,
                          np.float32(threshold))).tolist()
    kept = [i for i in out if i >= 0]
    assert out == kept + [-1] * (PAD - len(kept))  # kept first, then padding
    assert len(set(kept)) == len(kept) and all(0 <= i < n for i in kept)

    def before(i, j):  # i is visited before j: higher score, ties by index
        return scores[i] > scores[j] or (scores[i] == scores[j] and i < j)

    assert all(before(i, j) for i, j in zip(kept, kept[1:]))
    tol = 1e-5  # float32 IoU against this float64 one
    for x, i in enumerate(kept):
        for j in kept[x + 1:]:
            assert _iou64(boxes[i], boxes[j]) <= threshold + tol, (i, j)
    for j in set(range(n)) - set(kept):
        assert any(before(i, j) and _iou64(boxes[i], boxes[j]) > threshold - tol
                   for i in kept), j


_CODER = jax.jit(lambda b, a, w: decode_boxes(encode_boxes(b, a, w), a, w))


@_settings(40)
@given(_boxes(min_size=1.0), _boxes(min_size=1.0), st.tuples(*[_f32(0.5, 10.0)] * 4))
def test_decode_inverts_encode(boxes, anchors, weights):
    n = min(len(boxes), len(anchors))
    anchors = _pad(anchors[:n]) + np.array([0, 0, 1, 1], np.float32) * (np.arange(PAD) >= n)[:, None]
    got = np.asarray(_CODER(_pad(boxes[:n]), anchors, jnp.asarray(weights)))[:n]
    # Sizes in [1, 40]: the ratio stays below decode's clamp (exp(clamp) = 62.5).
    np.testing.assert_allclose(got, boxes[:n], rtol=1e-5, atol=1e-3)


_CLIP = jax.jit(clip_boxes)


@_settings(40)
@given(_boxes(lo=-60.0, hi=100.0, max_size=80.0), _f32(0.5, 90.0), _f32(0.5, 90.0))
def test_clip_boxes_is_idempotent_and_inside_the_image(boxes, height, width):
    h, w = np.float32(height), np.float32(width)
    once = np.asarray(_CLIP(_pad(boxes), h, w))
    np.testing.assert_array_equal(np.asarray(_CLIP(once, h, w)), once)
    x1, y1, x2, y2 = once[: len(boxes)].T
    assert np.all((0 <= x1) & (x1 <= x2) & (x2 <= w)) and np.all((0 <= y1) & (y1 <= y2) & (y2 <= h))


@st.composite
def _block_and_axis(draw, shape=(4, 5, 6)):
    """Values of the static ``shape`` and a random top-left block of it (the example's real
    array, selected with ``where``), and a reduction axis."""
    x = draw(hnp.arrays(np.float32, shape, elements=_f32(-1e3, 1e3)))
    block = tuple(draw(st.integers(1, n)) for n in shape)
    return x, block, draw(st.integers(0, len(shape) - 1))


_LSE = jax.jit(lambda x, where, axis: (logsumexp(x, axis=axis, where=where),
                                       softmax(x, axis=axis, where=where)), static_argnums=2)


@_settings(30)
@given(_block_and_axis())
def test_logsumexp_bounds_and_softmax_sums_to_one(case):
    x, block, axis = case
    where = np.zeros(x.shape, bool)
    where[tuple(slice(0, n) for n in block)] = True
    lse, p = (np.asarray(r, np.float64) for r in _LSE(x, where, axis))
    real = x[tuple(slice(0, n) for n in block)]
    lse = lse[tuple(slice(0, n) for i, n in enumerate(block) if i != axis)]
    p = p[tuple(slice(0, n) for n in block)]
    top = np.max(real, axis=axis).astype(np.float64)
    assert np.all(lse >= top)
    assert np.all(lse <= top + np.log(block[axis]) + 1e-6 * (1 + np.abs(top)))
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=axis), 1.0, atol=1e-5)


_ROI = jax.jit(lambda f, b: roi_align(f, b, jnp.zeros((PAD,), jnp.int32), (2, 3)))


@st.composite
def _boxes_inside(draw, size=8.0):
    """PAD boxes with positive sides inside the ``size x size`` image."""
    u = np.array(draw(st.lists(st.tuples(*[_f32(0, 1)] * 2, *[_f32(1 / 32, 1)] * 2),
                               min_size=PAD, max_size=PAD)), np.float64)
    x1, y1 = u[:, 0] * (size - 0.5), u[:, 1] * (size - 0.5)
    x2, y2 = x1 + (size - x1) * u[:, 2], y1 + (size - y1) * u[:, 3]
    return np.minimum(np.stack([x1, y1, x2, y2], 1), size).astype(np.float32)


@_settings(25)
@given(_f32(-100, 100), _boxes_inside())
def test_roi_align_of_a_constant_map_is_the_constant(value, boxes):
    features = np.full((1, 8, 8, 2), value, np.float32)
    out = np.asarray(_ROI(features, boxes))
    np.testing.assert_allclose(out, value, rtol=1e-5, atol=1e-5)


_SOFT_ARGMAX = jax.jit(lambda h: soft_argmax(h))


@st.composite
def _peaked_map(draw):
    """A padded ``[PAD, PAD, 2]`` map whose top-left ``H x W`` part holds noise in [-1, 1] and
    one peak of 60 per channel; the rest is -1e4 (weight exp(-1e4) = 0)."""
    height, width = draw(st.integers(1, PAD)), draw(st.integers(1, PAD))
    hm = np.full((PAD, PAD, 2), -1e4, np.float32)
    noise = draw(hnp.arrays(np.float32, (height, width, 2), elements=_f32(-1, 1)))
    hm[:height, :width] = noise
    peaks = []
    for k in range(2):
        i, j = draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1))
        hm[i, j, k] = 60.0
        peaks.append([j + 0.5, i + 0.5])
    return hm, np.array(peaks)


@_settings(30)
@given(_peaked_map())
def test_soft_argmax_of_a_peaked_map_is_the_peak(case):
    hm, peaks = case
    np.testing.assert_allclose(np.asarray(_SOFT_ARGMAX(hm)), peaks, atol=1e-4)
