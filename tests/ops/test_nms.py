"""NMS: exact greedy semantics for any threshold, against a loop reference and torchvision."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.ops.roi_reference import nms_ref
from vai_jax.ops import batched_nms, nms


def _torchvision():
    try:
        import torch
        import torchvision

        torchvision.ops.nms  # noqa: B018
    except Exception as e:  # ImportError, or a build whose C++ ops do not load
        pytest.skip(f"torchvision unavailable: {type(e).__name__}: {e}")
    return torch, torchvision


def _case(seed, n, ties=False):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 60, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 30, (n, 2))], 1).astype(np.float32)
    scores = rng.random(n).astype(np.float32)
    if ties:
        scores = np.round(scores * 4).astype(np.float32) / 4
    return boxes, scores


def _kept(idx):
    idx = np.asarray(idx)
    return idx[idx >= 0].tolist()


@pytest.mark.parametrize("threshold", [0.0, 0.1, 0.3, 0.5, 0.7, 0.95, 1.0])
def test_nms_matches_reference_any_threshold(threshold):
    for seed, n, ties, tile in ((0, 90, False, 16), (1, 57, True, 256), (2, 3, False, 1)):
        boxes, scores = _case(seed, n, ties)
        got = nms(boxes, scores, threshold, max_outputs=n, tile_size=tile)
        assert got.dtype == jnp.int32 and got.shape == (n,)
        assert _kept(got) == nms_ref(boxes, scores, threshold)


def test_exact_threshold_is_not_suppressed():
    # IoU([0,0,4,1], [0,0,2,1]) = 2 / 4 = 0.5 exactly; torchvision suppresses only when > threshold.
    boxes = np.array([[0, 0, 4, 1], [0, 0, 2, 1]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    assert _kept(nms(boxes, scores, 0.5, max_outputs=2)) == [0, 1]
    assert _kept(nms(boxes, scores, 0.49, max_outputs=2)) == [0]


def test_padding_truncation_and_valid_mask():
    boxes, scores = _case(3, 40)
    full = nms_ref(boxes, scores, 0.4)
    got = np.asarray(nms(boxes, scores, 0.4, max_outputs=len(full) + 5))
    assert got[: len(full)].tolist() == full and np.all(got[len(full):] == -1)
    assert np.asarray(nms(boxes, scores, 0.4, max_outputs=3)).tolist() == full[:3]
    valid = np.ones(40, bool)
    valid[full[0]] = False  # drop the best box: it neither survives nor suppresses
    keep = np.flatnonzero(valid)
    want = [int(keep[i]) for i in nms_ref(boxes[keep], scores[keep], 0.4)]
    assert _kept(nms(boxes, scores, 0.4, max_outputs=40, valid=valid)) == want


def test_batched_nms_is_per_class():
    boxes, scores = _case(4, 80)
    classes = np.random.default_rng(5).integers(0, 3, 80).astype(np.int32)
    want = []
    for c in range(3):
        sel = np.flatnonzero(classes == c)
        want += [int(sel[i]) for i in nms_ref(boxes[sel], scores[sel], 0.5)]
    want = sorted(want, key=lambda i: (-scores[i], i))
    assert _kept(batched_nms(boxes, scores, classes, 0.5, max_outputs=80)) == want


def test_jit_traced_threshold_and_vmap():
    boxes, scores = _case(6, 50)
    fn = jax.jit(lambda b, s, t: nms(b, s, t, max_outputs=50))
    for t in (0.2, 0.6):
        assert _kept(fn(boxes, scores, t)) == nms_ref(boxes, scores, t)
    batch = jax.vmap(lambda s: nms(boxes, s, 0.5, max_outputs=50))(jnp.stack([scores, scores[::-1]]))
    assert _kept(batch[1]) == nms_ref(boxes, scores[::-1], 0.5)


def test_bad_input():
    boxes, scores = _case(7, 5)
    with pytest.raises(ValueError, match=r"boxes must hold finite .*the first in box 0"):
        nms(np.where(np.arange(20).reshape(5, 4) == 3, np.nan, boxes), scores, 0.5, max_outputs=5)
    with pytest.raises(ValueError, match="x2 >= x1"):
        nms(boxes[:, [2, 1, 0, 3]], scores, 0.5, max_outputs=5)
    with pytest.raises(ValueError, match="scores must have shape"):
        nms(boxes, scores[:4], 0.5, max_outputs=5)
    with pytest.raises(ValueError, match="boxes must have last dimension 4"):
        nms(boxes[:, :3], scores, 0.5, max_outputs=5)
    with pytest.raises(ValueError, match="max_outputs must be a Python int"):
        nms(boxes, scores, 0.5, max_outputs=0)
    with pytest.raises(TypeError, match="classes must have an integer dtype"):
        batched_nms(boxes, scores, scores, 0.5, max_outputs=5)


def test_bad_values_and_thresholds_eager():
    boxes, scores = _case(7, 5)
    nan_scores = np.where(np.arange(5) == 2, np.nan, scores).astype(np.float32)
    with pytest.raises(ValueError, match="scores must be free of NaN; found 1 NaN value.*index 2"):
        nms(boxes, nan_scores, 0.5, max_outputs=5)
    with pytest.raises(ValueError, match="scores must be free of NaN"):
        batched_nms(boxes, nan_scores, np.zeros(5, np.int32), 0.5, max_outputs=5)
    for bad in (float("nan"), np.float32(np.nan), jnp.float32(jnp.inf)):
        with pytest.raises(ValueError, match="iou_threshold must be a finite number; got"):
            nms(boxes, scores, bad, max_outputs=5)
    for bad in ("0.5", None, [0.5], True):
        with pytest.raises(TypeError, match="iou_threshold must be a real number; got"):
            nms(boxes, scores, bad, max_outputs=5)
        with pytest.raises(TypeError, match="iou_threshold must be a real number"):
            batched_nms(boxes, scores, np.zeros(5, np.int32), bad, max_outputs=5)
    with pytest.raises(ValueError, match=r"iou_threshold must be a scalar; got shape \(2,\)"):
        nms(boxes, scores, np.array([0.5, 0.6]), max_outputs=5)
    scores[0] = -np.inf  # infinite scores are ordered normally
    assert _kept(nms(boxes, scores, 0.5, max_outputs=5)) == nms_ref(boxes, scores, 0.5)


def test_nan_scores_under_jit_sort_last_and_suppress_nothing():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10.5], [50, 50, 60, 60], [50, 50, 60, 61],
                      [0, 0, 9, 10]], np.float32)
    scores = np.array([np.nan, 0.5, np.nan, np.nan, 0.2], np.float32)
    fn = jax.jit(lambda s: nms(boxes, s, 0.5, max_outputs=5))
    # 1 is kept and suppresses 4 and (NaN score, visited last) 0; 2 and 3 overlap each other,
    # but a NaN-scored box suppresses nothing, so both are kept, in index order.
    assert np.asarray(fn(scores)).tolist() == [1, 2, 3, -1, -1]
    classes = np.array([0, 0, 1, 1, 0], np.int32)
    got = jax.jit(lambda s: batched_nms(boxes, s, classes, 0.5, max_outputs=5))(scores)
    assert np.asarray(got).tolist() == [1, 2, 3, -1, -1]


def test_nan_threshold_under_jit_suppresses_nothing():
    boxes, scores = _case(10, 20)
    got = jax.jit(lambda t: nms(boxes, scores, t, max_outputs=20))(jnp.float32(jnp.nan))
    assert _kept(got) == np.argsort(-scores, kind="stable").tolist()


def test_nan_box_under_jit_suppresses_nothing():
    boxes = np.array([[0, 0, 10, 10], [np.nan, 0, 10, 10], [0, 0, 10, 10.5]], np.float32)
    scores = np.array([0.5, 0.9, 0.4], np.float32)
    got = jax.jit(lambda b: nms(b, scores, 0.5, max_outputs=3))(boxes)
    assert _kept(got) == [1, 0]  # the NaN box is kept (highest score) and suppresses nothing


@pytest.mark.parametrize("threshold", [0.2, 0.5, 0.8])
def test_torchvision_parity(threshold):
    torch, tv = _torchvision()
    for seed, ties in ((8, False), (9, True)):
        boxes, scores = _case(seed, 300, ties)
        boxes = np.concatenate([boxes, np.round(boxes[:50])])  # integer boxes: exact IoU ties
        scores = np.concatenate([scores, scores[:50]])
        want = tv.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold).numpy().tolist()
        assert _kept(nms(boxes, scores, threshold, max_outputs=len(boxes))) == want
        classes = np.random.default_rng(seed).integers(0, 5, len(boxes))
        want = tv.ops.batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), threshold)
        got = batched_nms(boxes, scores, classes.astype(np.int32), threshold, max_outputs=len(boxes))
        assert sorted(_kept(got)) == sorted(want.numpy().tolist())
