"""Feature levels of the detectors: the maps a module takes from the backbone's (or the FPN's)
dict of named maps, chosen by its ``in_features``, and their strides."""
from __future__ import annotations

from typing import Mapping, Sequence

import jax


def as_names(in_features: str | Sequence[str]) -> tuple[str, ...]:
    """``"stage2"`` or ``("stage1", "stage2")`` -> a tuple of names."""
    return (in_features,) if isinstance(in_features, str) else tuple(in_features)


def select_maps(features: Mapping[str, jax.Array], in_features: str | Sequence[str], *,
                owner: str) -> list[jax.Array]:
    """The maps named by ``in_features`` (in that order) from the dict ``features``.

    Raises:
      ValueError: ``in_features`` is empty or names a map that ``features`` lacks (the message
        names ``owner`` and the available names).
    """
    names = as_names(in_features)
    if not names:
        raise ValueError(f"{owner}.in_features must name at least one feature map; got {in_features!r}")
    missing = [n for n in names if n not in features]
    if missing:
        raise ValueError(f"{owner}.in_features names {missing} not in the features dict; available: "
                         f"{sorted(features)}")
    return [features[n] for n in names]


def feature_strides(image_size: Sequence[int], maps: Sequence[jax.Array]) -> tuple[int, ...]:
    """Stride (input pixels per cell) of each map ``[B, h, w, C]`` for an ``(H, W)`` image.

    Raises:
      ValueError: a map is not an integer stride of the image in both directions.
    """
    out = []
    for m in maps:
        s = image_size[0] / m.shape[1]
        if s != int(s) or image_size[1] / m.shape[2] != s:
            raise ValueError(f"feature map {tuple(m.shape)} is not an integer stride of image {image_size}")
        out.append(int(s))
    return tuple(out)
