"""Batching, sharding, shuffling and resumable iteration over random-access sources (grain).

A *source* is anything with ``__len__`` and ``__getitem__(int) -> record``: a
``tfds.data_source`` (through :func:`vai_jax.data.sources.load_source`), a
:class:`vai_jax.data.coco.CocoSource`, the built-in ``ShapesDataset``, or a plain list.
A *record* is a dict of NumPy arrays in the project's convention (see ``OBJECT_KEYS`` and
CONTRACTS.md): ``image`` uint8 ``[H, W, 3]``; ``label`` int32 ``[]``; per-object ``boxes``
float32 ``[M, 4]`` as ``[x1, y1, x2, y2]`` pixels in the continuous frame of
:mod:`vai_jax.ops.coords`, ``classes`` int32 ``[M]``, ``valid`` bool ``[M]``, ``masks`` bool
``[M, H, W]``, ``keypoints`` float32 ``[M, K, 3]`` as ``[x, y, v]``.

:func:`make_loader` builds a ``grain.DataLoader`` over an ``IndexSampler``: per-host sharding
(``jax.process_index()/process_count()`` by default), per-epoch shuffling, per-record
transforms with a random generator that is a function of ``(seed, global record index)`` only,
padding of per-object fields to a static ``max_objects`` and batching to static shapes.
Its iterator's ``get_state()``/``set_state()`` checkpoint and restore the exact data position.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Mapping, Sequence

import grain.python as grain
import numpy as np

from vai_jax._validation import check_int

Record = dict
Transform = Callable[[Record, np.random.Generator], Record]

# Keys whose leading axis is the object axis M; pad_objects pads exactly these.
OBJECT_KEYS = ("boxes", "classes", "valid", "masks", "keypoints", "crowd", "difficult", "areas")
# Fill value per padded object key (everything else pads with zeros).
_PAD_VALUES = {"valid": False}
_OVERFLOW_MODES = ("error", "drop")
DROPPED_KEY = "num_dropped_objects"


def pad_objects(record: Mapping[str, Any], max_objects: int, *, on_overflow: str = "error") -> Record:
    """Pad (or refuse to truncate) the per-object fields of one record to ``max_objects``.

    Args:
      record: a record; its keys in ``OBJECT_KEYS`` must share the leading size ``M``.
      max_objects: static object count ``N`` of the output.
      on_overflow: what to do when ``M > N``: ``"error"`` raises ValueError; ``"drop"`` keeps
        the first ``N`` objects, emits a ``UserWarning`` and records the number dropped in the
        int32 scalar field ``"num_dropped_objects"`` (present in every record when ``"drop"``,
        so batches stay uniform and the trainer can sum it).

    Returns:
      A new record with every present object key padded to leading size ``N`` (zeros; ``valid``
      padded with False) and ``valid`` bool ``[N]`` added when it was absent (True for the
      ``M`` real objects). A record without object keys is returned unchanged (apart from
      ``num_dropped_objects`` under ``"drop"``).

    Raises:
      ValueError: inconsistent object counts, ``M > N`` under ``"error"``, or a bad argument.
    """
    if on_overflow not in _OVERFLOW_MODES:
        raise ValueError(f"on_overflow must be one of {_OVERFLOW_MODES}; got {on_overflow!r}")
    if int(max_objects) < 0:
        raise ValueError(f"max_objects must be >= 0; got {max_objects}")
    out = dict(record)
    present = [k for k in OBJECT_KEYS if k in out]
    dropped = 0
    if present:
        arrays = {k: np.asarray(out[k]) for k in present}
        counts = {k: (a.shape[0] if a.ndim else -1) for k, a in arrays.items()}
        if len(set(counts.values())) != 1 or -1 in counts.values():
            raise ValueError(
                f"per-object fields must share the leading object axis M; got leading sizes {counts}"
            )
        m = next(iter(counts.values()))
        if "valid" not in arrays:
            arrays["valid"] = np.ones((m,), dtype=bool)
        if m > max_objects:
            if on_overflow == "error":
                raise ValueError(
                    f"record has {m} objects but max_objects={max_objects}; raise max_objects or "
                    f"pass on_overflow='drop' to keep the first {max_objects} (counted in "
                    f"'{DROPPED_KEY}')"
                )
            dropped = m - int(max_objects)
            warnings.warn(
                f"record has {m} objects > max_objects={max_objects}: dropping {dropped} "
                f"(counted in '{DROPPED_KEY}')",
                stacklevel=2,
            )
        for k, a in arrays.items():
            n_keep = min(m, int(max_objects))
            pad = np.full((int(max_objects),) + a.shape[1:], _PAD_VALUES.get(k, 0), dtype=a.dtype)
            pad[:n_keep] = a[:n_keep]
            out[k] = pad
    if on_overflow == "drop":
        out[DROPPED_KEY] = np.int32(dropped)
    return out


# Keys holding class ids: one per record (``label``), per object (``classes``, where ``valid``) or
# per pixel (``semantic``); check_record checks each present one against the class count.
LABEL_KEYS = ("label", "classes", "semantic")


def check_record(record: Mapping[str, Any], num_classes: int, *,
                 ignore_label: int | None = None) -> None:
    """Host-side check of one record's targets before they enter a jitted step.

    Checks every present key of ``LABEL_KEYS`` (class ids in ``[0, num_classes)`` or
    ``ignore_label``; for ``classes`` only the objects with ``valid`` True, padding may hold
    anything) and ``boxes`` ``[M, 4]`` of valid objects (finite ``[x1, y1, x2, y2]`` with
    ``x2 >= x1`` and ``y2 >= y1``).

    Raises:
      ValueError: naming the record (its ``image_id`` when it has one), the key, the count and
        the first offending entry.
    """
    from vai_jax._validation import check_boxes, check_labels

    num_classes = check_int(num_classes, "num_classes", ge=1)
    where = (f"record with image_id {int(np.asarray(record['image_id']))}"
             if "image_id" in record else "record")
    valid = None
    if "valid" in record:
        valid = np.asarray(record["valid"]).astype(bool).reshape(-1)
    for key in LABEL_KEYS:
        if key not in record:
            continue
        values = np.asarray(record[key])
        if not np.issubdtype(values.dtype, np.integer):
            raise ValueError(f"{where}: {key} must hold integer class ids; got dtype {values.dtype}")
        if key == "classes" and valid is not None and valid.shape == values.shape[:1]:
            values = values[valid]
        check_labels(values, num_classes, f"{where}: {key}", ignore_label=ignore_label)
    if "boxes" in record:
        boxes = np.asarray(record["boxes"], np.float32).reshape(-1, 4)
        if valid is not None and valid.shape == boxes.shape[:1]:
            boxes = boxes[valid]
        check_boxes(boxes, f"{where}: boxes (of valid objects)")


def per_host_batch_size(batch_size: int, shard_count: int) -> int:
    """``batch_size // shard_count``; ValueError unless it divides exactly and is >= 1."""
    if int(batch_size) <= 0:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    if int(shard_count) <= 0:
        raise ValueError(f"shard_count must be >= 1; got {shard_count}")
    if batch_size % shard_count:
        raise ValueError(
            f"batch_size (global) must be divisible by the number of hosts/shards; got "
            f"batch_size={batch_size} and shard_count={shard_count} "
            f"(remainder {batch_size % shard_count})"
        )
    return batch_size // shard_count


def stack_records(records: Sequence[Mapping[str, Any]]) -> Record:
    """Stack records into a batch: every key -> ``np.stack`` along a new leading axis.

    Raises:
      ValueError: the records differ in keys or in the shape of some key (names the key and
        the shapes; add a resize/crop transform or ``max_objects`` to get static shapes).
    """
    keys = list(records[0].keys())
    for r in records[1:]:
        if list(r.keys()) != keys and set(r.keys()) != set(keys):
            raise ValueError(
                f"records in a batch must have the same keys; got {sorted(keys)} and {sorted(r.keys())}"
            )
    batch = {}
    for k in keys:
        values = [np.asarray(r[k]) for r in records]
        shapes = {v.shape for v in values}
        if len(shapes) != 1:
            raise ValueError(
                f"records in a batch must have equal shapes; key {k!r} has shapes "
                f"{sorted(shapes)} (add a resize/crop transform, or max_objects for per-object keys)"
            )
        batch[k] = np.stack(values)
    return batch


class _ApplyTransforms(grain.RandomMapTransform):
    """Runs the user transforms in order on one record with the record's generator."""

    def __init__(self, transforms: Sequence[Transform]):
        self._transforms = tuple(transforms)

    def random_map(self, element, rng: np.random.Generator):
        for t in self._transforms:
            element = t(element, rng)
        return element


class _CheckRecords(grain.MapTransform):
    def __init__(self, num_classes: int, ignore_label: int | None):
        self._num_classes, self._ignore_label = num_classes, ignore_label

    def map(self, element):
        check_record(element, self._num_classes, ignore_label=self._ignore_label)
        return element


class _PadObjects(grain.MapTransform):
    def __init__(self, max_objects: int, on_overflow: str):
        self._max_objects = int(max_objects)
        self._on_overflow = on_overflow

    def map(self, element):
        return pad_objects(element, self._max_objects, on_overflow=self._on_overflow)


class _SeededIndexSampler(grain.IndexSampler):
    """``grain.IndexSampler`` whose per-record generator is seeded by ``SeedSequence((seed, index))``.

    grain's own sampler keys Philox with ``seed + index``, so seeds ``s`` and ``s + 1`` would
    share the same generators shifted by one record; hashing the pair avoids that. ``index``
    is the global position in the sampled sequence (epoch-aware, independent of the number of
    hosts and workers), so augmentation is reproducible and differs between epochs.
    """

    def __init__(self, *args, rng_seed: int, **kwargs):
        super().__init__(*args, **kwargs)
        self._rng_seed = int(rng_seed)

    def __getitem__(self, index: int):
        metadata = super().__getitem__(index)
        metadata.rng = np.random.Generator(
            np.random.Philox(np.random.SeedSequence((self._rng_seed, int(index))))
        )
        return metadata

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, rng=SeedSequence(seed, index))"


class _StableReprSource:
    """Wraps a source so grain's checkpoint validation sees a repr without memory addresses."""

    def __init__(self, source):
        self._source = source

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index):
        return self._source[index]

    def __repr__(self) -> str:
        if type(self._source).__repr__ is object.__repr__:
            return f"{type(self._source).__qualname__}(len={len(self._source)})"
        return repr(self._source)


def _allow_unparsed_absl_flags() -> None:
    """grain 0.2.18 reads an absl flag directly when starting workers, which raises
    ``UnparsedFlagAccessError`` in programs that never parsed flags (pytest, notebooks).
    Marking the (unparsed) flags as parsed keeps every default; a later ``app.run`` still
    parses argv normally."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def make_loader(
    source,
    *,
    batch_size: int,
    seed: int,
    shuffle: bool = True,
    num_epochs: int | None = None,
    transforms: Transform | Sequence[Transform] | None = None,
    max_objects: int | None = None,
    on_overflow: str = "error",
    drop_remainder: bool = True,
    worker_count: int = 0,
    worker_buffer_size: int = 1,
    shard_options: grain.ShardOptions | None = None,
    read_options: grain.ReadOptions | None = None,
    num_classes: int | None = None,
    ignore_label: int | None = None,
) -> grain.DataLoader:
    """A resumable, sharded, shuffled, batched loader over a random-access source.

    Args:
      source: ``__len__`` + ``__getitem__(int) -> record`` (dict of NumPy arrays).
      batch_size: GLOBAL batch size; each host yields ``batch_size // shard_count`` records per
        batch (ValueError unless divisible).
      seed: non-negative 32-bit int; drives the per-epoch shuffle and the per-record generators.
      shuffle: reshuffle the (per-host) records each epoch.
      num_epochs: number of passes; ``None`` repeats forever.
      transforms: a callable ``(record, rng: np.random.Generator) -> record`` or a sequence of
        them, applied in order. ``rng`` is a function of ``(seed, global record index)`` only,
        so outputs do not depend on ``worker_count`` or timing.
      max_objects: pad the per-object keys (``OBJECT_KEYS``) to this static size and add
        ``valid`` (see :func:`pad_objects`); ``None`` leaves records as the transforms left them.
      on_overflow: ``"error"`` or ``"drop"`` for records with more than ``max_objects`` objects.
      drop_remainder: drop the last partial batch (keeps shapes static). Sharding always drops
        the records that do not split evenly over hosts, so every host sees the same count.
      worker_count: grain worker processes (0 = in-process). Source and transforms must pickle.
      worker_buffer_size: batches each worker prepares ahead.
      shard_options: ``grain.ShardOptions``; default ``grain.ShardByJaxProcess(drop_remainder=True)``
        (host ``jax.process_index()`` of ``jax.process_count()``).
      read_options: ``grain.ReadOptions``: threads reading ``source[i]`` (and running a source's
        own decoding/normalising) ahead of the transforms; grain's default is 16 threads with a
        500-record buffer.
      num_classes: the task's class count: every record is checked by :func:`check_record`
        after the transforms (class ids of ``label`` / ``classes`` / ``semantic`` in
        ``[0, num_classes)``, finite, non-inverted boxes), so that no bad target reaches a
        jitted step, where it could not raise. ``None`` checks nothing.
      ignore_label: a label value allowed besides ``[0, num_classes)`` (segmentation's 255).

    Returns:
      ``grain.DataLoader``. ``it = iter(loader)``; ``next(it)`` is a dict of NumPy arrays with
      leading axis ``batch_size // shard_count`` (``StopIteration`` after ``num_epochs``).
      ``it.get_state() -> bytes`` and ``it.set_state(bytes)`` save/restore the exact position
      (orbax: ``grain.PyGrainCheckpointSave`` / ``grain.PyGrainCheckpointRestore``).

    Raises:
      ValueError / TypeError: bad arguments (named in the message). While iterating:
      ValueError from :func:`check_record` for a record with bad targets.
    """
    if not (hasattr(source, "__len__") and hasattr(source, "__getitem__")):
        raise TypeError(
            f"source must be a random-access source with __len__ and __getitem__; got {type(source).__name__}"
        )
    if len(source) <= 0:
        raise ValueError(f"source must hold at least one record; got len(source)={len(source)}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an int in [0, 2**32); got {seed!r}")
    if num_epochs is not None and int(num_epochs) <= 0:
        raise ValueError(f"num_epochs must be >= 1 or None (infinite); got {num_epochs}")
    if int(worker_count) < 0:
        raise ValueError(f"worker_count must be >= 0; got {worker_count}")
    if on_overflow not in _OVERFLOW_MODES:
        raise ValueError(f"on_overflow must be one of {_OVERFLOW_MODES}; got {on_overflow!r}")
    if max_objects is not None and int(max_objects) < 0:
        raise ValueError(f"max_objects must be >= 0 or None; got {max_objects}")
    if num_classes is not None:
        check_int(num_classes, "num_classes", ge=1)
    if ignore_label is not None:
        check_int(ignore_label, "ignore_label")
    batch_size = check_int(batch_size, "batch_size", ge=1)
    if shard_options is None:
        shard_options = grain.ShardByJaxProcess(drop_remainder=True)
    if not isinstance(shard_options, grain.ShardOptions):
        raise TypeError(f"shard_options must be a grain.ShardOptions; got {type(shard_options).__name__}")
    local_batch = per_host_batch_size(int(batch_size), shard_options.shard_count)
    if len(source) < shard_options.shard_count:
        raise ValueError(
            f"source has {len(source)} records, fewer than the {shard_options.shard_count} shards"
        )

    if transforms is None:
        transforms = ()
    elif callable(transforms):
        transforms = (transforms,)
    transforms = tuple(transforms)
    for i, t in enumerate(transforms):
        if not callable(t):
            raise TypeError(f"transforms[{i}] must be callable (record, rng) -> record; got {type(t).__name__}")

    operations: list = []
    if transforms:
        operations.append(_ApplyTransforms(transforms))
    if num_classes is not None:
        operations.append(_CheckRecords(int(num_classes), ignore_label))
    if max_objects is not None:
        operations.append(_PadObjects(int(max_objects), on_overflow))
    operations.append(
        grain.Batch(batch_size=local_batch, drop_remainder=drop_remainder, batch_fn=stack_records)
    )
    sampler = _SeededIndexSampler(
        num_records=len(source),
        shard_options=shard_options,
        shuffle=shuffle,
        num_epochs=None if num_epochs is None else int(num_epochs),
        seed=int(seed),
        rng_seed=int(seed),
    )
    if int(worker_count) > 0:
        _allow_unparsed_absl_flags()
    return grain.DataLoader(
        data_source=_StableReprSource(source),
        sampler=sampler,
        operations=operations,
        worker_count=int(worker_count),
        worker_buffer_size=int(worker_buffer_size),
        shard_options=shard_options,
        read_options=read_options,
    )
