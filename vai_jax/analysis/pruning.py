"""Structured (channel) pruning that actually shrinks the layers (Li et al. 2017, "Pruning
Filters for Efficient ConvNets"; Hu et al. 2016, APoZ).

1. Score every output channel of a convolution: L1 or L2 norm of its filter, its mean
   activation on a validation set, or how often it is non-zero there (1 − APoZ).
2. Keep the top ``(1 − ratio)`` of the channels: slice the producing convolution's kernel
   (last axis) and bias, its BatchNorm's scale/bias/mean/var, and every consumer's kernel input
   axis (a convolution's axis 2, a dense layer's axis 0).
3. Rebuild the model with the smaller widths and fine-tune.

A :class:`PruneSpec` names the parameters of one prunable channel set; :func:`plain_cnn_specs`
gives them for :class:`vai_jax.analysis.plain_cnn.PlainCNN`, and :func:`prune_plain_cnn` does
the whole thing for it. Removing channels is exactly equivalent to zeroing their BatchNorm
scale and bias (their ReLU output is then 0 everywhere), which the tests check.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util
from tqdm.auto import tqdm

from vai_jax.analysis.layers import collect_outputs, check_layers, layer_shapes

METHODS = ("l1", "l2", "mean_activation", "nonzero")


@dataclasses.dataclass(frozen=True)
class PruneSpec:
    """One set of prunable channels.

    Attributes:
      layer: the layer whose output channels are pruned (its activations are scored), e.g.
        ``"conv2"``.
      conv: path of the producing convolution (``kernel [kh, kw, C_in, C]``, optional bias).
      norm: path of its BatchNorm (``scale``, ``bias`` params; ``mean``, ``var`` stats) or None.
      consumers: ``(path, axis)`` of each parameter reading these channels: ``("conv3/conv",
        2)`` for a convolution kernel, ``("fc", 0)`` for a dense kernel after global pooling.
    """

    layer: str
    conv: str
    norm: str | None
    consumers: tuple[tuple[str, int], ...]


def plain_cnn_specs(model) -> dict[str, PruneSpec]:
    """``{"conv1": PruneSpec, …}`` for every convolution of a :class:`PlainCNN` (the last one
    feeds ``fc``; with ``num_classes=0`` it has no consumer)."""
    n = len(model.widths)
    specs = {}
    for i in range(1, n + 1):
        if i < n:
            consumers = ((f"conv{i + 1}/conv", 2),)
        else:
            consumers = (("fc", 0),) if model.num_classes else ()
        specs[f"conv{i}"] = PruneSpec(f"conv{i}", f"conv{i}/conv", f"conv{i}/bn", consumers)
    return specs


def _get(tree: dict, path: str):
    node = tree
    for part in path.split("/"):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def weight_scores(params, spec: PruneSpec, method: str) -> np.ndarray:
    """float64 ``[C]``: L1 (``"l1"``) or L2 (``"l2"``) norm of each output filter of
    ``spec.conv``'s kernel."""
    if method not in ("l1", "l2"):
        raise ValueError(f"method must be 'l1' or 'l2' for weight scores; got {method!r}")
    conv = _get(params, spec.conv)
    if conv is None or "kernel" not in conv:
        raise ValueError(f"no convolution kernel at {spec.conv!r}")
    k = np.asarray(conv["kernel"], np.float64)
    k = k.reshape(-1, k.shape[-1])
    return np.abs(k).sum(0) if method == "l1" else np.sqrt((k ** 2).sum(0))


def activation_scores(model, variables, inputs, layers: Sequence[str], *, batch_size: int = 256,
                      progress: bool = False, **call_kwargs) -> dict[str, dict[str, np.ndarray]]:
    """Per-channel activation statistics on a validation set.

    Args:
      inputs: float ``[N, H, W, C]``. layers: names with ``[B, h, w, C_l]`` outputs.

    Returns:
      ``{layer: {"mean_activation": [C_l], "nonzero": [C_l]}}``: the mean of the output and the
      fraction of its values that are > 0 (1 − APoZ), over examples and positions (float64).
    """
    inputs = np.asarray(inputs, np.float32)
    n = len(inputs)
    shape = (min(batch_size, n),) + inputs.shape[1:]
    valid = layer_shapes(model, variables, shape, **call_kwargs)
    check_layers(list(layers), list(valid), "layers")
    layers = list(layers)

    @jax.jit
    def stats(v, x, weight):
        outs = collect_outputs(model, v, x, layers, call_kwargs)
        res = {}
        for name in layers:
            a = outs[name].astype(jnp.float32)
            w = weight[:, None, None, None]
            res[name] = (jnp.sum(a * w, axis=(0, 1, 2)), jnp.sum((a > 0) * w, axis=(0, 1, 2)))
        return res

    sums = {name: [0.0, 0.0] for name in layers}
    for s in tqdm(range(0, n, shape[0]), desc="activation scores", disable=not progress):
        x = inputs[s:s + shape[0]]
        m = len(x)
        weight = np.zeros(shape[0], np.float32)
        weight[:m] = 1
        if m < shape[0]:
            x = np.concatenate([x, np.zeros((shape[0] - m,) + x.shape[1:], x.dtype)])
        out = jax.device_get(stats(variables, x, weight))
        for name in layers:
            sums[name][0] = sums[name][0] + np.asarray(out[name][0], np.float64)
            sums[name][1] = sums[name][1] + np.asarray(out[name][1], np.float64)
    result = {}
    for name in layers:
        h, w = valid[name][1:3]
        count = float(n * h * w)
        result[name] = {"mean_activation": sums[name][0] / count, "nonzero": sums[name][1] / count}
    return result


def check_ratio(ratio, name: str = "ratio") -> float:
    """ValueError unless ``0 <= ratio < 1``."""
    r = float(ratio)
    if not 0.0 <= r < 1.0 or not np.isfinite(r):
        raise ValueError(f"{name} must be in [0, 1) (the fraction of channels removed); got "
                         f"{ratio!r}")
    return r


def keep_indices(scores, ratio: float) -> np.ndarray:
    """Sorted indices of the channels kept when removing the ``ratio`` fraction with the lowest
    ``scores``: ``max(1, C − floor(ratio·C))`` channels (ties keep the lower index)."""
    r = check_ratio(ratio)
    scores = np.asarray(scores, np.float64)
    c = scores.shape[0]
    n_keep = max(1, c - int(np.floor(r * c)))
    order = np.argsort(-scores, kind="stable")[:n_keep]
    return np.sort(order)


def prune_channels(variables: dict, spec: PruneSpec, keep) -> dict:
    """Slice every parameter/statistic that ``spec``'s channels touch to ``keep``.

    Args:
      variables: ``{"params": ..., ["batch_stats": ...]}``.
      keep: int ``[C']`` channel indices to keep.

    Returns:
      A new variables dict (arrays not touched are shared).
    """
    keep = np.asarray(keep, np.int64)
    out = {}
    for collection, tree in variables.items():
        flat = dict(traverse_util.flatten_dict(tree))
        for key in list(flat):
            path = "/".join(key[:-1])
            leaf = key[-1]
            v = flat[key]
            if collection == "params" and path == spec.conv:
                if leaf == "kernel":
                    flat[key] = v[..., keep]
                elif leaf == "bias":
                    flat[key] = v[keep]
            elif spec.norm is not None and path == spec.norm:
                flat[key] = v[keep]
            elif collection == "params" and leaf == "kernel":
                for cpath, axis in spec.consumers:
                    if path == cpath:
                        flat[key] = jnp.take(v, keep, axis=axis)
        out[collection] = traverse_util.unflatten_dict(flat)
    return out


def prune_plain_cnn(model, variables: dict, ratios: Mapping[str, float] | float, *,
                    method: str = "l1", activation_stats: Mapping | None = None):
    """Remove the lowest-scoring channels of every (or the named) layer of a ``PlainCNN``.

    Args:
      model: a :class:`~vai_jax.analysis.plain_cnn.PlainCNN`.
      variables: its variables.
      ratios: a fraction in ``[0, 1)`` for every layer, or ``{layer: fraction}`` (others 0).
      method: one of :data:`METHODS`; the activation methods need ``activation_stats`` from
        :func:`activation_scores` (computed with the unpruned network).

    Returns:
      ``(pruned model, pruned variables, {layer: kept indices})``.

    Raises:
      ValueError: a ratio outside ``[0, 1)``, an unknown layer (lists the valid ones), an
        unknown method, or missing activation statistics.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    specs = plain_cnn_specs(model)
    if isinstance(ratios, Mapping):
        check_layers(list(ratios), list(specs), "ratios")
        ratios = {name: check_ratio(r, f"ratios[{name!r}]") for name, r in ratios.items()}
    else:
        r = check_ratio(ratios, "ratios")
        ratios = {name: r for name in specs}
    if method in ("mean_activation", "nonzero"):
        if activation_stats is None:
            raise ValueError(f"method {method!r} needs activation_stats (activation_scores(...))")
        missing = [n for n in ratios if n not in activation_stats]
        if missing:
            raise ValueError(f"activation_stats has no entry for layers {missing}")
    widths = list(model.widths)
    kept = {}
    for i, (name, spec) in enumerate(specs.items()):
        if ratios.get(name, 0.0) == 0.0:
            continue
        if method in ("l1", "l2"):
            scores = weight_scores(variables["params"], spec, method)
        else:
            scores = activation_stats[name][method]
        keep = keep_indices(scores, ratios[name])
        variables = prune_channels(variables, spec, keep)
        widths[i] = len(keep)
        kept[name] = keep
    return model.clone(widths=tuple(widths)), variables, kept


def zero_channels(variables: dict, spec: PruneSpec, drop) -> dict:
    """The unpruned network with channels ``drop`` silenced: their BatchNorm scale and bias set
    to 0 (so the ReLU output is 0). For checking pruning: same outputs as removing them."""
    drop = np.asarray(drop, np.int64)
    if spec.norm is None:
        raise ValueError("zero_channels needs a BatchNorm to silence channels")
    params = traverse_util.flatten_dict(dict(variables["params"]))
    for key in list(params):
        if "/".join(key[:-1]) == spec.norm and key[-1] in ("scale", "bias"):
            params[key] = jnp.asarray(params[key]).at[drop].set(0.0)
    out = dict(variables)
    out["params"] = traverse_util.unflatten_dict(params)
    return out
