"""The built-in procedural shapes data set: the default data of every experiment.

RGB images of circles, squares, triangles, stars, crosses and ellipses at random colour, scale,
position and rotation over textured, noisy backgrounds. Later objects are drawn over earlier ones
and the masks, boxes and keypoint visibilities reflect that occlusion. Nothing is downloaded:
each example is generated on demand from ``np.random.default_rng([seed, split_id, index])``, so
the same ``(seed, split, index)`` and settings give the same bytes on any machine, independently of
batching. Geometry and keypoint definitions: :mod:`vai_jax.data.shapes_geometry`.

Frame: pixel (row i, col j) covers ``[j, j+1) x [i, i+1)``, centre ``(j + 0.5, i + 0.5)``; a pixel
is in an object's mask when its centre lies inside the shape.

Tasks and record keys (``M = max_objects``, ``K = NUM_KEYPOINTS = 6``)::

  "classification"  one large object, fully inside the frame (the same scenes as "keypoints")
      image      uint8  [H, W, 3]
      label      int32  []           class id in [0, NUM_CLASSES)
  "keypoints"       one large object, fully inside the frame (M = 1)
  "detection"       1..6 objects by default, may be cut by the border and overlap
  "multi_keypoints" 2..4 objects by default (same keys as "detection")
      image      uint8  [H, W, 3]
      label      int32  []           class of object 0 (the first drawn)
      boxes      float32 [M, 4]      [x1, y1, x2, y2] tight box of the VISIBLE mask:
                                     [min col, min row, max col + 1, max row + 1]; 0 for padding
      classes    int32  [M]          class ids; 0 for padding
      valid      bool   [M]          real object; valid objects come first, in drawing order
      num_objects int32 []           number of valid objects
      masks      bool   [M, H, W]    visible instance masks (not covered by later objects)
      keypoints  float32 [M, K, 3]   [x, y, v], exact sub-pixel geometric points; v = 0: padding
                                     slot, class has fewer than K points, or outside the frame
                                     (x = y = 0 then); 1: inside a later object (occluded);
                                     2: visible (COCO convention)
      semantic   int32  [H, W]       0 background, class id + 1 of the top object

With ``colour_by_class=True`` an object's colour is its class's :data:`CLASS_PALETTE` entry (all
of equal CIE lightness) plus uniform noise of half-width ``palette_noise`` per channel: the
colour of a grey image's object is then predictable only by recognising its shape (the data of
:mod:`vai_jax.colourisation`). The background keeps its hues but is darkened or lightened away
from the palette's lightness, so that the object stays visible in the grey image; the shapes,
their positions and the pixel noise are those of the default random colours.

Every valid object has at least ``min_visible_pixels`` visible pixels (objects hidden more than
that are not drawn). Keypoint names, limbs and flip pairs per class: ``KEYPOINT_NAMES``,
``SKELETON``, ``FLIP_PAIRS`` / ``FLIP_PERMUTATION``.

Example::

  ds = ShapesDataset("detection", split="train", num_examples=1000, image_size=128)
  record = ds[3]              # dict of NumPy arrays
  batch = ds.get_batch(range(256))   # stacked arrays, fast vectorised path
"""
from __future__ import annotations

import numbers
from typing import Iterable, Sequence

import numpy as np

from vai_jax.data import shapes_render
from vai_jax.data.shapes_render import CLASS_PALETTE
from vai_jax.data.sources import GeneratedSource
from vai_jax.data.shapes_geometry import (
    CLASS_NAMES,
    FLIP_PAIRS,
    FLIP_PERMUTATION,
    KEYPOINT_NAMES,
    NUM_CLASSES,
    NUM_KEYPOINTS,
    SKELETON,
)

TASKS = ("classification", "keypoints", "detection", "multi_keypoints")
SPLITS = ("train", "validation", "test")
MIN_IMAGE_SIZE = 16
DEFAULT_NUM_EXAMPLES = {"train": 20_000, "validation": 2_000, "test": 2_000}
# (min_objects, max_objects) per task.
DEFAULT_OBJECTS = {"classification": (1, 1), "keypoints": (1, 1), "detection": (1, 6),
                   "multi_keypoints": (2, 4)}
DEFAULT_MIN_VISIBLE_PIXELS = 10

__all__ = [
    "CLASS_NAMES", "CLASS_PALETTE", "NUM_CLASSES", "NUM_KEYPOINTS", "KEYPOINT_NAMES", "SKELETON",
    "FLIP_PAIRS", "FLIP_PERMUTATION", "TASKS", "SPLITS", "ShapesDataset",
]


def _check_int(value, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return int(value)


class ShapesDataset(GeneratedSource):
    """Random-access procedural shapes data (the ``tfds.data_source`` / grain source interface).

    Args:
      task: one of ``TASKS``; fixes the record keys (see the module docstring).
      split: ``"train"``, ``"validation"`` or ``"test"`` (disjoint random streams).
      num_examples: length of the data set; None -> 20,000 for train, 2,000 otherwise.
      image_size: int (square) or (height, width), each >= 16.
      min_objects, max_objects: object count range per image (None -> task default); the
        per-object arrays have ``max_objects`` rows. Must be 1 and 1 for single-object tasks.
      min_visible_pixels: objects with fewer visible pixels are not drawn (multi-object tasks);
        None -> 10 (1 for single-object tasks, whose object is never hidden); 0 keeps hidden objects.
      seed: int >= 0.
      colour_by_class: colour each object by its class (:data:`CLASS_PALETTE` plus noise)
        instead of a random colour that stands out from the background.
      palette_noise: float in [0, 1], the half-width of the uniform per-channel noise added to
        the palette colour (``colour_by_class`` only).

    ``len(ds)``; ``ds[i]`` -> record dict; ``ds.__getitems__(indices)`` -> list of records;
    ``ds.get_batch(indices)`` -> dict of arrays stacked on a leading batch axis.
    """

    def __init__(
        self,
        task: str = "classification",
        *,
        split: str = "train",
        num_examples: int | None = None,
        image_size: int | Sequence[int] = 64,
        min_objects: int | None = None,
        max_objects: int | None = None,
        min_visible_pixels: int | None = None,
        seed: int = 0,
        colour_by_class: bool = False,
        palette_noise: float = 0.05,
    ):
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}; got {task!r}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
        if num_examples is None:
            num_examples = DEFAULT_NUM_EXAMPLES[split]
        self.num_examples = _check_int(num_examples, "num_examples", minimum=0)
        if isinstance(image_size, numbers.Integral) and not isinstance(image_size, bool):
            hw = (image_size, image_size)
        else:
            try:
                hw = tuple(image_size)
            except TypeError:
                raise TypeError(f"image_size must be an int or (height, width); got {image_size!r}") from None
            if len(hw) != 2:
                raise ValueError(f"image_size must be an int or (height, width); got {image_size!r}")
        self.height = _check_int(hw[0], "image_size[0] (height)", minimum=MIN_IMAGE_SIZE)
        self.width = _check_int(hw[1], "image_size[1] (width)", minimum=MIN_IMAGE_SIZE)
        dmin, dmax = DEFAULT_OBJECTS[task]
        self.min_objects = _check_int(dmin if min_objects is None else min_objects, "min_objects", minimum=1)
        self.max_objects = _check_int(dmax if max_objects is None else max_objects, "max_objects", minimum=1)
        if self.min_objects > self.max_objects:
            raise ValueError(
                f"min_objects must be <= max_objects; got min_objects={self.min_objects}, "
                f"max_objects={self.max_objects}")
        self.single = task in ("classification", "keypoints")
        if self.single and (self.min_objects, self.max_objects) != (1, 1):
            raise ValueError(
                f"task {task!r} has exactly one object: min_objects and max_objects must be 1; got "
                f"{self.min_objects} and {self.max_objects}")
        if min_visible_pixels is None:
            min_visible_pixels = 1 if self.single else DEFAULT_MIN_VISIBLE_PIXELS
        self.min_visible_pixels = _check_int(min_visible_pixels, "min_visible_pixels", minimum=0)
        self.seed = _check_int(seed, "seed", minimum=0)
        if not isinstance(colour_by_class, (bool, np.bool_)):
            raise TypeError(f"colour_by_class must be a bool; got {type(colour_by_class).__name__} "
                            f"{colour_by_class!r}")
        if isinstance(palette_noise, bool) or not isinstance(palette_noise, numbers.Real) \
                or not 0.0 <= palette_noise <= 1.0:
            raise ValueError(f"palette_noise must be a number in [0, 1]; got {palette_noise!r}")
        self.colour_by_class = bool(colour_by_class)
        self.palette_noise = float(palette_noise)
        self.task = task
        self.split = split
        self._split_id = SPLITS.index(split)

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return self.height, self.width

    def __repr__(self) -> str:
        return (f"ShapesDataset(task={self.task!r}, split={self.split!r}, num_examples={self.num_examples}, "
                f"image_size={self.image_size}, min_objects={self.min_objects}, "
                f"max_objects={self.max_objects}, seed={self.seed}"
                + (f", colour_by_class=True, palette_noise={self.palette_noise}"
                   if self.colour_by_class else "") + ")")

    def _sample_into(self, scene: shapes_render.Scene, row: int, index: int) -> None:
        rng = np.random.default_rng([self.seed, self._split_id, index])
        n = self.min_objects
        if self.max_objects > self.min_objects:
            n = int(rng.integers(self.min_objects, self.max_objects + 1))
        shapes_render.sample_example(
            rng, scene, row, num_objects=n, single=self.single,
            palette=CLASS_PALETTE if self.colour_by_class else None,
            palette_noise=self.palette_noise)

    def get_batch(self, indices: Iterable[int]) -> dict:
        """Records for ``indices`` stacked on a leading axis of size ``len(indices)``.

        Example ``k`` of the result equals ``self[indices[k]]`` exactly, whatever else is in the batch.
        """
        idx = [self._index(i) for i in indices]
        if not idx:
            raise ValueError("indices must not be empty")
        scene = shapes_render.empty_scene(len(idx), self.max_objects, self.height, self.width)
        for row, i in enumerate(idx):
            self._sample_into(scene, row, i)
        if self.task == "classification":
            out = shapes_render.render_scene(scene, min_visible_pixels=self.min_visible_pixels, image_only=True)
            return {"image": out["image"], "label": scene.classes[:, 0].astype(np.int32)}
        out = shapes_render.render_scene(scene, min_visible_pixels=self.min_visible_pixels)
        out["label"] = out["classes"][:, 0].copy()
        return out

    def get_parameters(self, indices: Iterable[int]) -> dict:
        """The sampled object parameters behind the records for ``indices`` (nothing is rendered),
        per object slot in drawing order; for single-object tasks slot 0 is the record's object
        (multi-object records list only the objects with ``min_visible_pixels`` visible pixels)::

          classes   int32   [B, M]
          present   bool    [B, M]     slot holds a sampled object
          centre    float32 [B, M, 2]  (x, y) in pixels
          scale     float32 [B, M]     radius: the unit-scale shape's size in pixels
          rotation  float32 [B, M]     radians, clockwise on screen, |rotation| <= MAX_ROTATION[class]
          aspect    float32 [B, M]     ellipse minor/major ratio (1 for the other classes)
        """
        idx = [self._index(i) for i in indices]
        if not idx:
            raise ValueError("indices must not be empty")
        scene = shapes_render.empty_scene(len(idx), self.max_objects, self.height, self.width)
        for row, i in enumerate(idx):
            self._sample_into(scene, row, i)
        present = scene.present.copy()
        return {"classes": np.where(present, scene.classes, 0).astype(np.int32),
                "present": present,
                "centre": np.where(present[..., None], scene.centre, 0.0).astype(np.float32),
                "scale": np.where(present, scene.radius, 0.0).astype(np.float32),
                "rotation": np.where(present, np.arctan2(scene.cos_sin[..., 1],
                                                         scene.cos_sin[..., 0]),
                                     0.0).astype(np.float32),
                "aspect": scene.aspect.astype(np.float32)}
