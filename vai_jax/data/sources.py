"""Named tfds data sets as random-access sources of records in the project's convention.

``tfds.data_source`` reads prepared ``array_record`` files and decodes images with PIL/OpenCV
— TensorFlow is NOT needed to read. Preparing a data set (``tfds build NAME
--file_format=array_record`` or ``download=True``) runs the builder's encoders, which for most
image data sets need TensorFlow; prepare once on a machine with ``tensorflow-cpu`` (the
``[tf]`` extra) or copy the prepared ``~/tensorflow_datasets`` folder.

Every record is mapped by a normaliser to the record convention (see
:mod:`vai_jax.data.pipeline`): ``image`` uint8 ``[H, W, 3]`` (grey tiled to three channels,
alpha dropped); ``label`` int32 ``[]``; ``boxes`` float32 ``[M, 4]`` as ``[x1, y1, x2, y2]``
pixels in the continuous frame of :mod:`vai_jax.ops.coords` (tfds stores boxes as normalised
``[ymin, xmin, ymax, xmax]``: ``x1 = xmin·W``, ``y1 = ymin·H``, ...); ``classes`` int32 ``[M]``
(tfds label ids, already contiguous); ``valid`` bool ``[M]``; ``difficult``/``crowd`` bool ``[M]``.

Testing without data or TensorFlow: ``with tfds.testing.mock_data(num_examples=n):`` makes
``load_source`` return tfds' random records (default ``MockPolicy.AUTO``, which resolves to
``USE_CODE`` when no metadata is shipped). Its generator draws every ``objects`` sequence with an
independent length, so detection data sets (``voc``) get records whose ``bbox`` and ``label``
lengths disagree (``normalise_detection`` rejects them); pass
``mock_data(as_data_source_fn=lambda self, split, **kw: records)`` with records in the tfds
layout instead (see tests/data/test_sources.py).
"""
from __future__ import annotations

import difflib
import json
from typing import Any, Callable, Mapping, Sequence

import numpy as np

Record = dict
Normaliser = Callable[[Mapping[str, Any]], Record]


def to_rgb_uint8(image: Any, name: str = "image") -> np.ndarray:
    """``[H, W]``, ``[H, W, 1]``, ``[H, W, 3]`` or ``[H, W, 4]`` uint8 -> uint8 ``[H, W, 3]``.

    Grey is tiled to three channels, alpha is dropped. Raises TypeError for a non-uint8 dtype
    and ValueError for another shape, naming ``name``.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"{name} must be uint8 [H, W, 3]; got dtype {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"{name} must have shape [H, W, 1|3|4]; got {image.shape}")
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    elif image.shape[-1] == 4:
        image = image[..., :3]
    return np.ascontiguousarray(image)


def tfds_boxes_to_xyxy(bbox: Any, height: int, width: int) -> np.ndarray:
    """tfds ``BBoxFeature`` boxes ``[M, 4]`` normalised ``[ymin, xmin, ymax, xmax]`` ->
    float32 ``[M, 4]`` pixels ``[x1, y1, x2, y2]`` (``x = xnorm·width``, ``y = ynorm·height``).

    An empty object list (tfds returns ``[]``) gives shape ``[0, 4]``.
    """
    b = np.asarray(bbox, dtype=np.float64)
    if b.size == 0:
        b = b.reshape(0, 4)
    if b.ndim != 2 or b.shape[-1] != 4:
        raise ValueError(f"bbox must have shape [M, 4] ([ymin, xmin, ymax, xmax]); got "
                         f"{b.shape}")
    if b.size and not np.all(np.isfinite(b)):
        raise ValueError("bbox must be finite; got NaN/inf")
    out = np.stack([b[:, 1] * width, b[:, 0] * height, b[:, 3] * width, b[:, 2] * height], axis=-1)
    return out.astype(np.float32)


def normalise_classification(record: Mapping[str, Any]) -> Record:
    """tfds image-classification record (``image``, ``label``) -> ``{"image": uint8 [H, W, 3],
    "label": int32 []}``. Other fields (ids, file names, coarse labels) are dropped."""
    return {
        "image": to_rgb_uint8(record["image"]),
        "label": np.asarray(record["label"], dtype=np.int32).reshape(()),
    }


_OBJECT_FLAGS = {"is_difficult": "difficult", "is_crowd": "crowd"}


def normalise_detection(record: Mapping[str, Any]) -> Record:
    """tfds detection record (``image``, ``objects: {bbox, label, [is_difficult], [is_crowd]}``,
    as in ``voc`` and ``coco``) -> ``image`` uint8 ``[H, W, 3]``, ``boxes`` float32 ``[M, 4]``
    pixels ``[x1, y1, x2, y2]``, ``classes`` int32 ``[M]``, ``valid`` bool ``[M]`` (box has
    positive area), ``difficult``/``crowd`` bool ``[M]`` when present, ``image_id`` int32 ``[]``
    when the record has ``image/id``.

    Raises:
      ValueError: the object fields disagree on the object count ``M``.
    """
    image = to_rgb_uint8(record["image"])
    h, w = image.shape[:2]
    objects = record["objects"]
    boxes = tfds_boxes_to_xyxy(objects["bbox"], h, w)
    classes = np.asarray(objects["label"], dtype=np.int32).reshape(-1)
    out = {"image": image, "boxes": boxes, "classes": classes}
    for src, dst in _OBJECT_FLAGS.items():
        if src in objects:
            out[dst] = np.asarray(objects[src], dtype=bool).reshape(-1)
    counts = {k: v.shape[0] for k, v in out.items() if k != "image"}
    if len(set(counts.values())) != 1:
        raise ValueError(f"objects fields must have one length M each; got lengths {counts}")
    out["valid"] = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    if "image/id" in record:
        out["image_id"] = np.asarray(record["image/id"], dtype=np.int32).reshape(())
    return out


# The one explicit table of supported tfds data sets (base name, before "/config" and ":version").
NORMALISERS: dict[str, Normaliser] = {
    "cifar10": normalise_classification,
    "cifar100": normalise_classification,
    "mnist": normalise_classification,
    "fashion_mnist": normalise_classification,
    "imagenet2012": normalise_classification,
    "imagenet2012_subset": normalise_classification,
    "imagenet_v2": normalise_classification,
    "imagenette": normalise_classification,
    "food101": normalise_classification,
    "oxford_flowers102": normalise_classification,
    "voc": normalise_detection,
    "coco": normalise_detection,
}


def base_name(name: str) -> str:
    """``"voc/2012:5.0.0"`` -> ``"voc"``."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str (a tfds name); got {type(name).__name__} {name!r}")
    return name.split(":")[0].split("/")[0].strip()


class NormalisedSource:
    """Random-access source applying a normaliser to every record of a wrapped source.

    ``len(source)`` and ``source[i]`` (normalised record); picklable when the wrapped source
    and the normaliser are (tfds data sources are), so grain workers can use it.
    """

    def __init__(self, source, normaliser: Normaliser, *, name: str = "", split: str = ""):
        if not (hasattr(source, "__len__") and hasattr(source, "__getitem__")):
            raise TypeError(f"source must be a random-access source with __len__ and "
                            f"__getitem__; got {type(source).__name__}")
        if not callable(normaliser):
            raise TypeError(f"normaliser must be callable record -> record; got "
                            f"{type(normaliser).__name__}")
        self._source = source
        self._normaliser = normaliser
        self.name = name
        self.split = split

    @property
    def raw(self):
        """The wrapped (un-normalised) source, e.g. the ``tfds`` data source."""
        return self._source

    @property
    def class_names(self) -> list[str] | None:
        """Label names from the tfds ``DatasetInfo`` (``label`` or ``objects/label``), or None."""
        info = getattr(self._source, "dataset_info", None)
        if info is None:
            return None
        features = info.features
        try:
            if "label" in features:
                return list(features["label"].names)
            if "objects" in features:
                return list(features["objects"]["label"].names)
        except (AttributeError, KeyError, TypeError):
            return None
        return None

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> Record:
        return self._normaliser(self._source[index])

    def __repr__(self) -> str:
        return f"NormalisedSource(name={self.name!r}, split={self.split!r}, len={len(self)})"


def load_source(
    name: str,
    split: str,
    *,
    data_dir: str | None = None,
    download: bool = False,
    normaliser: Normaliser | None = None,
) -> NormalisedSource:
    """A named tfds data set as a random-access source of normalised records.

    Args:
      name: tfds name, optionally with config and version (``"cifar10"``, ``"voc/2012"``,
        ``"imagenet2012:5.1.0"``). Supported out of the box: the keys of ``NORMALISERS``.
      split: tfds split string (``"train"``, ``"validation[:10%]"``).
      data_dir: tfds data folder (default ``~/tensorflow_datasets`` / ``$TFDS_DATA_DIR``).
      download: let tfds download and prepare the data when absent (needs TensorFlow for most
        image builders; see the module docstring).
      normaliser: ``record -> record`` overriding the table entry (needed for tfds data sets
        not in ``NORMALISERS``).

    Returns:
      :class:`NormalisedSource` (``len``, ``[i]`` -> record in the project convention).

    Raises:
      ValueError: unknown data set name (with near matches from ``tfds.list_builders()``), or a
        known tfds data set with no normaliser. FileNotFoundError: the data set is not prepared
        in ``array_record`` format under ``data_dir``.
    """
    import tensorflow_datasets as tfds

    if not isinstance(name, str) or not base_name(name):
        raise ValueError(f"name must be a non-empty tfds data set name; got {name!r}")
    base = base_name(name)
    builders = tfds.list_builders(with_community_datasets=False)
    if base not in builders:
        near = difflib.get_close_matches(base, list(builders) + list(NORMALISERS), n=5)
        hint = f"; did you mean {near}?" if near else ""
        raise ValueError(f"unknown data set name {name!r}: not a tfds builder{hint}")
    if normaliser is None:
        if base not in NORMALISERS:
            raise ValueError(
                f"data set {name!r} has no normaliser to the record convention; supported: "
                f"{sorted(NORMALISERS)}. Pass normaliser=(record -> record) to use it anyway."
            )
        normaliser = NORMALISERS[base]
    try:
        source = tfds.data_source(name, split=split, data_dir=data_dir, download=download)
    except (NotImplementedError, AssertionError, FileNotFoundError) as e:
        where = data_dir or "the default tfds data_dir (~/tensorflow_datasets or $TFDS_DATA_DIR)"
        raise FileNotFoundError(
            f"data set {name!r} (split {split!r}) is not prepared in array_record format under "
            f"{where}. Prepare it with `tfds build {name} --file_format=array_record` (needs "
            f"TensorFlow) or pass download=True. tfds said: {e}"
        ) from e
    return NormalisedSource(source, normaliser, name=name, split=split)


class ArraySource:
    """A random-access source over in-memory arrays: ``len(src)`` is their common first-axis
    length and ``src[i]`` the record ``{key: array[i]}`` — e.g. a materialised split of the
    shapes data, fed to :func:`vai_jax.data.pipeline.make_loader`.

    Args:
      arrays: a non-empty dict of arrays that all have the same first-axis length.
    """

    def __init__(self, arrays: Mapping[str, Any]):
        if not arrays:
            raise ValueError("arrays must hold at least one array; got an empty dict")
        lengths = {k: len(v) for k, v in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"arrays must share their first-axis length; got {lengths}")
        self.arrays = dict(arrays)
        self._length = next(iter(lengths.values()))

    def __len__(self):
        return self._length

    def __getitem__(self, i):
        return {k: v[i] for k, v in self.arrays.items()}


class GeneratedSource:
    """Base of the procedural random-access sources (:class:`vai_jax.data.shapes.ShapesDataset`,
    :class:`vai_jax.data.shapes_sequences.ShapesSequences`): a subclass sets ``num_examples``
    and implements ``get_batch(indices) -> {field: array [len(indices), ...]}``; this class gives
    ``len``, checked integer indexing (negative indices from the end), ``__getitems__`` (grain's
    batched read), iteration and :meth:`materialise`.
    """

    num_examples: int
    materialise_chunk: int = 1000

    def get_batch(self, indices) -> dict:
        raise NotImplementedError

    @property
    def fields(self) -> tuple[str, ...]:
        """The record fields (those of one generated example unless a subclass knows them)."""
        return tuple(self.get_batch([0]))

    def __len__(self) -> int:
        return self.num_examples

    def _index(self, index) -> int:
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an int; got {type(index).__name__} {index!r}")
        i = int(index)
        if i < 0:
            i += self.num_examples
        if not 0 <= i < self.num_examples:
            raise IndexError(f"index {int(index)} is out of range for a data set of length "
                             f"{self.num_examples}")
        return i

    def __getitem__(self, index) -> dict:
        batch = self.get_batch([self._index(index)])
        return {k: v[0] for k, v in batch.items()}

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        batch = self.get_batch(indices)
        return [{k: v[i] for k, v in batch.items()} for i in range(len(indices))]

    def __iter__(self):
        for i in range(self.num_examples):
            yield self[i]

    def materialise(self, keys: Sequence[str] | None = None, *,
                    chunk: int | None = None) -> ArraySource:
        """The whole split generated once (vectorised, ``chunk`` examples per
        :meth:`get_batch`, default ``materialise_chunk``) and kept in memory as an
        :class:`ArraySource`.

        Args:
          keys: the record fields to keep (all of them when ``None``), e.g.
            ``("image", "label")``; unknown names raise ``ValueError`` before anything is
            generated.
          chunk: examples per :meth:`get_batch` call (memory vs overhead).
        """
        from vai_jax._validation import check_int

        chunk = self.materialise_chunk if chunk is None else check_int(chunk, "chunk", ge=1)
        fields = list(self.fields)
        names = fields if keys is None else list(keys)
        unknown = sorted(set(names) - set(fields))
        if unknown:
            raise ValueError(f"keys must be fields of the records {sorted(fields)}; got "
                             f"unknown {unknown}")
        parts = [self.get_batch(range(i, min(i + chunk, self.num_examples)))
                 for i in range(0, self.num_examples, chunk)]
        return ArraySource({k: np.concatenate([p[k] for p in parts]) for k in names})


class SelectKeys:
    """A view of a random-access ``source`` whose records keep only ``keys`` (as NumPy arrays),
    e.g. ``SelectKeys(load_source("cifar10", "train"), ("image", "label"))``."""

    def __init__(self, source, keys: Sequence[str]):
        if isinstance(keys, str) or not len(keys):
            raise ValueError(f"keys must be a non-empty sequence of field names; got {keys!r}")
        self.source, self.keys = source, tuple(keys)

    def __len__(self):
        return len(self.source)

    def __getitem__(self, i):
        record = self.source[i]
        missing = [k for k in self.keys if k not in record]
        if missing:
            raise KeyError(f"record {i} has no field(s) {missing}; it has {sorted(record)}")
        return {k: np.asarray(record[k]) for k in self.keys}


class RandomBatches:
    """Endless seeded random batches from in-memory arrays, resumable.

    Batch ``s`` holds ``batch_size`` distinct examples drawn with ``default_rng((seed, s))``, so
    it depends only on the seed and its position; :meth:`get_state` / :meth:`set_state` save
    and restore the position (the protocol :func:`vai_jax.train.loop.fit` checkpoints).

    Args:
      arrays: a dict of arrays sharing their first-axis length ``N`` (or an
        :class:`ArraySource`).
      batch_size: examples per batch, ``1 <= batch_size <= N``.
      seed: the stream's seed.
    """

    def __init__(self, arrays, batch_size: int, seed: int = 0):
        if isinstance(arrays, ArraySource):
            arrays = arrays.arrays
        n = len(ArraySource(arrays))
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or not 1 <= batch_size <= n:
            raise ValueError(f"batch_size must be an integer in [1, {n}] (the number of "
                             f"examples); got {batch_size!r}")
        self.arrays, self.batch_size, self.seed, self.step, self.n = dict(arrays), int(batch_size), seed, 0, n

    def __iter__(self):
        return self

    def __next__(self):
        rng = np.random.default_rng((self.seed, self.step))
        idx = rng.choice(self.n, self.batch_size, replace=False)
        self.step += 1
        return {k: v[idx] for k, v in self.arrays.items()}

    def get_state(self) -> bytes:
        return json.dumps({"step": self.step}).encode()

    def set_state(self, state: bytes) -> None:
        self.step = int(json.loads(state)["step"])
