"""Weight sharing with a k-means codebook (Han et al. 2016, "Deep Compression", Sec. 3).

Each quantised layer's weights are clustered into ``2^bits`` values (1-D k-means, Lloyd's
algorithm with the paper's linear initialisation over ``[min, max]``); every weight is replaced
by its centroid, so the layer is stored as ``bits``-bit indices plus a float32 codebook.
Which leaves are quantised: every ``kernel`` (convolution and dense weights) by default;
biases, BatchNorm parameters and statistics stay float32 and are counted at 4 bytes each.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Mapping

import numpy as np
from flax import traverse_util

FLOAT_BYTES = 4


def check_bits(bits, name: str = "bits") -> int:
    """``bits`` as an int >= 1 (ValueError for < 1, TypeError for non-integers)."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= 1; got {bits!r} ({type(bits).__name__})")
    if bits < 1:
        raise ValueError(f"{name} must be >= 1 (the codebook has 2^bits entries); got {bits}")
    return int(bits)


def kmeans_1d(values, num_clusters: int, *, iterations: int = 30):
    """Lloyd's algorithm on scalars with linear initialisation.

    Args:
      values: any-shape float array (flattened).
      num_clusters: ``k >= 1``.
      iterations: maximum Lloyd iterations (stops early when assignments no longer change).

    Returns:
      ``(codebook float32 [k'], indices int [N])`` with ``k' <= k`` (empty clusters are dropped,
      the codebook is sorted) and ``codebook[indices]`` the quantised values.
    """
    x = np.asarray(values, np.float64).reshape(-1)
    if num_clusters < 1:
        raise ValueError(f"num_clusters must be >= 1; got {num_clusters}")
    if x.size == 0:
        return np.zeros((0,), np.float32), np.zeros((0,), np.int64)
    lo, hi = float(x.min()), float(x.max())
    k = min(num_clusters, np.unique(x).size)
    centroids = np.linspace(lo, hi, k) if k > 1 else np.array([x.mean()])
    idx = None
    for _ in range(iterations):
        # Sorted 1-D centroids: the nearest one is found from the midpoints.
        mids = (centroids[1:] + centroids[:-1]) / 2
        new = np.searchsorted(mids, x)
        if idx is not None and np.array_equal(new, idx):
            break
        idx = new
        sums = np.bincount(idx, weights=x, minlength=len(centroids))
        counts = np.bincount(idx, minlength=len(centroids))
        nonempty = counts > 0
        centroids = np.where(nonempty, sums / np.maximum(counts, 1), centroids)
        centroids = np.sort(centroids[nonempty])
    mids = (centroids[1:] + centroids[:-1]) / 2
    idx = np.searchsorted(mids, x)
    return centroids.astype(np.float32), idx


@dataclasses.dataclass
class QuantisedLayer:
    """One quantised leaf: ``codebook [k]`` float32, ``indices`` int of the leaf's shape."""

    codebook: np.ndarray
    indices: np.ndarray
    bits: int

    def dequantise(self) -> np.ndarray:
        return self.codebook[self.indices].astype(np.float32)


def quantise_params(params: Mapping, bits: int, *, leaves: tuple[str, ...] = ("kernel",),
                    iterations: int = 30) -> tuple[dict, dict[str, QuantisedLayer]]:
    """k-means weight sharing of every leaf named in ``leaves``.

    Args:
      params: a ``"params"`` collection.
      bits: index width, >= 1 (codebook of ``2^bits`` entries).
      leaves: leaf names to quantise (default: all kernels).

    Returns:
      ``(params with quantised leaves replaced by their centroids (float32 NumPy),
      {"path/to/kernel": QuantisedLayer})``.
    """
    bits = check_bits(bits)
    flat = traverse_util.flatten_dict(dict(params))
    layers = {}
    out = {}
    for key, value in flat.items():
        if key[-1] in leaves:
            codebook, idx = kmeans_1d(value, 2 ** bits, iterations=iterations)
            q = QuantisedLayer(codebook, idx.reshape(np.shape(value)), bits)
            layers["/".join(key)] = q
            out[key] = q.dequantise()
        else:
            out[key] = np.asarray(value)
    return traverse_util.unflatten_dict(out), layers


def model_size_bytes(variables: Mapping, quantised: Mapping[str, QuantisedLayer] | None = None
                     ) -> dict[str, int]:
    """Storage of a model: quantised leaves as ``ceil(bits·n / 8)`` bytes of indices plus a
    float32 codebook, every other parameter and statistic as float32.

    Args:
      variables: ``{"params": ..., ["batch_stats": ...]}`` (or a bare params tree).
      quantised: from :func:`quantise_params` (keys are paths inside ``"params"``).

    Returns:
      ``{"total", "indices", "codebooks", "float"}`` in bytes.
    """
    quantised = quantised or {}
    if not isinstance(variables, Mapping):
        raise TypeError(f"variables must be a mapping; got {type(variables).__name__}")
    tree = variables if "params" in variables else {"params": variables}
    for key, value in traverse_util.flatten_dict(dict(tree)).items():
        if not hasattr(value, "shape"):
            raise TypeError(f"variables must hold arrays; {'/'.join(key)!r} is "
                            f"{type(value).__name__}")
    sizes = {"indices": 0, "codebooks": 0, "float": 0}
    for collection, sub in tree.items():
        for key, value in traverse_util.flatten_dict(dict(sub)).items():
            path = "/".join(key)
            if collection == "params" and path in quantised:
                q = quantised[path]
                sizes["indices"] += math.ceil(q.bits * int(np.size(value)) / 8)
                sizes["codebooks"] += FLOAT_BYTES * int(q.codebook.size)
            else:
                sizes["float"] += FLOAT_BYTES * int(np.size(value))
    sizes["total"] = sizes["indices"] + sizes["codebooks"] + sizes["float"]
    return sizes
