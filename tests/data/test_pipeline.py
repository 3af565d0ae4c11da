"""make_loader: static batches, per-host sharding, resumable state, deterministic randomness,
targets checked against the class count."""
import warnings

import grain.python as grain
import numpy as np
import pytest

from vai_jax.data.pipeline import (DROPPED_KEY, check_record, make_loader, pad_objects,
                                   per_host_batch_size, stack_records)
from vai_jax.data.transforms import ColorJitter


class IndexSource:
    """Record i carries i, so every batch shows which records it holds."""

    def __init__(self, n, num_objects=None):
        self.n = n
        self.num_objects = num_objects

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        r = {"image": np.full((4, 5, 3), i % 256, np.uint8), "label": np.int32(i)}
        if self.num_objects is not None:
            m = self.num_objects(i)
            r["boxes"] = np.tile(np.array([[0, 0, 2, 2]], np.float32) + i, (m, 1))
            r["classes"] = np.full((m,), i, np.int32)
        return r


def add_noise(record, rng):
    out = dict(record)
    out["noise"] = rng.random(3)
    return out


def _take(it, n):
    return [next(it) for _ in range(n)]


def _assert_batches_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])


def test_static_batches_and_epoch_coverage():
    loader = make_loader(IndexSource(10), batch_size=4, seed=3, num_epochs=1, shard_options=grain.NoSharding())
    batches = list(loader)
    assert len(batches) == 2  # 10 records, drop_remainder
    for b in batches:
        assert b["image"].shape == (4, 4, 5, 3) and b["image"].dtype == np.uint8
        assert b["label"].shape == (4,) and b["label"].dtype == np.int32
    labels = np.concatenate([b["label"] for b in batches])
    assert len(set(labels.tolist())) == 8  # no repeats within an epoch
    assert labels.tolist() != sorted(labels.tolist())  # shuffled
    kept = list(make_loader(IndexSource(10), batch_size=4, seed=3, num_epochs=1, drop_remainder=False,
                            shard_options=grain.NoSharding()))
    assert [b["label"].shape[0] for b in kept] == [4, 4, 2]
    assert sorted(np.concatenate([b["label"] for b in kept]).tolist()) == list(range(10))


def test_unshuffled_order_and_reshuffle_per_epoch():
    plain = list(make_loader(IndexSource(6), batch_size=3, seed=0, shuffle=False, num_epochs=1,
                             shard_options=grain.NoSharding()))
    assert np.concatenate([b["label"] for b in plain]).tolist() == list(range(6))
    two = list(make_loader(IndexSource(12), batch_size=12, seed=0, num_epochs=2, shard_options=grain.NoSharding()))
    e1, e2 = two[0]["label"].tolist(), two[1]["label"].tolist()
    assert sorted(e1) == sorted(e2) == list(range(12)) and e1 != e2


@pytest.mark.parametrize("n", [12, 13])
def test_two_hosts_get_disjoint_shards_covering_the_epoch(n):
    per_host = []
    for host in range(2):
        opts = grain.ShardOptions(shard_index=host, shard_count=2, drop_remainder=True)
        batches = list(make_loader(IndexSource(n), batch_size=4, seed=7, num_epochs=1, drop_remainder=False,
                                   shard_options=opts))
        assert all(b["label"].shape[0] <= 2 for b in batches)  # per-host batch = 4 // 2
        assert batches[0]["label"].shape[0] == 2
        per_host.append(np.concatenate([b["label"] for b in batches]).tolist())
    a, b = set(per_host[0]), set(per_host[1])
    assert len(per_host[0]) == len(a) and len(per_host[1]) == len(b)
    assert not a & b
    assert len(a) == len(b) == n // 2  # equal shares; the odd record out is dropped
    if n % 2 == 0:
        assert a | b == set(range(n))


def test_batch_size_must_divide_over_hosts():
    with pytest.raises(ValueError, match="divisible"):
        make_loader(IndexSource(8), batch_size=5, seed=0, shard_options=grain.ShardOptions(0, 2))
    assert per_host_batch_size(8, 4) == 2


def test_checkpoint_state_resumes_exact_position():
    kwargs = dict(batch_size=4, seed=11, transforms=add_noise, shard_options=grain.NoSharding())
    it = iter(make_loader(IndexSource(10), **kwargs))  # infinite, crosses epochs
    _take(it, 3)
    state = it.get_state()
    assert isinstance(state, bytes)
    expected = _take(it, 2)
    fresh = iter(make_loader(IndexSource(10), **kwargs))
    fresh.set_state(state)
    _assert_batches_equal(_take(fresh, 2), expected)


def test_orbax_checkpoint_round_trip(tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    kwargs = dict(batch_size=2, seed=2, transforms=add_noise, shard_options=grain.NoSharding())
    it = iter(make_loader(IndexSource(10), **kwargs))
    _take(it, 4)
    ckpt = ocp.Checkpointer(grain.PyGrainCheckpointHandler())
    ckpt.save(tmp_path / "data", args=grain.PyGrainCheckpointSave(it))
    expected = _take(it, 3)
    fresh = iter(make_loader(IndexSource(10), **kwargs))
    ckpt.restore(tmp_path / "data", args=grain.PyGrainCheckpointRestore(fresh))
    _assert_batches_equal(_take(fresh, 3), expected)


def test_per_record_randomness_depends_on_seed_and_index_only():
    kwargs = dict(batch_size=4, num_epochs=1, transforms=add_noise, shard_options=grain.NoSharding())
    a = list(make_loader(IndexSource(8), seed=5, **kwargs))
    b = list(make_loader(IndexSource(8), seed=5, **kwargs))
    _assert_batches_equal(a, b)
    c = list(make_loader(IndexSource(8), seed=6, **kwargs))
    assert not np.allclose(a[0]["noise"], c[0]["noise"])
    # Within a run, distinct records get distinct draws; unshuffled seed s and s+1 do not share
    # draws shifted by one record (grain's own sampler keys its generator with seed + index).
    noise = np.concatenate([x["noise"] for x in a])
    assert len(np.unique(noise[:, 0])) == 8
    s0 = list(make_loader(IndexSource(8), seed=0, shuffle=False, **kwargs))
    s1 = list(make_loader(IndexSource(8), seed=1, shuffle=False, **kwargs))
    n0, n1 = np.concatenate([x["noise"] for x in s0]), np.concatenate([x["noise"] for x in s1])
    assert not np.isin(n1[:, 0], n0[:, 0]).any()


def test_worker_processes_give_the_same_batches():
    # A list source and a library transform: both pickle into the spawned worker.
    records = [IndexSource(6)[i] for i in range(6)]
    kwargs = dict(batch_size=2, seed=4, num_epochs=1, transforms=ColorJitter(brightness=0.5),
                  shard_options=grain.NoSharding())
    in_process = list(make_loader(records, **kwargs))
    with_worker = list(make_loader(records, worker_count=1, **kwargs))
    _assert_batches_equal(in_process, with_worker)


def test_pad_objects_pads_and_reports_overflow():
    rec = IndexSource(3, num_objects=lambda i: i + 1)[2]  # 3 objects
    out = pad_objects(rec, 5)
    assert out["boxes"].shape == (5, 4) and out["classes"].shape == (5,)
    np.testing.assert_array_equal(out["valid"], [True, True, True, False, False])
    np.testing.assert_array_equal(out["boxes"][:3], rec["boxes"])
    assert np.all(out["boxes"][3:] == 0) and np.all(out["classes"][3:] == 0)
    assert out["image"] is rec["image"]
    with pytest.raises(ValueError, match="3 objects.*max_objects=2"):
        pad_objects(rec, 2)
    with pytest.warns(UserWarning, match="dropping 1"):
        dropped = pad_objects(rec, 2, on_overflow="drop")
    assert dropped[DROPPED_KEY] == 1 and dropped["boxes"].shape == (2, 4)
    with pytest.raises(ValueError, match="leading"):
        pad_objects(dict(rec, classes=np.zeros(2, np.int32)), 5)


def test_loader_pads_to_max_objects_and_counts_drops():
    src = IndexSource(8, num_objects=lambda i: i % 4)  # 0..3 objects
    batches = list(make_loader(src, batch_size=4, seed=0, num_epochs=1, max_objects=3,
                               shard_options=grain.NoSharding()))
    for b in batches:
        assert b["boxes"].shape == (4, 3, 4) and b["valid"].shape == (4, 3)
        np.testing.assert_array_equal(b["valid"].sum(1), b["label"] % 4)
    with pytest.raises(ValueError, match="max_objects=2"):
        list(make_loader(src, batch_size=4, seed=0, num_epochs=1, max_objects=2, shard_options=grain.NoSharding()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = list(make_loader(src, batch_size=4, seed=0, num_epochs=1, max_objects=2, on_overflow="drop",
                                   shard_options=grain.NoSharding()))
    dropped = np.concatenate([b[DROPPED_KEY] for b in batches])
    labels = np.concatenate([b["label"] for b in batches])
    np.testing.assert_array_equal(dropped, np.maximum(labels % 4 - 2, 0))
    assert dropped.sum() == 2  # records 3 and 7 have 3 objects each


def test_ragged_records_fail_with_a_named_key():
    with pytest.raises(ValueError, match="'image'.*shapes"):
        stack_records([{"image": np.zeros((2, 2, 3))}, {"image": np.zeros((3, 2, 3))}])


def test_bad_arguments():
    with pytest.raises(TypeError, match="source"):
        make_loader(42, batch_size=2, seed=0)
    with pytest.raises(ValueError, match="seed"):
        make_loader(IndexSource(4), batch_size=2, seed=-1)
    with pytest.raises(ValueError, match="num_epochs"):
        make_loader(IndexSource(4), batch_size=2, seed=0, num_epochs=0)
    with pytest.raises(ValueError, match="on_overflow"):
        make_loader(IndexSource(4), batch_size=2, seed=0, on_overflow="ignore")
    with pytest.raises(TypeError, match=r"transforms\[1\]"):
        make_loader(IndexSource(4), batch_size=2, seed=0, transforms=[add_noise, 3])


def test_default_sharding_uses_jax_process():
    import jax

    loader = make_loader(IndexSource(8), batch_size=4, seed=0, num_epochs=1)
    b = next(iter(loader))
    assert b["label"].shape == (4 // jax.process_count(),)


def test_shapes_dataset_through_make_loader():
    shapes = pytest.importorskip("vai_jax.data.shapes")
    from vai_jax.data.transforms import RandomAffine

    ds = shapes.ShapesDataset("detection", split="train", num_examples=8, image_size=32)
    aff = RandomAffine(rotation=20.0, scale=(0.9, 1.1), flip_prob=0.5, flip_permutation=shapes.FLIP_PERMUTATION)
    loader = make_loader(ds, batch_size=4, seed=0, num_epochs=1, transforms=aff, shard_options=grain.NoSharding())
    for b in loader:
        assert b["image"].shape == (4, 32, 32, 3)
        n = b["valid"].shape[1]
        assert b["boxes"].shape == (4, n, 4) and b["masks"].shape == (4, n, 32, 32)
        np.testing.assert_array_equal(b["num_objects"], b["valid"].sum(1))



def test_check_record_names_the_record_key_and_entry():
    rec = {"image_id": np.int32(7), "label": np.int32(2), "valid": np.array([True, False]),
           "classes": np.array([1, 99], np.int32),  # 99 is padding
           "boxes": np.array([[0, 0, 2, 2], [np.nan, 0, 0, 0]], np.float32)}
    check_record(rec, 3)
    with pytest.raises(ValueError, match=r"record with image_id 7: label must hold class ids in "
                                         r"\[0, 2\); found 1 outside, values \[2\]"):
        check_record(rec, 2)
    bad = dict(rec, classes=np.array([-1, 0], np.int32))
    with pytest.raises(ValueError, match=r"image_id 7: classes .* values \[-1\]"):
        check_record(bad, 3)
    inverted = dict(rec, boxes=np.array([[3, 0, 2, 2], [0, 0, 1, 1]], np.float32))
    with pytest.raises(ValueError, match=r"image_id 7: boxes \(of valid objects\) must be "
                                         r"\[x1, y1, x2, y2\] boxes with x2 >= x1"):
        check_record(inverted, 3)
    semantic = {"semantic": np.array([[0, 255], [4, 1]], np.int32)}
    check_record(semantic, 5, ignore_label=255)
    with pytest.raises(ValueError, match=r"record: semantic must hold class ids in \[0, 4\) or "
                                         r"the ignore label 255; found 1 outside, the first at "
                                         r"index \(1, 0\)"):
        check_record(semantic, 4, ignore_label=255)
    with pytest.raises(ValueError, match="label must hold integer class ids; got dtype float32"):
        check_record({"label": np.float32(1)}, 3)


def test_loader_with_num_classes_rejects_a_bad_record():
    kwargs = dict(batch_size=2, seed=0, num_epochs=1, shuffle=False,
                  shard_options=grain.NoSharding())
    assert len(list(make_loader(IndexSource(4), num_classes=4, **kwargs))) == 2
    with pytest.raises(ValueError, match=r"record: label must hold class ids in \[0, 3\); found "
                                         r"1 outside, values \[3\]"):
        list(make_loader(IndexSource(4), num_classes=3, **kwargs))
    for bad, error, match in (({"num_classes": 0}, ValueError, "num_classes must be an int >= 1"),
                              ({"num_classes": 2.0}, TypeError, "num_classes must be an int"),
                              ({"batch_size": 2.5}, TypeError, "batch_size must be an int; got "
                                                               "float"),
                              ({"ignore_label": "void"}, TypeError, "ignore_label must be an int")):
        with pytest.raises(error, match=match):
            make_loader(IndexSource(4), **{**kwargs, **bad})
