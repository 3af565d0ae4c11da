"""Structured (channel) pruning that actually shrinks the layers (Li et al. 2017, "Pruning
Filters for Efficient ConvNets"; Hu et al. 2016, APoZ).

1. Score every output channel of a convolution: L1 or L2 norm of its filter, its mean
   activation on a validation set, or how often it is non-zero there (1 − APoZ).
2. Keep the top ``(1 − ratio)`` of the channels: slice the producing convolution's kernel
   (last axis) and bias, its BatchNorm's scale/bias/mean/var, and every consumer's kernel input
   axis (a convolution's axis 2, a dense layer's axis 0).
3. Rebuild the model with the smaller widths and fine-tune.

A :class:`PruneSpec` names the parameters of one prunable channel set. :func:`plain_cnn_specs`
/ :func:`prune_plain_cnn` do it for :class:`vai_jax.analysis.plain_cnn.PlainCNN` (every
convolution); :func:`resnet_specs` / :func:`prune_resnet` for
:class:`vai_jax.backbones.resnet.ResNet` (the classifier experiment's network): the inner
convolutions of every residual unit (``conv1`` of a basic unit, ``conv1`` and ``conv2`` of a
bottleneck), whose channels no shortcut reads; the pruned widths go into the model's
``inner_widths`` field. Removing channels is exactly equivalent to zeroing their BatchNorm scale
and bias (their ReLU output is then 0 everywhere), which the tests check.
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
      rectify: the activation to score is ``relu(output of layer)`` (``layer`` is then the
        BatchNorm, as in a residual branch where the ReLU is not a module).
    """

    layer: str
    conv: str
    norm: str | None
    consumers: tuple[tuple[str, int], ...]
    rectify: bool = False


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


def resnet_specs(model) -> dict[str, PruneSpec]:
    """``{"stage1/block1/conv1": PruneSpec, …}`` for the inner convolutions of every unit of a
    :class:`~vai_jax.backbones.resnet.ResNet` (for ``"full_preact"`` the BatchNorm acting on a
    convolution's channels is the next one, ``bn{k+1}``). Grouped bottlenecks (ResNeXt) have
    none: their channels are tied to the groups."""
    n_inner = model.block_cls.num_inner
    if model.block_cls.expansion != 1 and model.groups != 1:
        return {}
    specs = {}
    for i, n in enumerate(model.stage_sizes):
        for j in range(n):
            unit = f"stage{i + 1}/block{j + 1}"
            for k in range(1, n_inner + 1):
                norm = f"{unit}/bn{k + 1 if model.unit_order == 'full_preact' else k}"
                specs[f"{unit}/conv{k}"] = PruneSpec(norm, f"{unit}/conv{k}", norm,
                                                     ((f"{unit}/conv{k + 1}", 2),), rectify=True)
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
                      progress: bool = False, rectify: Sequence[str] = (),
                      **call_kwargs) -> dict[str, dict[str, np.ndarray]]:
    """Per-channel activation statistics on a validation set.

    Args:
      inputs: float ``[N, H, W, C]``. layers: names with ``[B, h, w, C_l]`` outputs.
      rectify: layers whose output goes through a ReLU first (:attr:`PruneSpec.rectify`).

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
            if name in rectify:
                a = jnp.maximum(a, 0)
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


def spec_activation_scores(model, variables, inputs, specs: Mapping[str, PruneSpec],
                           **kwargs) -> dict[str, dict[str, np.ndarray]]:
    """:func:`activation_scores` of every spec's scored activation, keyed by ``spec.layer``
    (what :func:`prune_plain_cnn` / :func:`prune_resnet` look up)."""
    layers = list(dict.fromkeys(s.layer for s in specs.values()))
    rectify = [s.layer for s in specs.values() if s.rectify]
    return activation_scores(model, variables, inputs, layers, rectify=rectify, **kwargs)


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


def prune_specs(variables: dict, specs: Mapping[str, PruneSpec],
                ratios: Mapping[str, float] | float, *, method: str = "l1",
                activation_stats: Mapping | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """Remove the lowest-scoring channels of every (or the named) prunable channel set.

    Args:
      variables: the network's variables.
      specs: ``{name: PruneSpec}`` (:func:`plain_cnn_specs`, :func:`resnet_specs`).
      ratios: a fraction in ``[0, 1)`` for every spec, or ``{name: fraction}`` (others 0).
      method: one of :data:`METHODS`; the activation methods need ``activation_stats`` from
        :func:`spec_activation_scores` (computed with the unpruned network).

    Returns:
      ``(pruned variables, {name: kept channel indices})`` for the specs that were pruned.

    Raises:
      ValueError: a ratio outside ``[0, 1)``, an unknown name (lists the valid ones), an
        unknown method, or missing activation statistics.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    if isinstance(ratios, Mapping):
        check_layers(list(ratios), list(specs), "ratios")
        ratios = {name: check_ratio(r, f"ratios[{name!r}]") for name, r in ratios.items()}
    else:
        r = check_ratio(ratios, "ratios")
        ratios = {name: r for name in specs}
    ratios = {name: r for name, r in ratios.items() if r > 0.0}
    if method in ("mean_activation", "nonzero"):
        if activation_stats is None:
            raise ValueError(f"method {method!r} needs activation_stats (activation_scores(...))")
        missing = [n for n in ratios if specs[n].layer not in activation_stats]
        if missing:
            raise ValueError(f"activation_stats has no entry for the layers of {missing}")
    kept = {}
    for name, spec in specs.items():
        if name not in ratios:
            continue
        if method in ("l1", "l2"):
            scores = weight_scores(variables["params"], spec, method)
        else:
            scores = activation_stats[spec.layer][method]
        keep = keep_indices(scores, ratios[name])
        variables = prune_channels(variables, spec, keep)
        kept[name] = keep
    return variables, kept


def prune_plain_cnn(model, variables: dict, ratios: Mapping[str, float] | float, *,
                    method: str = "l1", activation_stats: Mapping | None = None):
    """:func:`prune_specs` on every (or the named) convolution of a
    :class:`~vai_jax.analysis.plain_cnn.PlainCNN` (names ``"conv1"`` …).

    Returns:
      ``(pruned model, pruned variables, {layer: kept indices})``.
    """
    specs = plain_cnn_specs(model)
    variables, kept = prune_specs(variables, specs, ratios, method=method,
                                  activation_stats=activation_stats)
    widths = tuple(len(kept[n]) if n in kept else int(w) for n, w in zip(specs, model.widths))
    return model.clone(widths=widths), variables, kept


def prune_resnet(model, variables: dict, ratios: Mapping[str, float] | float, *,
                 method: str = "l1", activation_stats: Mapping | None = None):
    """:func:`prune_specs` on the inner convolutions of a
    :class:`~vai_jax.backbones.resnet.ResNet` (names from :func:`resnet_specs`, e.g.
    ``"stage2/block1/conv1"``); the result has the pruned ``inner_widths``.

    Returns:
      ``(pruned model, pruned variables, {conv path: kept indices})``.
    """
    specs = resnet_specs(model)
    if not specs:
        raise ValueError("this ResNet has no prunable inner convolutions (grouped bottlenecks "
                         "tie their channels to the groups)")
    variables, kept = prune_specs(variables, specs, ratios, method=method,
                                  activation_stats=activation_stats)
    inner = [[list(u) for u in s] for s in model.unit_inner_widths()]
    for name, keep in kept.items():
        stage, block, conv = name.split("/")
        inner[int(stage[5:]) - 1][int(block[5:]) - 1][int(conv[4:]) - 1] = len(keep)
    inner = tuple(tuple(tuple(u) for u in s) for s in inner)
    return model.clone(inner_widths=inner), variables, kept


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
