"""Procedural shape clips: structured prediction over time on the built-in shapes.

Each example is a short clip of ``T`` frames showing one object that moves, rotates, changes
scale and now and then turns into another shape. A *gesture* is a sequence of parts (the
gesture recognition setting of hidden and latent-dynamic CRFs, Quattoni et al. 2007, Morency
et al. 2007): the clip's gesture ``g`` selects a Markov chain over the shape classes, and the
frame labels follow it. The four gestures cycle through three parts each, two gestures per
set of parts in opposite orders, so that the set of shapes seen does not tell a gesture from
its mirror; only the order does::

  gesture 0  circle -> square -> triangle -> circle ...
  gesture 1  circle -> triangle -> square -> circle ...
  gesture 2  star -> cross -> ellipse -> star ...
  gesture 3  star -> ellipse -> cross -> star ...

From a gesture's part ``p`` the next frame keeps ``p`` with probability ``P_STAY``, moves to the
next part with ``P_ADVANCE``, and with ``P_JUMP`` draws any class uniformly; from a class that
is not one of its parts it returns to a uniformly drawn part (probability ``1 − P_JUMP``) or
jumps. The first frame draws a part (``1 − P_JUMP``) or any class. ``TRANSITIONS [G, C, C]`` and
``INITIAL [G, C]`` hold these chains (rows sum to 1, every entry is positive).

Frames are degraded independently, so that one frame alone is often not enough: with
``occlusion_prob`` a flat rectangle of random colour covers part (sometimes most) of the object,
and with ``noise_prob`` the pixel noise is 4 to 30 times stronger. The background (textured, as in
:mod:`vai_jax.data.shapes`) stays fixed over a clip; by default the object is coloured by its
part (``colour_by_class``), so that a small network learns the parts from few examples.

Like :class:`vai_jax.data.shapes.ShapesDataset`, every clip is generated on demand from its own
``np.random.default_rng([seed, split_id, index, 1])``: the same ``(seed, split, index)`` and
settings give the same bytes, whatever else is in the batch.

Record keys (``T = num_frames``)::

  frames    uint8   [T, H, W, 3]
  labels    int32   [T]     the shape class of each frame (the parts), in [0, NUM_CLASSES)
  label     int32   []      the gesture, in [0, NUM_GESTURES)
  occluded  bool    [T]     an occluder was drawn on the frame
  noisy     bool    [T]     the frame has strong pixel noise
  rotation  float32 [T]     object angle, radians (clockwise on screen; free, not wrapped)
  scale     float32 [T]     object radius in pixels (the unit-scale shape's size)
  centre    float32 [T, 2]  object centre (x, y) in pixels

Example::

  ds = ShapesSequences(split="train", num_examples=2000, num_frames=12, image_size=24)
  clip = ds[0]                       # dict of NumPy arrays
  batch = ds.get_batch(range(32))    # stacked: frames [32, T, H, W, 3]
"""
from __future__ import annotations

import math
import numbers
from typing import Iterable

import numpy as np

from vai_jax.data import shapes_geometry as geo
from vai_jax.data import shapes_render
from vai_jax.data.shapes import MIN_IMAGE_SIZE, SPLITS
from vai_jax.data.sources import GeneratedSource

GESTURE_PARTS = (
    (geo.CIRCLE, geo.SQUARE, geo.TRIANGLE),
    (geo.CIRCLE, geo.TRIANGLE, geo.SQUARE),
    (geo.STAR, geo.CROSS, geo.ELLIPSE),
    (geo.STAR, geo.ELLIPSE, geo.CROSS),
)
GESTURE_NAMES = tuple("-".join(geo.CLASS_NAMES[p] for p in parts) for parts in GESTURE_PARTS)
NUM_GESTURES = len(GESTURE_PARTS)
NUM_CLASSES = geo.NUM_CLASSES
CLASS_NAMES = geo.CLASS_NAMES
P_STAY, P_ADVANCE, P_JUMP = 0.6, 0.3, 0.1
DEFAULT_NUM_EXAMPLES = {"train": 2_000, "validation": 500, "test": 500}
FIELDS = ("frames", "labels", "label", "occluded", "noisy", "rotation", "scale", "centre")

__all__ = ["GESTURE_PARTS", "GESTURE_NAMES", "NUM_GESTURES", "NUM_CLASSES", "CLASS_NAMES",
           "TRANSITIONS", "INITIAL", "ShapesSequences", "gesture_log_likelihoods"]


def _chains() -> tuple[np.ndarray, np.ndarray]:
    c = NUM_CLASSES
    transitions = np.zeros((NUM_GESTURES, c, c))
    initial = np.zeros((NUM_GESTURES, c))
    for g, parts in enumerate(GESTURE_PARTS):
        on_parts = np.zeros(c)
        on_parts[list(parts)] = 1.0 / len(parts)
        transitions[g] = (1.0 - P_JUMP) * on_parts + P_JUMP / c  # rows of the other classes
        for i, p in enumerate(parts):
            row = np.full(c, P_JUMP / c)
            row[p] += P_STAY
            row[parts[(i + 1) % len(parts)]] += P_ADVANCE
            transitions[g, p] = row
        initial[g] = (1.0 - P_JUMP) * on_parts + P_JUMP / c
    return transitions, initial


# float64 [G, C, C]: TRANSITIONS[g, i, j] = p(label_{t+1} = j | label_t = i, gesture g).
# float64 [G, C]:    INITIAL[g, i]        = p(label_0 = i | gesture g).
TRANSITIONS, INITIAL = _chains()
TRANSITIONS.setflags(write=False)
INITIAL.setflags(write=False)


def gesture_log_likelihoods(labels) -> np.ndarray:
    """``log p(labels | gesture)`` under each gesture's chain: float64 ``[..., G]`` for integer
    ``labels [..., T]`` in ``[0, NUM_CLASSES)``. Its arg-max is the gesture a known-dynamics
    decoder reads off a sequence of per-frame labels."""
    labels = np.asarray(labels)
    if labels.ndim < 1 or labels.shape[-1] < 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers [..., T] with T >= 1; got {labels.dtype} "
                         f"{labels.shape}")
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise ValueError(f"labels must lie in [0, {NUM_CLASSES}); got values in "
                         f"[{labels.min()}, {labels.max()}]")
    log_a, log_pi = np.log(TRANSITIONS), np.log(INITIAL)
    out = np.moveaxis(log_pi[:, labels[..., 0]], 0, -1)
    if labels.shape[-1] > 1:
        steps = log_a[:, labels[..., :-1], labels[..., 1:]]  # [G, ..., T-1]
        out = out + np.moveaxis(steps.sum(-1), 0, -1)
    return out


def _check_int(value, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return int(value)


def _check_prob(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1]; got {value!r}")
    return float(value)


def _fold(x, lo, hi):
    """Reflect ``x`` into ``[lo, hi]`` (a point bouncing between two walls)."""
    span = hi - lo
    if span <= 0:
        return np.full_like(x, 0.5 * (lo + hi))
    y = np.mod(x - lo, 2.0 * span)
    return lo + np.where(y > span, 2.0 * span - y, y)


class ShapesSequences(GeneratedSource):
    """Random-access procedural shape clips (the interface of
    :class:`vai_jax.data.shapes.ShapesDataset`).

    Args:
      split: ``"train"``, ``"validation"`` or ``"test"`` (disjoint random streams).
      num_examples: clips; None -> 2,000 for train, 500 otherwise.
      num_frames: ``T`` >= 2.
      image_size: int >= 16 (square frames).
      occlusion_prob: per-frame probability of an occluder.
      noise_prob: per-frame probability of strong pixel noise.
      colour_by_class: colour the object by its part (``shapes_render.CLASS_PALETTE`` plus a
        per-clip offset of up to ``palette_noise`` per channel) over a dark or light
        background, so that colour and shape both tell the part; otherwise one random colour
        per clip that stands out from the background, and shape alone tells the part.
      palette_noise: in [0, 1].
      seed: int >= 0.

    ``len(ds)``; ``ds[i]`` -> record dict; ``ds.__getitems__(indices)`` -> list of records;
    ``ds.get_batch(indices)`` -> dict of arrays stacked on a leading clip axis;
    ``ds.materialise(keys)`` -> :class:`vai_jax.data.sources.ArraySource`.
    """

    fields = FIELDS
    materialise_chunk = 256

    def __init__(self, *, split: str = "train", num_examples: int | None = None,
                 num_frames: int = 12, image_size: int = 24, occlusion_prob: float = 0.3,
                 noise_prob: float = 0.3, colour_by_class: bool = True,
                 palette_noise: float = 0.15, seed: int = 0):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
        if num_examples is None:
            num_examples = DEFAULT_NUM_EXAMPLES[split]
        self.num_examples = _check_int(num_examples, "num_examples", minimum=0)
        self.num_frames = _check_int(num_frames, "num_frames", minimum=2)
        self.image_size = _check_int(image_size, "image_size", minimum=MIN_IMAGE_SIZE)
        self.occlusion_prob = _check_prob(occlusion_prob, "occlusion_prob")
        self.noise_prob = _check_prob(noise_prob, "noise_prob")
        if not isinstance(colour_by_class, (bool, np.bool_)):
            raise TypeError(f"colour_by_class must be a bool; got "
                            f"{type(colour_by_class).__name__} {colour_by_class!r}")
        self.colour_by_class = bool(colour_by_class)
        self.palette_noise = _check_prob(palette_noise, "palette_noise")
        self.seed = _check_int(seed, "seed", minimum=0)
        self.split = split
        self._split_id = SPLITS.index(split)

    def __repr__(self) -> str:
        return (f"ShapesSequences(split={self.split!r}, num_examples={self.num_examples}, "
                f"num_frames={self.num_frames}, image_size={self.image_size}, "
                f"occlusion_prob={self.occlusion_prob}, noise_prob={self.noise_prob}, "
                f"colour_by_class={self.colour_by_class}, palette_noise={self.palette_noise}, "
                f"seed={self.seed})")

    def _sample_clip(self, scene: shapes_render.Scene, rows: slice, index: int, out: dict,
                     k: int) -> None:
        """Draw clip ``index`` into the frames ``rows`` of ``scene`` and row ``k`` of ``out``."""
        rng = np.random.default_rng([self.seed, self._split_id, index, 1])
        t_len, size = self.num_frames, float(self.image_size)
        t = np.arange(t_len, dtype=np.float64)
        # Background: as the shapes data set, fixed over the clip.
        u = rng.random(14)
        if self.colour_by_class:  # dark or light, away from the palette's lightness
            bg0 = (0.05 if u[13] < 0.5 else 0.75) + 0.2 * u[0:3]
            bg1 = np.clip(bg0 + 0.2 * u[3:6] - 0.1, 0.0, 1.0)
        else:
            bg0 = 0.05 + 0.9 * u[0:3]
            bg1 = np.clip(bg0 + 0.6 * u[3:6] - 0.3, 0.0, 1.0)
        scene.background[rows, 0] = bg0
        scene.background[rows, 1] = bg1
        for g in range(2):
            freq = (0.5 + 5.5 * float(u[6 + g])) / size
            theta = math.pi * float(u[8 + g])
            scene.waves[rows, g] = (freq * math.cos(theta), freq * math.sin(theta), u[10 + g])
        base_noise = 0.01 + 0.05 * u[12]
        # Gesture and the part labels.
        gesture = int(rng.integers(NUM_GESTURES))
        draws = rng.random(t_len)
        labels = np.empty(t_len, np.int32)
        labels[0] = min(int(np.searchsorted(np.cumsum(INITIAL[gesture]), draws[0], "right")),
                        NUM_CLASSES - 1)
        cdf = np.cumsum(TRANSITIONS[gesture], axis=-1)
        for i in range(1, t_len):
            labels[i] = min(int(np.searchsorted(cdf[labels[i - 1]], draws[i], "right")),
                            NUM_CLASSES - 1)
        # Motion: scale drift, spin, and a straight path bouncing off the borders.
        u = rng.random(10)
        radius = (0.18 + 0.12 * u[0]) * size * np.exp((0.06 * u[1] - 0.03) * t)
        radius = np.clip(radius, 0.15 * size, 0.32 * size)
        angle = 2.0 * math.pi * u[2] + (0.5 * u[3] - 0.25) * t
        ext = float(radius.max()) * float(geo.CIRCUMRADIUS.max()) + 1.0
        speed, heading = 0.3 + 0.9 * u[4], 2.0 * math.pi * u[5]
        cx = _fold(ext + (size - 2 * ext) * u[6] + speed * math.cos(heading) * t, ext, size - ext)
        cy = _fold(ext + (size - 2 * ext) * u[7] + speed * math.sin(heading) * t, ext, size - ext)
        aspect = 0.4 + 0.25 * u[8]
        cands = rng.random((8, 3))
        dist = np.sqrt(((cands - 0.5 * (bg0 + bg1)) ** 2).sum(-1))
        ok = np.nonzero(dist >= 0.45)[0]
        colour = cands[ok[0] if ok.size else int(dist.argmax())]
        jitter = self.palette_noise * (2.0 * rng.random(3) - 1.0)
        if self.colour_by_class:
            colour = np.clip(shapes_render.CLASS_PALETTE[labels] + jitter, 0.0, 1.0)  # [T, 3]
        shade = 0.6 * rng.random(2) - 0.3
        # Degradations, per frame.
        occluded = rng.random(t_len) < self.occlusion_prob
        noisy = rng.random(t_len) < self.noise_prob
        occ = rng.random((t_len, 7))
        strong = 0.15 + 0.15 * rng.random(t_len)
        scene.classes[rows, 0] = labels
        scene.present[rows, 0] = True
        scene.centre[rows, 0, 0] = cx
        scene.centre[rows, 0, 1] = cy
        scene.radius[rows, 0] = radius
        scene.cos_sin[rows, 0, 0] = np.cos(angle)
        scene.cos_sin[rows, 0, 1] = np.sin(angle)
        scene.aspect[rows, 0] = np.where(labels == geo.ELLIPSE, aspect, 1.0)
        scene.colour[rows, 0] = colour
        scene.shade[rows, 0] = shade[None, :] / radius[:, None]
        scene.noise_std[rows] = np.where(noisy, strong, base_noise)
        scene.noise[rows] = rng.random((t_len, 3, self.image_size, self.image_size),
                                       dtype=np.float32)
        # Occluder: a rectangle of half-sides (0.5 .. 1) x radius, centred within 0.7 radius of
        # the object's centre, in a random colour.
        half = (0.5 + 0.5 * occ[:, 0:2]) * radius[:, None]
        offset = (1.4 * occ[:, 2:4] - 0.7) * radius[:, None]
        out["occluder"][k] = np.concatenate(
            [np.stack([cx, cy], -1) + offset - half, np.stack([cx, cy], -1) + offset + half], -1)
        out["occluder_colour"][k] = occ[:, 4:7]
        out["labels"][k] = labels
        out["label"][k] = gesture
        out["occluded"][k] = occluded
        out["noisy"][k] = noisy
        out["rotation"][k] = angle
        out["scale"][k] = radius
        out["centre"][k] = np.stack([cx, cy], -1)

    def get_batch(self, indices: Iterable[int]) -> dict:
        """Records for ``indices`` stacked on a leading axis of size ``len(indices)``; clip ``k``
        of the result equals ``self[indices[k]]`` exactly."""
        idx = [self._index(i) for i in indices]
        if not idx:
            raise ValueError("indices must not be empty")
        b, t, s = len(idx), self.num_frames, self.image_size
        scene = shapes_render.empty_scene(b * t, 1, s, s)
        out = {"labels": np.zeros((b, t), np.int32), "label": np.zeros(b, np.int32),
               "occluded": np.zeros((b, t), bool), "noisy": np.zeros((b, t), bool),
               "rotation": np.zeros((b, t), np.float32), "scale": np.zeros((b, t), np.float32),
               "centre": np.zeros((b, t, 2), np.float32),
               "occluder": np.zeros((b, t, 4)), "occluder_colour": np.zeros((b, t, 3))}
        for k, i in enumerate(idx):
            self._sample_clip(scene, slice(k * t, (k + 1) * t), i, out, k)
        image = shapes_render.render_scene(scene, image_only=True)["image"]  # [B·T, H, W, 3]
        # Occluders over the rendered frames, with the frame's own pixel noise.
        occluded = out["occluded"].reshape(-1)
        if occluded.any():
            rows = np.nonzero(occluded)[0]
            box = out.pop("occluder").reshape(-1, 4)[rows]
            centres = np.arange(s, dtype=np.float64) + 0.5
            inside = ((centres[None, None, :] >= box[:, 0, None, None])
                      & (centres[None, None, :] <= box[:, 2, None, None])
                      & (centres[None, :, None] >= box[:, 1, None, None])
                      & (centres[None, :, None] <= box[:, 3, None, None]))  # [R, H, W]
            amp = scene.noise_std[rows] * np.float32(255.0 * math.sqrt(12.0))
            noise = (np.moveaxis(scene.noise[rows], 1, -1) - np.float32(0.5)) * amp[:, None,
                                                                                       None, None]
            colour = out.pop("occluder_colour").reshape(-1, 3)[rows].astype(np.float32) * 255.0
            value = np.clip(colour[:, None, None, :] + noise + np.float32(0.5), 0.0, 255.0)
            image[rows] = np.where(inside[..., None], value.astype(np.uint8), image[rows])
        out.pop("occluder", None)
        out.pop("occluder_colour", None)
        out["frames"] = image.reshape(b, t, s, s, 3)
        return {k: out[k] for k in FIELDS}
