"""Bad detection input: out-of-range classes, boxes outside the image, degenerate boxes, empty
images, more objects than the padding allows; constant proposals and the training batches."""
import numpy as np
import pytest

from vai_jax.data.pipeline import make_loader
from vai_jax.data.shapes import ShapesDataset
from vai_jax.detection.inputs import DetectionBatches, add_proposals, sanitize_targets


def _batch():
    boxes = np.array([[[2, 2, 10, 10], [-5, 3, 8, 40], [12, 12, 12, 20], [0, 0, 0, 0]],
                      [[40, 40, 50, 50], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]], np.float32)
    return {"image": np.zeros((2, 32, 32, 3), np.uint8), "boxes": boxes,
            "classes": np.array([[1, 2, 3, 0], [4, 0, 0, 0]], np.int32),
            "valid": np.array([[True, True, True, False], [True, False, False, False]])}


def test_clip_and_degenerate_boxes_reported():
    out, report = sanitize_targets(_batch(), num_classes=6)
    np.testing.assert_array_equal(out["boxes"][0, 1], [0, 3, 8, 32])  # clipped to the image
    assert out["valid"].tolist() == [[True, True, False, False], [False, False, False, False]]
    assert report == {"objects": 2, "clipped": 1, "degenerate": 2, "dropped": 0}
    assert np.all(out["boxes"][~out["valid"]] == 0)


def test_class_out_of_range_raises_but_padding_is_ignored():
    b = _batch()
    b["classes"][0, 3] = 99  # padding: fine
    sanitize_targets(b, num_classes=6)
    b["classes"][1, 0] = 6
    with pytest.raises(ValueError, match=r"image 1 object 0 has class 6"):
        sanitize_targets(b, num_classes=6)
    b["classes"][1, 0] = -1
    with pytest.raises(ValueError, match="classes must be in"):
        sanitize_targets(b, num_classes=6)


def test_non_finite_box_raises():
    b = _batch()
    b["boxes"][0, 0, 2] = np.nan
    with pytest.raises(ValueError, match="finite"):
        sanitize_targets(b, num_classes=6)


def test_empty_image_is_valid_input():
    b = _batch()
    b["valid"][:] = False
    out, report = sanitize_targets(b, num_classes=6)
    assert report["objects"] == 0 and not out["valid"].any()


def test_more_objects_than_padding_error_or_reported():
    ds = ShapesDataset("detection", num_examples=8, image_size=32, min_objects=4, max_objects=4)
    with pytest.raises(ValueError, match="max_objects"):
        next(iter(make_loader(ds, batch_size=4, seed=0, max_objects=2, shard_options=_no_shard())))
    loader = make_loader(ds, batch_size=4, seed=0, max_objects=2, on_overflow="drop", shard_options=_no_shard())
    with pytest.warns(UserWarning, match="dropping"):
        batch = next(iter(loader))
    _, report = sanitize_targets(batch, num_classes=6)
    assert report["dropped"] == int(batch["num_dropped_objects"].sum()) > 0


def _no_shard():
    import grain.python as grain
    return grain.NoSharding()


def test_add_proposals_broadcasts_a_copy():
    props = np.array([[0, 0, 8, 8], [4, 4, 20, 12], [1, 2, 3, 4]], np.float32)
    out = add_proposals(_batch(), props)
    assert out["proposals"].shape == (2, 3, 4) and out["proposal_valid"].shape == (2, 3)
    np.testing.assert_array_equal(out["proposals"][1], props)
    assert out["proposal_valid"].all() and out["proposals"].flags.writeable
    assert set(out) == set(_batch()) | {"proposals", "proposal_valid"}
    with pytest.raises(ValueError, match=r"proposals must be \[P, 4\]"):
        add_proposals(_batch(), props[:, :3])


class _Iterator:
    """Yields the same batch with a counter as its state (as grain's iterators)."""

    def __init__(self, batch):
        self.batch, self.position = batch, 0

    def __next__(self):
        self.position += 1
        return dict(self.batch, masks=np.zeros((2, 4, 32, 32), bool))

    def get_state(self):
        return {"position": self.position}

    def set_state(self, state):
        self.position = state["position"]


def test_detection_batches_clean_select_and_count():
    props = np.array([[0, 0, 8, 8]], np.float32)
    it = _Iterator(dict(_batch(), num_dropped_objects=np.array([1, 0])))
    batches = DetectionBatches(it, num_classes=6, proposals=props)
    first = next(batches)
    assert sorted(first) == ["boxes", "classes", "image", "proposal_valid", "proposals", "valid"]
    assert first["valid"].tolist() == [[True, True, False, False], [False, False, False, False]]
    next(batches)
    assert batches.report == {"objects": 4, "clipped": 2, "degenerate": 4, "dropped": 2}
    assert batches.get_state() == {"position": 2}
    batches.set_state({"position": 7})
    assert it.position == 7 and iter(batches) is batches
    with_masks = next(DetectionBatches(_Iterator(_batch()), num_classes=6, keep_masks=True))
    assert sorted(with_masks) == ["boxes", "classes", "image", "masks", "valid"]
