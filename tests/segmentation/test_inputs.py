"""Segmentation inputs: the label check of a record, per-class pixel counts."""
import numpy as np
import pytest

from vai_jax.data.sources import ArraySource
from vai_jax.segmentation.inputs import CheckLabels, pixel_counts


def test_bad_labels_are_rejected():
    check = CheckLabels(7, 255)
    rec = {"image": np.zeros((8, 8, 3), np.uint8), "semantic": np.zeros((8, 8), np.int32)}
    rec["semantic"][0, 0] = 255
    assert check(rec) is rec  # the ignore label is fine
    rec["semantic"][0, 1] = 7
    with pytest.raises(ValueError, match=r"semantic must lie in \[0, 7\) or the ignore label"):
        check(rec)
    with pytest.raises(ValueError, match="differs from the image"):
        check({"image": rec["image"], "semantic": np.zeros((8, 9), np.int32)})


def test_pixel_counts():
    sem = np.array([[[0, 1], [1, 255]], [[2, 2], [2, 0]], [[1, 1], [1, 1]]], np.int32)
    source = ArraySource({"image": np.zeros((3, 2, 2, 3), np.uint8), "semantic": sem})
    np.testing.assert_array_equal(pixel_counts(source, 3), [2, 6, 3])
    np.testing.assert_array_equal(pixel_counts(source, 3, max_examples=2), [2, 2, 3])
    assert pixel_counts(source, 4).dtype == np.int64
