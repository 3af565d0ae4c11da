"""Address a network's layers by their Flax module path and read their outputs.

A *layer name* is the ``/``-joined path of a submodule, the same string as its parameter path
(``"stem/conv"``, ``"stage2/block1/conv1"``, ``"stage2/block1"``, ``"fc"``); its output is what
that submodule's ``__call__`` returns (for ``ConvBNAct`` blocks such as ``"stem"`` that is after
the activation; for ``"stem/conv"`` the raw convolution). :data:`LOGITS` names the model's own
first output (the logits of a backbone's ``(logits, features)`` pair).

Outputs are captured with Flax's ``capture_intermediates`` restricted to the requested modules,
so nothing else is stored. Unknown names raise a ValueError that lists the valid ones.
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import traverse_util

from vai_jax._validation import check_array, check_int

LOGITS = "logits"


def _path(mdl) -> str:
    return "/".join(str(p) for p in mdl.scope.path)


def _first_array(out):
    """The array a module call returned (first leaf for tuples such as ``(logits, features)``)."""
    if hasattr(out, "shape"):
        return out
    if isinstance(out, (tuple, list)) and out and hasattr(out[0], "shape"):
        return out[0]
    return None


def _features(out):
    """The features dict of a ``(logits, features)`` output, else ``{}``."""
    if isinstance(out, (tuple, list)) and len(out) == 2 and isinstance(out[1], dict):
        return out[1]
    return {}


def layer_shapes(model, variables, input_shape: Sequence[int], *, input_dtype=jnp.float32,
                 **call_kwargs) -> dict[str, tuple[int, ...]]:
    """Output shape of every addressable layer, in call order (no computation: ``eval_shape``).

    Args:
      model: a Flax module called as ``model.apply(variables, x, **call_kwargs)``.
      variables: its variables (arrays or ``ShapeDtypeStruct``).
      input_shape: ``[B, H, W, C]``.
      call_kwargs: e.g. ``train=False``.

    Returns:
      ``{layer name: output shape}`` for every submodule whose ``__call__`` returns an array
      (or a tuple starting with one), in call order; then :data:`LOGITS` when the model's first
      output is an array; then the keys of a backbone's features dict that are not already
      module names (e.g. GoogLeNet's ``"stage3"``).
    """
    if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__len__"):
        raise TypeError(f"input_shape must be a sequence of ints; got {input_shape!r}")
    x = jax.ShapeDtypeStruct(tuple(check_int(d, "input_shape", ge=1) for d in input_shape),
                             input_dtype)

    def run(v, x):
        out, state = model.apply(v, x, capture_intermediates=lambda m, name: name == "__call__",
                                 mutable=["intermediates"], **call_kwargs)
        return out, state["intermediates"]

    out, inter = jax.eval_shape(run, variables, x)
    shapes = {}
    for key, value in traverse_util.flatten_dict(inter).items():
        if key[-1] != "__call__" or len(key) < 2:
            continue
        arr = _first_array(value[0] if isinstance(value, tuple) and len(value) == 1 else value)
        if arr is not None:
            shapes["/".join(key[:-1])] = tuple(arr.shape)
    top = _first_array(out)
    if top is not None:
        shapes[LOGITS] = tuple(top.shape)
    for name, value in _features(out).items():
        if name not in shapes and hasattr(value, "shape"):
            shapes[name] = tuple(value.shape)
    return shapes


def check_layers(names: Sequence[str], valid: Sequence[str], argname: str = "layer") -> None:
    """ValueError naming every unknown layer and listing the valid ones."""
    bad = [n for n in names if n not in valid]
    if bad:
        raise ValueError(f"{argname}: no layer named {', '.join(map(repr, bad))}; valid layer "
                         f"names are: {', '.join(valid)}")


def collect_outputs(model, variables, x, layers, call_kwargs: dict) -> dict:
    """:func:`layer_outputs` without the name check (for use inside jitted functions once the
    names were checked with :func:`check_layers`): one forward pass capturing only the wanted
    modules; ``call_kwargs`` is a dict (e.g. ``{"train": False}``)."""
    wanted = set(layers) - {LOGITS}
    out, state = model.apply(variables, x,
                             capture_intermediates=lambda m, name: name == "__call__"
                             and _path(m) in wanted,
                             mutable=["intermediates"], **call_kwargs)
    flat = traverse_util.flatten_dict(state["intermediates"]) if "intermediates" in state else {}
    result = {}
    for key, value in flat.items():
        name = "/".join(key[:-1])
        if name in wanted:
            result[name] = _first_array(value[0] if len(value) == 1 else value)
    result[LOGITS] = _first_array(out)
    for name, value in _features(out).items():
        result.setdefault(name, value)
    return {name: result[name] for name in layers}


def layer_outputs(model, variables, x, layers: Sequence[str], **call_kwargs) -> dict:
    """Outputs of the named layers for input ``x``.

    Args:
      model, variables: the network.
      x: ``[B, H, W, C]`` floating input.
      layers: layer names (see :func:`layer_shapes`); :data:`LOGITS` for the model output.
      call_kwargs: e.g. ``train=False``.

    Returns:
      ``{name: array}`` (for conv layers ``[B, h, w, C_l]``).

    Raises:
      ValueError: an unknown name (the message lists the valid ones).
    """
    x = check_array(x, "x", ndim=4, kind="floating", shape_hint="[B, H, W, C]")
    if isinstance(layers, str):
        raise TypeError(f"layers must be a sequence of names, not the string {layers!r}")
    layers = list(layers)
    valid = layer_shapes(model, variables, x.shape, input_dtype=x.dtype, **call_kwargs)
    check_layers(layers, list(valid), "layers")
    return collect_outputs(model, variables, x, layers, call_kwargs)


def layer_fn(model, variables, layer: str, input_shape: Sequence[int], **call_kwargs) -> Callable:
    """``f(x) -> output of layer`` (the name is checked once against ``input_shape``; ``f`` is
    pure and jit/grad-compatible)."""
    valid = layer_shapes(model, variables, input_shape, **call_kwargs)
    check_layers([layer], list(valid))
    return lambda x: collect_outputs(model, variables, x, [layer], call_kwargs)[layer]
