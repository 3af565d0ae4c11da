"""Box arithmetic: hand-computed values, float64 loop reference, round trips, torchvision parity."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from vai_jax.ops import (
    box_area,
    box_cxcywh_to_xyxy,
    box_iou,
    box_xywh_to_xyxy,
    box_xyxy_to_cxcywh,
    box_xyxy_to_xywh,
    clip_boxes,
    decode_boxes,
    encode_boxes,
    generalized_box_iou,
    paired_box_iou,
    paired_generalized_box_iou,
    valid_box_mask,
)


def _torchvision():
    try:
        import torch
        import torchvision

        torchvision.ops.box_iou  # noqa: B018
    except Exception as e:
        pytest.skip(f"torchvision unavailable: {type(e).__name__}: {e}")
    return torch, torchvision


def _random_boxes(seed, n):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-10, 50, (n, 2))
    return np.concatenate([xy, xy + rng.uniform(0.5, 30, (n, 2))], 1).astype(np.float32)


def _iou_loop(a, b):
    out = np.zeros((len(a), len(b)))
    for i, (ax1, ay1, ax2, ay2) in enumerate(np.asarray(a, np.float64)):
        for j, (bx1, by1, bx2, by2) in enumerate(np.asarray(b, np.float64)):
            iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
            ih = max(0.0, min(ay2, by2) - max(ay1, by1))
            inter = iw * ih
            union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
            hull = (max(ax2, bx2) - min(ax1, bx1)) * (max(ay2, by2) - min(ay1, by1))
            out[i, j] = inter / union - (hull - union) / hull
    return out


def test_hand_values():
    a = np.array([[0, 0, 2, 2]], np.float32)
    b = np.array([[1, 1, 3, 3], [5, 5, 6, 6], [0, 0, 2, 2]], np.float32)
    np.testing.assert_allclose(np.asarray(box_iou(a, b)), [[1 / 7, 0, 1]], rtol=1e-6)
    # hull of [0,0,2,2] and [1,1,3,3] is 9, union 7 -> 1/7 - 2/9; with [5,5,6,6]: 0 - (36 - 5) / 36.
    np.testing.assert_allclose(np.asarray(generalized_box_iou(a, b)), [[1 / 7 - 2 / 9, -31 / 36, 1]], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(box_area(b)), [4, 1, 4])


def test_iou_giou_match_loop_reference():
    a, b = _random_boxes(0, 7), _random_boxes(1, 5)
    iou = np.asarray(box_iou(a, b))
    giou = np.asarray(generalized_box_iou(a, b))
    np.testing.assert_allclose(giou, _iou_loop(a, b), atol=1e-6)
    assert np.all((iou >= 0) & (iou <= 1)) and np.all(giou <= iou + 1e-7)
    np.testing.assert_allclose(np.asarray(paired_box_iou(a[:5], b)), np.diag(iou[:5]), atol=1e-7)
    np.testing.assert_allclose(np.asarray(paired_generalized_box_iou(a[:5], b)), np.diag(giou[:5]), atol=1e-7)


def test_empty_boxes_give_zero_not_nan_and_finite_grads():
    z = np.array([[1, 1, 1, 1]], np.float32)
    assert float(box_iou(z, z)[0, 0]) == 0.0
    g = jax.jit(jax.grad(lambda x: jnp.sum(paired_generalized_box_iou(x, x))))(jnp.asarray(z))
    assert np.all(np.isfinite(np.asarray(g)))
    a, b = _random_boxes(2, 4), _random_boxes(3, 4)
    fn = jax.jit(lambda x: paired_generalized_box_iou(x, b))
    check_grads(fn, (jnp.asarray(a),), order=1, modes=("rev",), eps=1e-2, atol=2e-2, rtol=2e-2)


def test_conversions_round_trip_and_values():
    b = np.array([[1, 2, 5, 10]], np.float32)
    np.testing.assert_allclose(np.asarray(box_xyxy_to_cxcywh(b)), [[3, 6, 4, 8]])
    np.testing.assert_allclose(np.asarray(box_xyxy_to_xywh(b)), [[1, 2, 4, 8]])
    r = _random_boxes(4, 10).reshape(2, 5, 4)
    np.testing.assert_allclose(np.asarray(box_cxcywh_to_xyxy(box_xyxy_to_cxcywh(r))), r, atol=1e-5)
    np.testing.assert_allclose(np.asarray(box_xywh_to_xyxy(box_xyxy_to_xywh(r))), r, atol=1e-5)


def test_clip_and_valid_mask():
    b = np.array([[-5, 3, 20, 40], [2, 2, 3, 3], [4, 4, 4, 9], [1, np.nan, 2, 3], [5, 5, 2, 7]], np.float32)
    np.testing.assert_allclose(np.asarray(clip_boxes(b[:2], 30, 10)), [[0, 3, 10, 30], [2, 2, 3, 3]])
    np.testing.assert_array_equal(np.asarray(valid_box_mask(b)), [True, True, False, False, False])
    np.testing.assert_array_equal(np.asarray(valid_box_mask(b[:2], min_size=2.0)), [True, False])
    per_image = clip_boxes(np.stack([b[:2], b[:2]]), np.array([[30], [2]]), np.array([[10], [2]]))
    np.testing.assert_allclose(np.asarray(per_image)[1, 0], [0, 2, 2, 2])


def test_encode_decode():
    anchors = _random_boxes(5, 20)
    boxes = _random_boxes(6, 20)
    for weights in ((1, 1, 1, 1), (10, 10, 5, 5)):
        d = encode_boxes(boxes, anchors, weights)
        np.testing.assert_allclose(np.asarray(decode_boxes(d, anchors, weights)), boxes, atol=1e-3)
    # hand value: anchor [0,0,10,10] -> box [5,0,25,10]: dx = (15 - 5) / 10 = 1, dw = log 2.
    d = encode_boxes(np.array([[5, 0, 25, 10.0]], np.float32), np.array([[0, 0, 10, 10.0]], np.float32))
    np.testing.assert_allclose(np.asarray(d), [[1, 0, math.log(2), 0]], atol=1e-6)
    # the clamp: a huge dw grows the box by at most 1000 / 16
    big = decode_boxes(np.array([[0, 0, 50.0, 0]], np.float32), np.array([[0, 0, 16, 16.0]], np.float32))
    np.testing.assert_allclose(float(big[0, 2] - big[0, 0]), 1000.0, rtol=1e-5)


def test_bad_input():
    with pytest.raises(ValueError, match=r"boxes1 must have rank 2"):
        box_iou(np.zeros((4,), np.float32), np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match="boxes must have last dimension 4"):
        box_area(np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="floating dtype"):
        box_area(np.zeros((2, 4), np.int32))
    with pytest.raises(ValueError, match="weights must have 4 entries"):
        encode_boxes(np.ones((1, 4), np.float32), np.ones((1, 4), np.float32), (1, 1))


_GOOD = np.array([[0, 0, 2, 2], [1, 1, 3, 4]], np.float32)
_NAN = np.array([[0, 0, 2, 2], [1, np.nan, 3, 4]], np.float32)
_INVERTED = np.array([[0, 0, 2, 2], [3, 1, 1, 4]], np.float32)  # x2 < x1
_FLAT = np.array([[0, 0, 2, 2], [1, 1, 1, 4]], np.float32)  # zero width


def test_eager_calls_reject_bad_values():
    for fn in (box_iou, generalized_box_iou):
        with pytest.raises(ValueError, match=r"boxes1 must hold finite .*box 1: \[1.0, nan"):
            fn(_NAN, _GOOD)
        with pytest.raises(ValueError, match=r"boxes2 must be .*x2 >= x1 .*box 1: \[3.0, 1.0, 1.0"):
            fn(_GOOD, _INVERTED)
        fn(_GOOD, _FLAT)  # empty boxes are fine: IoU 0
    with pytest.raises(ValueError, match="boxes must hold finite"):
        clip_boxes(_NAN, 10, 10)
    with pytest.raises(ValueError, match="boxes must be .*x2 >= x1"):
        clip_boxes(_INVERTED, 10, 10)
    with pytest.raises(ValueError, match=r"height must be a finite number > 0; got -5"):
        clip_boxes(_GOOD, -5, 10)
    with pytest.raises(ValueError, match=r"width must be a finite number > 0; got nan"):
        clip_boxes(_GOOD, 10, float("nan"))
    with pytest.raises(ValueError, match=r"height must hold values that are each .*> 0; got 0.0 "
                                         r"at index \(1, 0\)"):
        clip_boxes(np.stack([_GOOD, _GOOD]), np.array([[4.0], [0.0]]), 10)
    with pytest.raises(TypeError, match="height must be a real number; got str '10'"):
        clip_boxes(_GOOD, "10", 10)
    with pytest.raises(ValueError, match=r"anchors must be .*positive width and height.*box 1"):
        encode_boxes(_GOOD, _FLAT)
    with pytest.raises(ValueError, match=r"boxes must be .*positive width and height.*box 1"):
        encode_boxes(_FLAT, _GOOD)
    with pytest.raises(ValueError, match="anchors must hold finite"):
        encode_boxes(_GOOD, _NAN)
    with pytest.raises(ValueError, match=r"weights \(ww\) must be a finite number > 0; got 0"):
        encode_boxes(_GOOD, _GOOD, (1, 1, 0, 1))
    with pytest.raises(TypeError, match=r"weights \(wx\) must be a real number"):
        decode_boxes(np.zeros((2, 4), np.float32), _GOOD, (None, 1, 1, 1))
    with pytest.raises(ValueError, match=r"weights \(wy\) must be a finite number > 0; got -1"):
        decode_boxes(np.zeros((2, 4), np.float32), _GOOD, (1, -1, 1, 1))
    with pytest.raises(ValueError, match="deltas must be finite; found 1 NaN/inf value"):
        decode_boxes(_NAN, _GOOD)
    with pytest.raises(ValueError, match=r"anchors must be .*positive width and height"):
        decode_boxes(np.zeros((2, 4), np.float32), _FLAT)
    with pytest.raises(ValueError, match="clamp must be a number"):
        decode_boxes(np.zeros((2, 4), np.float32), _GOOD, clamp=float("nan"))


def test_values_under_jit_are_documented():
    """Inside jit nothing is checked; each op does what its docstring says."""
    iou = jax.jit(box_iou)
    giou = jax.jit(generalized_box_iou)
    np.testing.assert_array_equal(np.asarray(iou(_GOOD, _NAN))[:, 1], [0, 0])
    np.testing.assert_array_equal(np.asarray(giou(_GOOD, _NAN))[:, 1], [0, 0])
    np.testing.assert_array_equal(np.asarray(iou(_GOOD, _INVERTED))[:, 1], [0, 0])
    # GIoU of an inverted box uses its negative area: [3, 1, 1, 4] has area -6, so against
    # [0, 0, 2, 2]: union 4 - 6 = -2, hull [0, 0, 2, 4] = 8 -> 0 - (8 + 2) / 8, below -1.
    np.testing.assert_allclose(float(giou(_GOOD, _INVERTED)[0, 1]), -10 / 8, rtol=1e-6)
    clip = jax.jit(clip_boxes)
    np.testing.assert_array_equal(np.asarray(clip(_NAN, 10.0, 10.0))[1], [1, np.nan, 3, 4])
    np.testing.assert_array_equal(np.asarray(clip(_GOOD, 10.0, -3.0))[:, [0, 2]], -3)
    enc = jax.jit(encode_boxes)
    d = np.asarray(enc(_FLAT, _GOOD))
    assert d[1, 2] == -np.inf and np.all(np.isfinite(d[0]))
    d = np.asarray(enc(_GOOD, _FLAT))  # zero-width anchor: division by zero
    assert np.isinf(d[1, 0]) and np.isinf(d[1, 2]) and np.all(np.isfinite(d[0]))
    assert np.all(np.isnan(np.asarray(enc(_NAN, _GOOD))[1, [1, 3]]))
    dec = jax.jit(decode_boxes)
    out = np.asarray(dec(_NAN, _GOOD))
    assert np.all(np.isnan(out[1, [1, 3]])) and np.all(np.isfinite(out[0]))
    out = np.asarray(dec(np.ones((2, 4), np.float32), _FLAT))  # zero width: at the centre
    np.testing.assert_array_equal(out[1, [0, 2]], [1, 1])


def test_torchvision_parity():
    torch, tv = _torchvision()
    from torchvision.models.detection._utils import BoxCoder

    a, b = _random_boxes(7, 30), _random_boxes(8, 20)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    np.testing.assert_allclose(np.asarray(box_iou(a, b)), tv.ops.box_iou(ta, tb).numpy(), atol=1e-6)
    np.testing.assert_allclose(np.asarray(generalized_box_iou(a, b)), tv.ops.generalized_box_iou(ta, tb).numpy(), atol=1e-6)
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    want = coder.encode_single(tb, ta[:20]).numpy()
    np.testing.assert_allclose(np.asarray(encode_boxes(b, a[:20], (10, 10, 5, 5))), want, atol=1e-5)
    deltas = np.random.default_rng(9).normal(0, 2, (20, 4)).astype(np.float32)
    deltas[0, 2] = 30.0
    want = coder.decode_single(torch.from_numpy(deltas), ta[:20]).numpy()
    np.testing.assert_allclose(np.asarray(decode_boxes(deltas, a[:20], (10, 10, 5, 5))), want, rtol=1e-5, atol=1e-3)
