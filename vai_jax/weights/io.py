"""Reading checkpoints of other libraries as ``{name: numpy array}`` and writing / reading
converted variables in a JAX-native file.

Inputs (:func:`read_state_dict`):

* ``.safetensors`` — with the ``safetensors`` package (no torch needed): timm's and the
  Hugging Face hub's format.
* ``.pth`` / ``.pt`` / ``.bin`` / ``.ckpt`` — PyTorch pickles (torchvision's downloads), read with
  ``torch.load(..., weights_only=True)``; torch is an optional extra (``pip install
  "vai-jax[torch]"``). A ``{"state_dict": ...}`` or ``{"model": ...}`` wrapper is unwrapped.
* ``.npz`` — NumPy archives (``np.savez(path, **{k: v.numpy() for k, v in sd.items()})``).
* an in-memory mapping ``{name: array}`` (NumPy arrays, or anything ``np.asarray`` takes,
  torch tensors included).

Output (:func:`save` / :func:`load`): the variables dict (``{"params": ..., "batch_stats": ...}``)
as one Flax msgpack file (:func:`flax.serialization.msgpack_serialize`): a single file, readable
without this package by ``flax.serialization.msgpack_restore``.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
SUFFIXES = (".safetensors", ".npz") + TORCH_SUFFIXES


def _to_numpy(name: str, value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        value = value.numpy()
    try:
        array = np.asarray(value)
    except Exception as e:  # noqa: BLE001 - report which entry is not an array
        raise ValueError(f"state-dict entry {name!r} is not an array: "
                         f"{type(value).__name__} ({e})") from e
    if array.dtype == object:
        raise ValueError(f"state-dict entry {name!r} is not a numeric array: "
                         f"{type(value).__name__}")
    return array


def _unwrap(obj: Any, path: str) -> Mapping:
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), Mapping):
                return obj[key]
        return obj
    if hasattr(obj, "state_dict"):  # a whole pickled nn.Module
        return obj.state_dict()
    raise ValueError(f"{path} does not hold a state dict (a mapping of names to tensors); "
                     f"it holds a {type(obj).__name__}")


def _read_torch(path: str) -> Mapping:
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            f"reading {path} needs torch (a PyTorch pickle): pip install 'vai-jax[torch]', or "
            "use the checkpoint's .safetensors version (timm publishes torchvision's weights so), "
            "which needs no torch") from e
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated or foreign files raise many types
        raise ValueError(f"{path} is not a readable PyTorch checkpoint: "
                         f"{type(e).__name__}: {e}") from e
    return _unwrap(obj, path)


def read_state_dict(source) -> dict[str, np.ndarray]:
    """A checkpoint as ``{name: numpy array}``.

    Args:
      source: a path (``str`` or ``os.PathLike``) ending in one of :data:`SUFFIXES`, or a mapping
        of names to arrays.

    Returns:
      A new dict of NumPy arrays (torch ``bfloat16`` tensors become float32).

    Raises:
      FileNotFoundError: the path does not exist.
      ImportError: a PyTorch pickle and no torch installed.
      ValueError: an unknown suffix, a file that cannot be read as its format (e.g. truncated),
        or an entry that is not a numeric array.
    """
    if isinstance(source, Mapping):
        items = source.items()
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"checkpoint not found: {path}")
        suffix = os.path.splitext(path)[1].lower()
        if suffix == ".safetensors":
            from safetensors.numpy import load_file
            try:
                items = load_file(path).items()
            except Exception as e:  # noqa: BLE001
                raise ValueError(f"{path} is not a readable safetensors file: "
                                 f"{type(e).__name__}: {e}") from e
        elif suffix == ".npz":
            try:
                with np.load(path, allow_pickle=False) as z:
                    items = {k: z[k] for k in z.files}.items()
            except Exception as e:  # noqa: BLE001
                raise ValueError(f"{path} is not a readable .npz file: "
                                 f"{type(e).__name__}: {e}") from e
        elif suffix in TORCH_SUFFIXES:
            items = _read_torch(path).items()
        else:
            raise ValueError(f"unknown checkpoint suffix {suffix!r} of {path}; expected one of "
                             f"{', '.join(SUFFIXES)}")
    else:
        raise TypeError(f"source must be a path or a mapping of names to arrays; got "
                        f"{type(source).__name__}")
    out = {}
    for name, value in items:
        if not isinstance(name, str):
            raise ValueError(f"state-dict keys must be strings; got {name!r}")
        out[name] = _to_numpy(name, value)
    return out


def save(path, variables) -> str:
    """Write ``variables`` (a nested dict of arrays, e.g. ``{"params": ..., "batch_stats":
    ...}``) to ``path`` as one Flax msgpack file; parent folders are created. Returns the path."""
    path = os.fspath(path)
    if not isinstance(variables, Mapping):
        raise TypeError(f"variables must be a mapping (e.g. {{'params': ...}}); got "
                        f"{type(variables).__name__}")
    state = serialization.to_state_dict(jax.tree.map(np.asarray, dict(variables)))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(serialization.msgpack_serialize(state))
    os.replace(tmp, path)
    return path


def load(path, target=None) -> dict:
    """Read variables written by :func:`save`.

    Args:
      path: the file.
      target: optional variables (or ``jax.eval_shape`` structs) of the expected structure,
        e.g. ``model.init(...)``'s; then every name and shape must agree.

    Returns:
      The variables as a nested dict of ``jax.Array``.

    Raises:
      ValueError: the file is not a msgpack file of variables, or does not fit ``target``.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    with open(path, "rb") as f:
        data = f.read()
    try:
        state = serialization.msgpack_restore(data)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{path} is not a readable vai_jax weights file (Flax msgpack): "
                         f"{type(e).__name__}: {e}") from e
    if not isinstance(state, dict) or "params" not in state:
        raise ValueError(f"{path} does not hold model variables (no 'params' collection)")
    if target is not None:
        want = {jax.tree_util.keystr(k): tuple(v.shape)
                for k, v in jax.tree_util.tree_leaves_with_path(dict(target))}
        got = {jax.tree_util.keystr(k): tuple(np.shape(v))
               for k, v in jax.tree_util.tree_leaves_with_path(state)}
        problems = [f"missing {k}" for k in sorted(set(want) - set(got))]
        problems += [f"unexpected {k}" for k in sorted(set(got) - set(want))]
        problems += [f"{k}: shape {got[k]}, expected {want[k]}"
                     for k in sorted(set(want) & set(got)) if got[k] != want[k]]
        if problems:
            raise ValueError(f"{path} does not fit the target variables: " + "; ".join(problems))
    return jax.tree.map(jnp.asarray, state)
