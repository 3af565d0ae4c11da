"""Transfer learning: restore a trained network's variables into a new task's model by name,
and freeze or fine-tune chosen layers.

The path from a classifier to a detector or a pose network: build the new model (the same
backbone under the same parameter names, new heads), initialise it, copy every variable whose
name (and shape) the trained one has with :func:`restore_by_name`, then train with
:func:`freeze` so the chosen layers get no updates.

Names are ``/``-joined paths inside a collection (``"stage1/block1/conv1/kernel"``).
Patterns are either a name prefix at a ``/`` boundary (``"stem"`` matches ``"stem/conv/kernel"``
but not ``"stem2/…"``) or an ``fnmatch`` glob (``"stage*/block1/*"``).
"""
from __future__ import annotations

import dataclasses
import fnmatch
from typing import Mapping, Sequence

import jax
import numpy as np
import optax
from flax import traverse_util


def matches(name: str, patterns: Sequence[str]) -> bool:
    """True when ``name`` equals, starts at a ``/`` boundary with, or globs one of
    ``patterns``."""
    if isinstance(patterns, str):
        patterns = (patterns,)
    for p in patterns:
        p = p.rstrip("/")
        if name == p or name.startswith(p + "/") or fnmatch.fnmatchcase(name, p):
            return True
    return False


@dataclasses.dataclass
class TransferReport:
    """What :func:`restore_by_name` did (names are ``"collection:path"``)."""

    restored: list[str]
    not_in_source: list[str]
    excluded: list[str]
    shape_mismatch: list[str]
    unused_source: list[str]

    def summary(self) -> str:
        return (f"restored {len(self.restored)}, kept initialisation for "
                f"{len(self.not_in_source)} (not in source), {len(self.excluded)} (excluded), "
                f"{len(self.shape_mismatch)} (shape mismatch); {len(self.unused_source)} source "
                f"variables unused")


def _flat(tree) -> dict:
    return {k: v for k, v in traverse_util.flatten_dict(dict(tree)).items()}


def restore_by_name(target: Mapping, source: Mapping, *, include: Sequence[str] | None = None,
                    exclude: Sequence[str] = (), on_mismatch: str = "error"):
    """Copy variables from ``source`` into ``target`` where names agree.

    Args:
      target: the new model's variables ``{"params": ..., ["batch_stats": ...]}`` (fresh init).
      source: the trained model's variables (e.g. from a checkpoint).
      include: only names matching one of these patterns are copied (default: all).
      exclude: names matching these are never copied (e.g. ``["fc"]`` for a new head).
      on_mismatch: ``"error"`` (ValueError naming the variable and both shapes) or
        ``"skip"`` (keep the target's initialisation and list it in the report).

    Returns:
      ``(variables, TransferReport)``; collections missing from ``source`` are kept.
    """
    if on_mismatch not in ("error", "skip"):
        raise ValueError(f"on_mismatch must be 'error' or 'skip'; got {on_mismatch!r}")
    report = TransferReport([], [], [], [], [])
    out = {}
    for collection, tree in target.items():
        tflat = _flat(tree)
        sflat = _flat(source[collection]) if collection in source else {}
        used = set()
        new = {}
        for key, value in tflat.items():
            name = "/".join(key)
            tag = f"{collection}:{name}"
            if (include is not None and not matches(name, include)) or matches(name, exclude):
                report.excluded.append(tag)
                new[key] = value
                continue
            if key not in sflat:
                report.not_in_source.append(tag)
                new[key] = value
                continue
            used.add(key)
            src = sflat[key]
            if np.shape(src) != np.shape(value):
                if on_mismatch == "error":
                    raise ValueError(
                        f"cannot restore {tag}: shape {tuple(np.shape(src))} in the source but "
                        f"{tuple(np.shape(value))} in the target (exclude it, e.g. "
                        f"exclude=[{'/'.join(key[:-1])!r}], or pass on_mismatch='skip')")
                report.shape_mismatch.append(tag)
                new[key] = value
                continue
            new[key] = jax.numpy.asarray(src, dtype=getattr(value, "dtype", None))
            report.restored.append(tag)
        report.unused_source += [f"{collection}:{'/'.join(k)}" for k in sflat if k not in used]
        out[collection] = traverse_util.unflatten_dict(new)
    return out, report


def trainable_labels(params: Mapping, *, frozen: Sequence[str] = (),
                     trainable: Sequence[str] | None = None) -> dict:
    """A pytree like ``params`` of ``"trainable"`` / ``"frozen"`` labels.

    A leaf is frozen when it matches ``frozen``, or when ``trainable`` is given and it does not
    match it (``trainable=["fc"]`` is linear probing / head-only fine-tuning).

    Raises:
      ValueError: a pattern of ``frozen`` or ``trainable`` that matches no parameter (a typo
      would otherwise freeze or train nothing, silently). TypeError: a pattern list given as one
      string.
    """
    flat = _flat(params)
    names = ["/".join(key) for key in flat]
    for argname, patterns in (("frozen", frozen), ("trainable", trainable)):
        if patterns is None:
            continue
        if isinstance(patterns, str):
            raise TypeError(f"{argname} must be a sequence of patterns, not the string "
                            f"{patterns!r}")
        unused = [p for p in patterns if not any(matches(n, [p]) for n in names)]
        if unused:
            raise ValueError(f"{argname}: pattern(s) {unused} match no parameter; parameters "
                             f"are: {', '.join(names[:20])}{' ...' if len(names) > 20 else ''}")
    labels = {}
    for key in flat:
        name = "/".join(key)
        is_frozen = matches(name, frozen) or (trainable is not None
                                              and not matches(name, trainable))
        labels[key] = "frozen" if is_frozen else "trainable"
    return traverse_util.unflatten_dict(labels)


def freeze(tx: optax.GradientTransformation, params: Mapping, *, frozen: Sequence[str] = (),
           trainable: Sequence[str] | None = None) -> optax.GradientTransformation:
    """``tx`` for the trainable leaves and ``optax.set_to_zero()`` for the frozen ones
    (``optax.multi_transform``); see :func:`trainable_labels` for the selection. Frozen leaves
    get exactly zero updates (also no weight decay) and no optimiser state."""
    labels = trainable_labels(params, frozen=frozen, trainable=trainable)
    return optax.multi_transform({"trainable": tx, "frozen": optax.set_to_zero()}, labels)


def count_by_label(params: Mapping, labels: Mapping) -> dict[str, int]:
    """Number of parameters per label (e.g. ``{"trainable": 1030, "frozen": 464154}``)."""
    out: dict[str, int] = {}
    flat_l = _flat(labels)
    for key, value in _flat(params).items():
        out[flat_l[key]] = out.get(flat_l[key], 0) + int(np.size(value))
    return out


