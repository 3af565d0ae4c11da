"""Linear probing (Zhang et al. 2017; Alain & Bengio 2016): how linearly decodable the classes
are from each stage of a frozen network.

Each stage's feature map is average-pooled to a grid of about ``target_dim`` numbers
(``g x g x C`` with ``g = round(sqrt(target_dim / C))``, as Zhang et al. pool AlexNet's conv
layers to ~9k dimensions), standardised with the training set's statistics, and a linear
softmax classifier is trained on it (optax Adam, full batch, ``lax.scan``). Comparing a trained
and a randomly initialised backbone gives the accuracy-versus-depth table of Zhang et al. (2017).
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from vai_jax._validation import check_array
from vai_jax.analysis.layers import check_layers, layer_shapes, collect_outputs
from vai_jax.nn.spp import adaptive_pool_2d


def pool_grid(channels: int, height: int, width: int, target_dim: int) -> int:
    """Side ``g`` of the pooled grid: ``round(sqrt(target_dim / channels))`` clipped to
    ``[1, min(height, width)]``."""
    g = int(round(np.sqrt(target_dim / max(channels, 1))))
    return int(np.clip(g, 1, max(1, min(height, width))))


def pool_to_length(x, target_dim: int):
    """``x [B, h, w, C]`` average-pooled to ``[B, g·g·C]`` (see :func:`pool_grid`); ``[B, D]``
    is returned unchanged."""
    if x.ndim == 2:
        return x
    x = check_array(x, "x", ndim=4, kind="floating", shape_hint="[B, h, w, C]")
    g = pool_grid(x.shape[-1], x.shape[1], x.shape[2], target_dim)
    return adaptive_pool_2d(x, g, reduce="avg").reshape(x.shape[0], -1)


def extract_features(model, variables, inputs, layers: Sequence[str], *, target_dim: int = 1024,
                     batch_size: int = 256, progress: bool = False, **call_kwargs) -> dict:
    """Pooled features of each named layer for every input.

    Args:
      model, variables: the frozen network (pass ``train=False``).
      inputs: float ``[N, H, W, C]`` model inputs.
      layers: layer names (e.g. a backbone's stages; see :mod:`vai_jax.analysis.layers`);
        unknown names raise a ValueError listing the valid ones.
      target_dim: approximate length of each pooled feature vector.

    Returns:
      ``{layer: float32 [N, D_layer]}`` (NumPy).
    """
    inputs = check_array(inputs, "inputs", ndim=4, kind="floating", shape_hint="[N, H, W, C]")
    n = inputs.shape[0]
    shape = (min(batch_size, n),) + tuple(inputs.shape[1:])
    valid = layer_shapes(model, variables, shape, **call_kwargs)
    check_layers(list(layers), list(valid), "layers")
    layers = list(layers)

    @jax.jit
    def run(v, x):
        outs = collect_outputs(model, v, x, layers, call_kwargs)
        return {name: pool_to_length(outs[name], target_dim) for name in layers}

    chunks = []
    for s in tqdm(range(0, n, shape[0]), desc="probe features", disable=not progress):
        x = np.asarray(inputs[s:s + shape[0]], np.float32)
        pad = shape[0] - len(x)
        if pad:
            x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
        out = jax.device_get(run(variables, x))
        chunks.append({k: v[:len(x) - pad] for k, v in out.items()})
    return {k: np.concatenate([c[k] for c in chunks]).astype(np.float32) for k in layers}


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """Accuracies (fractions) of one linear probe and its feature length."""

    train_accuracy: float
    test_accuracy: float
    dim: int


def train_linear_probe(train_x, train_y, test_x, test_y, *, num_classes: int, steps: int = 300,
                       learning_rate: float = 1e-2, weight_decay: float = 1e-4, seed: int = 0
                       ) -> ProbeResult:
    """Train a softmax linear classifier on fixed features and report accuracies.

    Args:
      train_x: float ``[N, D]``; train_y: int ``[N]`` in ``[0, num_classes)``.
      test_x: float ``[M, D]``; test_y: int ``[M]``.
      steps: full-batch Adam steps; weight_decay: L2 penalty on the weights (not the bias).

    Features are standardised with the training set's per-dimension mean and std.
    """
    train_x = check_array(train_x, "train_x", ndim=2, kind="floating", shape_hint="[N, D]")
    test_x = check_array(test_x, "test_x", ndim=2, kind="floating", shape_hint="[M, D]")
    train_y = np.asarray(train_y)
    test_y = np.asarray(test_y)
    if train_y.shape != train_x.shape[:1] or test_y.shape != test_x.shape[:1]:
        raise ValueError(f"labels must be [N] and [M]; got train_y {train_y.shape} for "
                         f"train_x {train_x.shape}, test_y {test_y.shape} for test_x "
                         f"{test_x.shape}")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train_x and test_x must have the same D; got {train_x.shape[1]} and "
                         f"{test_x.shape[1]}")
    for name, y in (("train_y", train_y), ("test_y", test_y)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} must be in [0, {num_classes}); got [{y.min()}, {y.max()}]")
    train_x = np.asarray(train_x, np.float32)
    test_x = np.asarray(test_x, np.float32)
    mean = train_x.mean(0)
    std = train_x.std(0) + 1e-6
    xtr = jnp.asarray((train_x - mean) / std)
    xte = jnp.asarray((test_x - mean) / std)
    d = xtr.shape[1]
    params = {"w": jnp.zeros((d, num_classes), jnp.float32),
              "b": jnp.zeros((num_classes,), jnp.float32)}
    del seed  # zero init: the convex problem needs no randomness
    tx = optax.adam(learning_rate)
    ytr = jnp.asarray(train_y, jnp.int32)

    def loss_fn(p):
        logits = xtr @ p["w"] + p["b"]
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, ytr).mean()
        return ce + 0.5 * weight_decay * jnp.sum(p["w"] ** 2)

    @jax.jit
    def fit(p):
        def step(carry, _):
            p, s = carry
            g = jax.grad(loss_fn)(p)
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        (p, _), _ = jax.lax.scan(step, (p, tx.init(p)), None, length=steps)
        return p

    params = fit(params)

    def acc(x, y):
        if len(y) == 0:
            return float("nan")
        return float(np.mean(np.asarray(jnp.argmax(x @ params["w"] + params["b"], -1)) == y))

    return ProbeResult(acc(xtr, train_y), acc(xte, test_y), d)


def probe_layers(model, variables, layers: Sequence[str], train_inputs, train_labels,
                 test_inputs, test_labels, *, num_classes: int, target_dim: int = 1024,
                 steps: int = 300, learning_rate: float = 1e-2, weight_decay: float = 1e-4,
                 batch_size: int = 256, progress: bool = False, **call_kwargs
                 ) -> dict[str, ProbeResult]:
    """A linear probe per layer of a frozen network: ``{layer: ProbeResult}`` (see
    :func:`extract_features` and :func:`train_linear_probe`)."""
    tr = extract_features(model, variables, train_inputs, layers, target_dim=target_dim,
                          batch_size=batch_size, progress=progress, **call_kwargs)
    te = extract_features(model, variables, test_inputs, layers, target_dim=target_dim,
                          batch_size=batch_size, progress=progress, **call_kwargs)
    return {name: train_linear_probe(tr[name], train_labels, te[name], test_labels,
                                     num_classes=num_classes, steps=steps,
                                     learning_rate=learning_rate, weight_decay=weight_decay)
            for name in layers}


def probe_table(results: Mapping[str, Mapping[str, ProbeResult]], *, percent: bool = True) -> str:
    """Markdown table, one row per network (``{"trained": {layer: result}, "random": ...}``),
    one column per layer of test accuracy (Zhang et al. 2017's layout)."""
    rows = list(results)
    if not rows:
        raise ValueError("results is empty")
    for r in rows:
        for layer, result in results[r].items():
            if not isinstance(result, ProbeResult):
                raise TypeError(f"results[{r!r}][{layer!r}] must be a ProbeResult; got "
                                f"{type(result).__name__}")
    layers = list(results[rows[0]])
    scale = 100.0 if percent else 1.0
    head = "| network | " + " | ".join(layers) + " |"
    sep = "|---|" + "---:|" * len(layers)
    body = [f"| {r} | " + " | ".join(
        f"{scale * results[r][l].test_accuracy:.1f}" if l in results[r] else "" for l in layers)
        + " |" for r in rows]
    dims = "| feature dim | " + " | ".join(str(results[rows[0]][l].dim) for l in layers) + " |"
    return "\n".join([head, sep] + body + [dims])
