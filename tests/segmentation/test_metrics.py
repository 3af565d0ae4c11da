"""Confusion matrix (jit, per-batch accumulation, sharded and pmap sums) and mIoU against a
NumPy reference written differently; object-vs-background IoU by hand; boundaries, trimap band
and boundary F-score against pixel loops and brute-force distances."""
import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from vai_jax.segmentation.metrics import (ConfusionMatrix, boundary_counts, boundary_f_score,
                                         confusion_matrix, label_boundaries, metrics_from_confusion,
                                         object_iou, trimap_band, trimap_confusion_matrix)


def _data(seed=0, n=8, k=5):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, size=(n, 6, 7)).astype(np.int32)
    labels[rng.random(labels.shape) < 0.2] = 255
    preds = np.where(rng.random(labels.shape) < 0.6, np.clip(labels, 0, k - 1),
                     rng.integers(0, k, size=labels.shape)).astype(np.int32)
    return labels, preds


def _reference_miou(labels, preds, k, ignore=255):
    """Set-based IoU per class (no confusion matrix)."""
    keep = labels != ignore
    ious = []
    for c in range(k):
        t, p = (labels == c) & keep, (preds == c) & keep
        union = np.sum(t | p)
        if union:
            ious.append(np.sum(t & p) / union)
    return np.mean(ious), np.sum((labels == preds) & keep) / np.sum(keep)


def test_matrix_entries_and_metrics_vs_reference():
    k = 5
    labels, preds = _data(k=k)
    cm = np.asarray(jax.jit(lambda a, b: confusion_matrix(a, b, k))(labels, preds))
    keep = labels != 255
    for t in range(k):
        for p in range(k):
            assert cm[t, p] == np.sum((labels == t) & (preds == p))
    assert cm.sum() == keep.sum()
    m = metrics_from_confusion(cm)
    miou, acc = _reference_miou(labels, preds, k)
    np.testing.assert_allclose(m["miou"], miou, rtol=1e-12)
    np.testing.assert_allclose(m["pixel_accuracy"], acc, rtol=1e-12)


def test_absent_class_is_excluded_from_miou():
    labels = np.array([[0, 0, 1, 1]], np.int32)
    preds = np.array([[0, 1, 1, 1]], np.int32)
    m = metrics_from_confusion(confusion_matrix(labels, preds, 3))
    assert np.isnan(m["iou"][2])
    np.testing.assert_allclose(m["iou"][:2], [1 / 2, 2 / 3])
    np.testing.assert_allclose(m["miou"], (1 / 2 + 2 / 3) / 2)
    np.testing.assert_allclose(m["mean_accuracy"], (1 / 2 + 1) / 2)


def test_accumulating_batches_equals_one_big_batch():
    k = 5
    labels, preds = _data(1, n=12, k=k)
    acc = ConfusionMatrix(k)
    for i in range(0, 12, 4):
        acc.update(confusion_matrix(labels[i:i + 4], preds[i:i + 4], k))
    np.testing.assert_array_equal(acc.matrix, confusion_matrix(labels, preds, k))
    whole = metrics_from_confusion(confusion_matrix(labels, preds, k))
    assert acc.result()["miou"] == whole["miou"]


def test_sharded_and_pmap_sums_equal_single_device():
    k = 5
    n = jax.device_count()
    labels, preds = _data(2, n=n, k=k)
    full = np.asarray(confusion_matrix(labels, preds, k))
    mesh = Mesh(np.array(jax.devices()), ("data",))
    shard = NamedSharding(mesh, P("data"))
    got = jax.jit(lambda a, b: confusion_matrix(a, b, k))(jax.device_put(labels, shard),
                                                          jax.device_put(preds, shard))
    np.testing.assert_array_equal(got, full)
    per_device = jax.pmap(lambda a, b: confusion_matrix(a, b, k, axis_name="i"), axis_name="i")(
        labels[:, None], preds[:, None])
    for d in range(n):
        np.testing.assert_array_equal(per_device[d], full)


def test_mask_and_bad_input():
    labels, preds = _data(3, n=4)
    mask = np.array([1, 0, 1, 0], bool)[:, None, None]
    np.testing.assert_array_equal(confusion_matrix(labels, preds, 5, mask=mask),
                                  confusion_matrix(labels[::2], preds[::2], 5))
    with pytest.raises(ValueError, match="same shape"):
        confusion_matrix(labels, preds[:, :5], 5)
    bad = labels.copy()
    bad[0, 0, 0] = 7
    with pytest.raises(ValueError, match="ignore label"):
        confusion_matrix(bad, preds, 5)
    with pytest.raises(ValueError, match="square"):
        metrics_from_confusion(np.zeros((2, 3)))
    bad_pred = preds.copy()
    bad_pred[1, 2, 3] = 5
    with pytest.raises(ValueError, match=r"predictions must hold class ids in \[0, 5\); found 1 "
                                         r"outside, the first at index \(1, 2, 3\), values \[5\]"):
        confusion_matrix(labels, bad_pred, 5)
    with pytest.raises(TypeError, match="num_classes must be an int; got float"):
        confusion_matrix(labels, preds, 5.0)
    with pytest.raises(ValueError, match=r"mask must broadcast to labels' shape \(4, 6, 7\)"):
        confusion_matrix(labels, preds, 5, mask=np.ones((3,), bool))


def test_out_of_range_values_under_jit_poison_the_matrix():
    """Under jit a label or prediction outside [0, K) (not ignored, not masked out) is not
    dropped: the matrix becomes all -1 and the host-side consumers refuse it."""
    labels, preds = _data(4, n=4)
    cm_fn = jax.jit(lambda y, p, m: confusion_matrix(y, p, 5, mask=m))
    keep = np.ones((4, 1, 1), bool)
    good = np.asarray(cm_fn(labels, preds, keep))
    assert good.min() >= 0 and good.sum() == np.sum(labels != 255)
    for name, index, value in (("pred", (0, 1, 1), 5), ("pred", (2, 0, 0), -1),
                               ("label", (3, 5, 6), 6)):
        y, p = labels.copy(), preds.copy()
        y[index] = 0 if name == "pred" else value
        if name == "pred":
            p[index] = value
        cm = np.asarray(cm_fn(y, p, keep))
        np.testing.assert_array_equal(cm, np.full((5, 5), -1))
        masked = keep.copy()
        masked[index[0]] = False  # the same value in a padded example is not counted
        assert np.asarray(cm_fn(y, p, masked)).min() >= 0
    acc = ConfusionMatrix(5).update(good)
    for consumer in (acc.update, metrics_from_confusion, object_iou):
        with pytest.raises(ValueError, match="cm holds negative counts"):
            consumer(cm)


def test_object_iou_merges_the_object_classes():
    cm = np.array([[50, 3, 2], [4, 10, 6], [1, 5, 20]])  # rows: truth, columns: prediction
    # objects: truth in {1, 2} and prediction in {1, 2}: 10 + 6 + 5 + 20 = 41;
    # background predicted as object 3 + 2; object predicted as background 4 + 1.
    assert object_iou(cm) == pytest.approx(41 / (41 + 5 + 5))
    assert np.isnan(object_iou(np.diag([5, 0, 0])))
    with pytest.raises(ValueError, match="square"):
        object_iou(np.zeros((2, 3)))


def _np_boundaries(labels):
    """Pixel by pixel: a 4-neighbour inside the image with another label."""
    *lead, h, w = labels.shape
    out = np.zeros(labels.shape, bool)
    for idx in np.ndindex(*lead):
        for i in range(h):
            for j in range(w):
                for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                    y, x = i + di, j + dj
                    if 0 <= y < h and 0 <= x < w and labels[idx + (y, x)] != labels[idx + (i, j)]:
                        out[idx + (i, j)] = True
    return out


def _np_within(points, width):
    """Chebyshev distance from every pixel to the nearest True pixel, brute force."""
    *lead, h, w = points.shape
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    out = np.zeros(points.shape, bool)
    for idx in np.ndindex(*lead):
        ys, xs = np.nonzero(points[idx])
        if ys.size:
            d = np.maximum(np.abs(yy[..., None] - ys), np.abs(xx[..., None] - xs)).min(-1)
            out[idx] = d <= width
    return out


def test_boundaries_and_trimap_band_by_hand():
    labels = np.zeros((5, 6), np.int32)
    labels[:, 3:] = 2                              # one vertical edge between columns 2 and 3
    b = np.asarray(label_boundaries(labels))
    np.testing.assert_array_equal(b.any(0), [False, False, True, True, False, False])
    assert b[:, 2].all() and b[:, 3].all()
    band = np.asarray(trimap_band(labels, 1))
    np.testing.assert_array_equal(band.all(0), [False, True, True, True, True, False])
    assert not band[:, [0, 5]].any()
    assert not np.asarray(trimap_band(np.ones((4, 4), np.int32), 3)).any()


@pytest.mark.parametrize("width", [0, 1, 3])
def test_trimap_band_vs_numpy(width):
    labels, _ = _data(seed=3, n=3, k=3)
    labels = np.repeat(np.repeat(labels, 2, axis=1), 2, axis=2)   # 12 x 14, blocky regions
    np.testing.assert_array_equal(np.asarray(label_boundaries(labels)), _np_boundaries(labels))
    band = jax.jit(trimap_band, static_argnums=1)(labels, width)
    np.testing.assert_array_equal(np.asarray(band), _np_within(_np_boundaries(labels), width))


def test_trimap_confusion_and_boundary_f_vs_numpy():
    k, width, tol = 5, 1, 2
    labels, preds = _data(seed=4, n=4, k=k)
    labels = np.repeat(np.repeat(labels, 2, axis=1), 2, axis=2)
    preds = np.repeat(np.repeat(preds, 2, axis=1), 2, axis=2)
    band = _np_within(_np_boundaries(labels), width)
    cm = np.asarray(trimap_confusion_matrix(labels, preds, k, width))
    keep = band & (labels != 255)
    assert cm.sum() == keep.sum() and np.trace(cm) == np.sum((labels == preds) & keep)
    assert cm[1, 2] == np.sum(keep & (labels == 1) & (preds == 2))
    valid = labels != 255
    tb, pb = _np_boundaries(labels) & valid, _np_boundaries(preds) & valid
    counts = jax.jit(boundary_counts, static_argnums=2)(labels, preds, tol)
    assert int(counts["true"]) == tb.sum() and int(counts["pred"]) == pb.sum()
    assert int(counts["matched_pred"]) == np.sum(pb & _np_within(tb, tol))
    assert int(counts["matched_true"]) == np.sum(tb & _np_within(pb, tol))
    f = boundary_f_score(counts)
    p, r = np.sum(pb & _np_within(tb, tol)) / pb.sum(), np.sum(tb & _np_within(pb, tol)) / tb.sum()
    assert f["precision"] == pytest.approx(p) and f["recall"] == pytest.approx(r)
    assert f["f_score"] == pytest.approx(2 * p * r / (p + r))
    same = boundary_f_score(boundary_counts(labels, labels, 0))
    assert same == {"precision": 1.0, "recall": 1.0, "f_score": 1.0}


def test_boundary_metrics_bad_inputs():
    labels = np.zeros((2, 4, 4), np.int32)
    with pytest.raises(ValueError, match="width must be an int >= 0"):
        trimap_band(labels, -1)
    with pytest.raises(ValueError, match="tolerance must be an int >= 0"):
        boundary_counts(labels, labels, 1.5)
    with pytest.raises(ValueError, match="labels must have rank >= 2"):
        label_boundaries(np.zeros(4, np.int32))
    with pytest.raises(TypeError, match="labels must have"):
        label_boundaries(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="same shape"):
        boundary_counts(labels, labels[:, :3], 1)
    with pytest.raises(ValueError, match="labels must lie in"):
        trimap_confusion_matrix(labels + 7, labels, 5, 1)
