"""VOC segmentation source: normaliser and load through tfds.data_source under mock_data."""
import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from vai_jax.data.segmentation_sources import (NUM_VOC_CLASSES,  # noqa: E402
                                               load_segmentation_source, normalise_segmentation)


def _records(n, rng):
    out = []
    for i in range(n):
        h, w = int(rng.integers(10, 20)), int(rng.integers(10, 20))
        mask = rng.integers(0, NUM_VOC_CLASSES, size=(h, w, 1)).astype(np.uint8)
        mask[0] = 255  # border / void
        out.append({"image": rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8),
                    "image/filename": f"{i:06d}.jpg", "segmentation_mask": mask})
    return out


def test_voc_segmentation_through_data_source():
    records = _records(4, np.random.default_rng(0))
    with tfds.testing.mock_data(as_data_source_fn=lambda self, split, **kw: records):
        src = load_segmentation_source("voc_segmentation/2012", "validation")
        assert len(src) == 4
        for raw, r in zip(records, (src[i] for i in range(4))):
            assert set(r) == {"image", "semantic"}
            assert r["image"].dtype == np.uint8 and r["image"].shape == raw["image"].shape
            assert r["semantic"].dtype == np.int32
            np.testing.assert_array_equal(r["semantic"], raw["segmentation_mask"][..., 0])


def test_mask_of_other_size_is_rejected():
    rec = _records(1, np.random.default_rng(1))[0]
    rec["segmentation_mask"] = rec["segmentation_mask"][:-1]
    with pytest.raises(ValueError, match="segmentation_mask must have the image's size"):
        normalise_segmentation(rec)
    # tfds' random mock draws image and mask sizes independently: the same clear error.
    with tfds.testing.mock_data(num_examples=2):
        src = load_segmentation_source("voc_segmentation/2012", "train")
        with pytest.raises(ValueError, match="image's size"):
            src[0]
