"""The model-independent part of a conversion: PyTorch tensors into Flax variables.

A *family* (see :mod:`vai_jax.weights.torchvision`) only names things: for each vai_jax module
that owns parameters (``"stage2/block1/conv1"``) it gives the PyTorch module prefix
(``"layer2.0.conv1"``) as a :class:`Target`. Everything else is generic and done here:

* leaf names: ``kernel``/``scale`` ← ``weight``, ``bias`` ← ``bias``, ``mean`` ←
  ``running_mean``, ``var`` ← ``running_var``;
* layouts: a conv weight ``[O, I, kh, kw]`` → kernel ``[kh, kw, I, O]``; a linear weight
  ``[O, I]`` → kernel ``[I, O]``; a linear layer fed by a flattened ``[C, H, W]`` map
  (``"flatten_chw"``: PyTorch flattens channels first, Flax's NHWC maps flatten channels last)
  gets its input rows reordered; a convolution that acts as a dense layer (``"conv_as_dense"``:
  1×1 squeeze-and-excitation convs, timm's VGG ``pre_logits``) is reshaped;
* the check: every expected key present with its shape, every other key accounted for, or one
  :class:`CheckpointError` listing all that is wrong (nothing is converted half-way).

Detection and segmentation models add families; this module stays as it is.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Callable, Mapping, Sequence

import jax
import numpy as np
from flax import traverse_util

# Flax leaf name -> PyTorch parameter / buffer name.
_LEAVES = {"kernel": "weight", "scale": "weight", "bias": "bias", "mean": "running_mean",
           "var": "running_var"}
LAYOUTS = ("auto", "flatten_chw", "conv_as_dense")
# Buffers PyTorch's BatchNorm keeps and Flax has no use for.
ALWAYS_IGNORED = (r".*\.num_batches_tracked",)


@dataclasses.dataclass(frozen=True)
class Target:
    """Where a vai_jax module's parameters live in the PyTorch state dict.

    Attributes:
      prefix: the PyTorch module name (``"layer1.0.conv1"``); leaves are appended (``.weight``).
      layout: ``"auto"`` (conv or linear, from the kernel's rank), ``"flatten_chw"`` (a linear
        layer fed by a flattened ``[C, H, W]`` map) or ``"conv_as_dense"`` (a PyTorch conv
        ``[O, C, H, W]`` that the vai_jax model computes as a dense layer on the flattened
        ``[H, W, C]`` map).
      chw: ``(C, H, W)`` of the flattened map for ``"flatten_chw"`` / ``"conv_as_dense"``
        (``None``: ``(I, 1, 1)``, a 1×1 conv).
    """

    prefix: str
    layout: str = "auto"
    chw: tuple[int, int, int] | None = None


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model. ``missing``, ``unexpected`` (checkpoint keys)
    and ``mismatched`` (``key: shapes``) list every problem; the message lists them all."""

    def __init__(self, model_name: str, missing: Sequence[str] = (),
                 unexpected: Sequence[str] = (), mismatched: Sequence[str] = ()):
        self.model_name = model_name
        self.missing, self.unexpected = list(missing), list(unexpected)
        self.mismatched = list(mismatched)
        parts = [f"the checkpoint does not fit {model_name}:"]
        for title, items in (("missing keys", self.missing), ("unexpected keys", self.unexpected),
                             ("shape mismatches", self.mismatched)):
            if items:
                parts.append(f"{len(items)} {title}: " + ", ".join(items))
        super().__init__(" ".join(parts))


def _expected_shape(leaf: str, shape: tuple, target: Target) -> tuple:
    """The PyTorch shape the checkpoint must have for a Flax leaf of ``shape``."""
    if leaf != "kernel":
        return shape
    if len(shape) == 4:  # [kh, kw, I, O]
        return (shape[3], shape[2], shape[0], shape[1])
    if len(shape) != 2:
        raise ValueError(f"unsupported kernel rank {len(shape)} for {target.prefix}")
    i, o = shape
    if target.layout == "auto":
        return (o, i)
    c, h, w = target.chw or (i, 1, 1)
    if c * h * w != i:
        raise ValueError(f"{target.prefix}: chw={target.chw} does not flatten to {i} inputs")
    return (o, c * h * w) if target.layout == "flatten_chw" else (o, c, h, w)


def _to_flax(leaf: str, array: np.ndarray, target: Target, shape: tuple) -> np.ndarray:
    if leaf != "kernel":
        return array
    if array.ndim == 4 and len(shape) == 4:
        return array.transpose(2, 3, 1, 0)
    if target.layout == "auto":
        return array.T
    o = array.shape[0]
    c, h, w = target.chw or (shape[0], 1, 1)
    # [O, C, H, W] -> [H, W, C, O] -> rows in NHWC flattening order.
    return array.reshape(o, c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, o)


def module_paths(abstract_variables) -> set[str]:
    """Every module path (``"stage1/block1/conv1"``) that owns a variable."""
    flat = traverse_util.flatten_dict(dict(abstract_variables))
    return {"/".join(k[1:-1]) for k in flat}


def expected_keys(abstract_variables, torch_name: Callable[[str, set], Target | str | None]
                  ) -> dict[str, tuple[tuple, tuple, Target, tuple]]:
    """``{PyTorch key: (Flax path, PyTorch shape, Target, Flax shape)}`` for every variable.

    Args:
      abstract_variables: ``model.init`` output (or its ``jax.eval_shape``).
      torch_name: ``(module path, all module paths) -> Target | prefix | None``; ``None`` is a
        bug of the family (a vai_jax parameter it cannot name) and raises ``LookupError``.
    """
    flat = traverse_util.flatten_dict(dict(abstract_variables))
    modules = {"/".join(k[1:-1]) for k in flat}
    out = {}
    for path, leaf_value in flat.items():
        collection, module, leaf = path[0], "/".join(path[1:-1]), path[-1]
        if collection not in ("params", "batch_stats") or leaf not in _LEAVES:
            raise LookupError(f"no PyTorch counterpart for variable {'/'.join(path)}")
        target = torch_name(module, modules)
        if target is None:
            raise LookupError(f"no PyTorch name for vai_jax module {module!r}")
        if isinstance(target, str):
            target = Target(target)
        if target.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}; got {target.layout!r}")
        key = f"{target.prefix}.{_LEAVES[leaf]}"
        if key in out:
            raise LookupError(f"two vai_jax variables map to {key}: {out[key][0]} and {path}")
        shape = tuple(leaf_value.shape)
        out[key] = (path, _expected_shape(leaf, shape, target), target, shape)
    return out


def convert(abstract_variables, state_dict: Mapping[str, np.ndarray],
            torch_name: Callable[[str, set], Target | str | None], *, model_name: str,
            ignore: Sequence[str] = ()) -> dict:
    """PyTorch ``state_dict`` → Flax variables with the structure of ``abstract_variables``.

    Args:
      abstract_variables: ``model.init`` output or its ``jax.eval_shape`` (shapes and dtypes).
      state_dict: ``{key: numpy array}``.
      torch_name: the family's naming function (see :func:`expected_keys`).
      model_name: for the error message.
      ignore: regular expressions of checkpoint keys that may be present and are not loaded
        (besides :data:`ALWAYS_IGNORED`).

    Returns:
      ``{"params": ..., ["batch_stats": ...]}`` of NumPy arrays in the abstract dtypes.

    Raises:
      CheckpointError: listing every missing key, unexpected key and shape (or dtype) mismatch.
    """
    expected = expected_keys(abstract_variables, torch_name)
    patterns = [re.compile(p) for p in tuple(ALWAYS_IGNORED) + tuple(ignore)]
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict
                  if k not in expected and not any(p.fullmatch(k) for p in patterns)]
    mismatched = []
    for key, (_, torch_shape, _, _) in expected.items():
        if key not in state_dict:
            continue
        value = np.asarray(state_dict[key])
        if tuple(value.shape) != torch_shape:
            mismatched.append(f"{key} {tuple(value.shape)} (expected {torch_shape})")
        elif not np.issubdtype(value.dtype, np.floating):
            mismatched.append(f"{key} has dtype {value.dtype} (expected a floating dtype)")
    if missing or unexpected or mismatched:
        raise CheckpointError(model_name, missing, unexpected, mismatched)
    flat_abstract = traverse_util.flatten_dict(dict(abstract_variables))
    flat = {}
    for key, (path, _, target, shape) in expected.items():
        value = _to_flax(path[-1], np.asarray(state_dict[key]), target, shape)
        flat[path] = np.ascontiguousarray(value, dtype=flat_abstract[path].dtype)
    return traverse_util.unflatten_dict(flat)


def abstract_init(model, input_size: int):
    """``model.init``'s variables as shapes only (nothing is allocated or compiled)."""
    import jax.numpy as jnp

    x = jnp.zeros((1, input_size, input_size, 3), jnp.float32)
    return jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
