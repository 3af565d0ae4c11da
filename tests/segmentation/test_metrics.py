"""Confusion matrix (jit, per-batch accumulation, sharded and pmap sums) and mIoU against a
NumPy reference written differently; object-vs-background IoU by hand."""
import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from vai_jax.segmentation.metrics import (ConfusionMatrix, confusion_matrix, metrics_from_confusion,
                                         object_iou)


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


def test_object_iou_merges_the_object_classes():
    cm = np.array([[50, 3, 2], [4, 10, 6], [1, 5, 20]])  # rows: truth, columns: prediction
    # objects: truth in {1, 2} and prediction in {1, 2}: 10 + 6 + 5 + 20 = 41;
    # background predicted as object 3 + 2; object predicted as background 4 + 1.
    assert object_iou(cm) == pytest.approx(41 / (41 + 5 + 5))
    assert np.isnan(object_iou(np.diag([5, 0, 0])))
    with pytest.raises(ValueError, match="square"):
        object_iou(np.zeros((2, 3)))
