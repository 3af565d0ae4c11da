"""tfds data sources -> normalised records, read WITHOUT TensorFlow.

Routes exercised:
- ``tfds.testing.mock_data`` (default ``MockPolicy.AUTO``; cifar10 resolves to ``USE_CODE``) with
  ``tfds.data_source``: works without TF, records come from tfds' random generator.
- voc: tfds' random generator draws every ``objects`` sequence with an independent length
  (``bbox`` 15 boxes, ``label`` 11, ...), which no real record has, so the VOC test hands
  ``mock_data(as_data_source_fn=...)`` records in the tfds VOC feature layout with known boxes.
- a tiny real tfds builder prepared to ``array_record`` (PNG bytes given directly, so no TF
  encoder runs) and read back through ``load_source``: the real deserialisation path.
"""
import importlib.util
import io
import sys

import grain.python as grain
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from vai_jax.data.pipeline import make_loader
from vai_jax.data.sources import (
    NORMALISERS,
    load_source,
    normalise_detection,
    tfds_boxes_to_xyxy,
)

NO_TF = importlib.util.find_spec("tensorflow") is None


def test_cifar10_mock_records_and_batches():
    with tfds.testing.mock_data(num_examples=6):
        src = load_source("cifar10", "train")
        assert len(src) == 6
        for i in range(len(src)):
            r = src[i]
            assert set(r) == {"image", "label"}
            assert r["image"].shape == (32, 32, 3) and r["image"].dtype == np.uint8
            assert r["label"].shape == () and r["label"].dtype == np.int32
            assert 0 <= int(r["label"]) < 10
        assert src.class_names is not None and len(src.class_names) == 10
        it = iter(make_loader(src, batch_size=4, seed=1, num_epochs=1, shard_options=grain.NoSharding()))
        batch = next(it)
        assert batch["image"].shape == (4, 32, 32, 3) and batch["image"].dtype == np.uint8
        assert batch["label"].shape == (4,) and batch["label"].dtype == np.int32
        with pytest.raises(StopIteration):  # 6 records, drop_remainder: one batch of 4
            next(it)


@pytest.mark.skipif(not NO_TF, reason="checks the TF-free path; TensorFlow is installed here")
def test_tfds_route_never_imports_tensorflow():
    with tfds.testing.mock_data(num_examples=2):
        load_source("cifar10", "train")[0]
    assert "tensorflow" not in sys.modules


def _voc_like_records(rng, n):
    """Records laid out like tfds ``voc/2012`` (normalised [ymin, xmin, ymax, xmax] boxes)."""
    records = []
    for i in range(n):
        h, w = int(rng.integers(20, 40)), int(rng.integers(20, 40))
        m = i % 3  # includes an image with no objects
        lo = rng.uniform(0.0, 0.5, size=(m, 2))
        hi = lo + rng.uniform(0.1, 0.5, size=(m, 2))
        bbox = np.concatenate([lo, hi], axis=1).astype(np.float32)  # [ymin, xmin, ymax, xmax]
        records.append({
            "image": rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8),
            "image/filename": f"{i:06d}.jpg",
            "labels": np.arange(m, dtype=np.int64),
            "labels_no_difficult": np.arange(m, dtype=np.int64),
            "objects": {
                "bbox": bbox if m else [],  # tfds gives an empty list for no objects
                "label": np.arange(m, dtype=np.int64) + 3 if m else [],
                "is_difficult": np.array([True, False][:m]) if m else [],
                "is_truncated": np.zeros(m, bool) if m else [],
                "pose": np.zeros(m, np.int64) if m else [],
            },
        })
    return records


def test_voc_boxes_converted_to_pixel_xyxy():
    records = _voc_like_records(np.random.default_rng(0), 5)

    def as_data_source(self, split, **kwargs):
        del self, split, kwargs
        return records

    with tfds.testing.mock_data(as_data_source_fn=as_data_source):
        src = load_source("voc/2012", "train")
        assert len(src) == 5
        for raw, r in zip(records, (src[i] for i in range(5))):
            h, w = raw["image"].shape[:2]
            m = len(raw["objects"]["label"])
            assert r["image"].dtype == np.uint8 and r["image"].shape == (h, w, 3)
            assert r["boxes"].dtype == np.float32 and r["boxes"].shape == (m, 4)
            assert r["classes"].dtype == np.int32 and r["classes"].shape == (m,)
            assert r["valid"].dtype == bool and r["valid"].shape == (m,)
            # Independent conversion, written per box in float64.
            for k in range(m):
                ymin, xmin, ymax, xmax = (float(v) for v in raw["objects"]["bbox"][k])
                np.testing.assert_allclose(r["boxes"][k], [xmin * w, ymin * h, xmax * w, ymax * h], rtol=1e-6)
                assert r["boxes"][k, 2] <= w and r["boxes"][k, 3] <= h
            np.testing.assert_array_equal(r["classes"], np.asarray(raw["objects"]["label"], np.int64).reshape(-1))
            assert r["valid"].all()
            np.testing.assert_array_equal(r["difficult"], np.asarray(raw["objects"]["is_difficult"], bool))


def test_voc_batches_to_static_shapes_with_transforms():
    from vai_jax.data.transforms import Resize

    records = _voc_like_records(np.random.default_rng(1), 8)
    with tfds.testing.mock_data(as_data_source_fn=lambda self, split, **kw: records):
        src = load_source("voc/2012", "train")
        loader = make_loader(
            src, batch_size=4, seed=0, num_epochs=1, transforms=Resize((24, 24)), max_objects=3,
            shard_options=grain.NoSharding(),
        )
        batches = list(loader)
    assert len(batches) == 2
    for b in batches:
        assert b["image"].shape == (4, 24, 24, 3) and b["image"].dtype == np.uint8
        assert b["boxes"].shape == (4, 3, 4) and b["classes"].shape == (4, 3)
        assert b["valid"].shape == (4, 3) and b["valid"].dtype == bool
        assert np.all(b["boxes"][~b["valid"]] == 0)
        assert np.all((b["boxes"] >= 0) & (b["boxes"] <= 24))
    # Every object survives (counts 0, 1, 2 objects per record, i % 3).
    assert sum(int(b["valid"].sum()) for b in batches) == sum(i % 3 for i in range(8))


def test_tfds_boxes_to_xyxy_empty_and_values():
    assert tfds_boxes_to_xyxy([], 10, 20).shape == (0, 4)
    out = tfds_boxes_to_xyxy([[0.1, 0.2, 0.5, 1.0]], 10, 20)
    np.testing.assert_allclose(out, [[4.0, 1.0, 20.0, 5.0]], rtol=1e-6)


def test_unknown_name_is_a_value_error_with_near_matches():
    with pytest.raises(ValueError, match=r"cifar1O.*cifar10"):
        load_source("cifar1O", "train")


def test_tfds_name_without_normaliser_is_a_value_error():
    assert "ag_news_subset" not in NORMALISERS
    with pytest.raises(ValueError, match="ag_news_subset.*normaliser"):
        load_source("ag_news_subset", "train")


def test_unprepared_data_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_source("cifar10", "train", data_dir=str(tmp_path))


class VaiTinyDetection(tfds.core.GeneratorBasedBuilder):
    """A 4-image detection builder written to array_record; images given as PNG bytes."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3)),
                "objects": tfds.features.Sequence({
                    "bbox": tfds.features.BBoxFeature(),
                    "label": tfds.features.ClassLabel(names=["cat", "dog", "bird"]),
                }),
            }),
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i, (h, w, m) in enumerate([(12, 16, 0), (20, 10, 1), (9, 9, 2), (14, 18, 1)]):
            image = np.full((h, w, 3), 10 * i, np.uint8)
            buf = io.BytesIO()
            Image.fromarray(image).save(buf, format="PNG")
            boxes = [tfds.features.BBox(0.25, 0.5, 0.75, 1.0)] * m
            yield i, {"image": buf.getvalue(), "objects": {"bbox": boxes, "label": [i % 3] * m}}


def test_real_array_record_read_path(tmp_path):
    builder = VaiTinyDetection(data_dir=str(tmp_path), file_format="array_record")
    builder.download_and_prepare()
    src = load_source("vai_tiny_detection", "train", data_dir=str(tmp_path), normaliser=normalise_detection)
    assert len(src) == 4
    assert src.class_names == ["cat", "dog", "bird"]
    seen = set()
    for i in range(4):
        r = src[i]
        k = int(r["image"][0, 0, 0]) // 10  # the example index, written into the pixels
        h, w, m = [(12, 16, 0), (20, 10, 1), (9, 9, 2), (14, 18, 1)][k]
        seen.add(k)
        assert r["image"].shape == (h, w, 3) and r["image"].dtype == np.uint8
        assert r["boxes"].shape == (m, 4) and r["classes"].shape == (m,)
        np.testing.assert_allclose(r["boxes"], np.tile([[0.5 * w, 0.25 * h, 1.0 * w, 0.75 * h]], (m, 1)), rtol=1e-6)
        assert np.all(r["classes"] == k % 3)
    assert seen == {0, 1, 2, 3}


def test_cifar10_mock_two_hosts_disjoint_and_covering():
    with tfds.testing.mock_data(num_examples=12):
        src = load_source("cifar10", "train")
        keys = [src[i]["image"].tobytes() for i in range(len(src))]
        assert len(set(keys)) == 12 and src[3]["image"].tobytes() == keys[3]  # distinct, stable per index
        seen = []
        for host in range(2):
            opts = grain.ShardOptions(shard_index=host, shard_count=2, drop_remainder=True)
            batches = list(make_loader(src, batch_size=4, seed=3, num_epochs=1, shard_options=opts))
            assert len(batches) == 3 and all(b["image"].shape == (2, 32, 32, 3) for b in batches)
            seen.append({img.tobytes() for b in batches for img in b["image"]})
    assert len(seen[0]) == len(seen[1]) == 6
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(keys)


def test_array_source_records_and_length_checks():
    from vai_jax.data.sources import ArraySource

    images = np.arange(3 * 2 * 2 * 3, dtype=np.uint8).reshape(3, 2, 2, 3)
    src = ArraySource({"image": images, "label": np.array([4, 5, 6], np.int32)})
    assert len(src) == 3
    np.testing.assert_array_equal(src[1]["image"], images[1])
    assert src[2]["label"] == 6
    with pytest.raises(ValueError, match="share their first-axis length"):
        ArraySource({"image": images, "label": np.zeros(2, np.int32)})
    with pytest.raises(ValueError, match="at least one array"):
        ArraySource({})


def test_select_keys_keeps_only_the_named_fields():
    from vai_jax.data.sources import ArraySource, SelectKeys

    src = ArraySource({"image": np.arange(12).reshape(3, 4), "label": np.array([1, 2, 3]),
                       "extra": np.zeros(3)})
    view = SelectKeys(src, ("image", "label"))
    assert len(view) == 3
    assert sorted(view[1]) == ["image", "label"]
    np.testing.assert_array_equal(view[1]["image"], [4, 5, 6, 7])
    with pytest.raises(KeyError, match="no field"):
        SelectKeys(src, ("nope",))[0]
    with pytest.raises(ValueError, match="keys must be"):
        SelectKeys(src, "image")


def test_random_batches_are_seeded_distinct_and_resumable():
    from vai_jax.data.sources import RandomBatches

    arrays = {"x": np.arange(20), "y": np.arange(20) * 10}
    it = RandomBatches(arrays, 8, seed=3)
    first = [next(it) for _ in range(3)]
    for b in first:
        assert len(set(b["x"].tolist())) == 8  # distinct examples within a batch
        np.testing.assert_array_equal(b["y"], b["x"] * 10)  # fields stay aligned
    assert not np.array_equal(first[0]["x"], first[1]["x"])
    state = it.get_state()
    after = next(it)
    again = RandomBatches(arrays, 8, seed=3)
    again.set_state(state)
    np.testing.assert_array_equal(next(again)["x"], after["x"])  # resumes at the position
    other_seed = next(RandomBatches(arrays, 8, seed=4))
    assert not np.array_equal(other_seed["x"], first[0]["x"])
    with pytest.raises(ValueError, match="batch_size must be an integer in \\[1, 20\\]"):
        RandomBatches(arrays, 21)
