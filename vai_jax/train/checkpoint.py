"""Checkpoints with orbax: periodic, final and on-signal saves, keep-last-k plus best, resume.

A checkpoint at step ``s`` is a directory ``<dir>/<s>/`` holding two items:

* ``state`` — the whole :class:`~vai_jax.train.state.TrainState` as a state dict (params,
  batch_stats, optimiser state, rng, step, EMA, loss scale, plateau state, skip count);
* ``meta`` — JSON: the data iterator position (``grain`` ``get_state()``, so resuming continues
  with the next unseen batch), the step's metrics, any loop bookkeeping and ``integrity``: the
  SHA-256 of every array of ``state`` (its bytes in the saved dtype, keyed by the parameter path
  such as ``params/conv/kernel``) and of the rest of ``meta``.

Saving is asynchronous (device arrays are copied to host before :meth:`save` returns, the files
are written in the background) and atomic (orbax writes to a temporary directory and renames
it when complete), so a process killed at any moment leaves only whole checkpoints.

On restore every array is checked against its recorded checksum. A checkpoint that cannot be
read or whose checksums do not match (bit rot, a truncated copy) is reported with a warning
naming its step and the first mismatching entry, and the previous checkpoint is used. When the
directory holds checkpoints but none is intact, :meth:`CheckpointManager.restore` raises
:class:`CorruptCheckpointError` rather than answering "no checkpoint"; training afresh over
such a directory is the explicit :meth:`CheckpointManager.delete_all` (``fit(restart=True)``).
Checkpoints written before checksums were recorded are restored unverified, with a warning.
Restoring into a state of different shapes raises a ValueError naming the first mismatching
parameter.

Arrays that no process holds completely (sharded over several hosts and not replicated) are not
checksummed; replicated arrays are checked through one local copy.

Test hook: when the environment variable ``VAI_JAX_CHECKPOINT_WRITE_DELAY_S`` is set (seconds)
as a :class:`CheckpointManager` is created, its background writes wait that long before the
checkpoint is committed, so that a test can kill the process while an asynchronous save is in
flight.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import serialization
from orbax.checkpoint import checkpoint_managers as ocm

from vai_jax._validation import check_int

logger = logging.getLogger(__name__)


def _path_str(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def _shapes(tree) -> dict:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {_path_str(p): tuple(getattr(v, "shape", np.shape(v))) for p, v in flat}


def check_compatible(saved_shapes: dict, target_shapes: dict, *, step: int) -> None:
    """ValueError naming the first parameter whose shape (or presence) differs."""
    for name in sorted(set(saved_shapes) | set(target_shapes)):
        if name not in saved_shapes:
            raise ValueError(f"checkpoint step {step} has no entry {name!r} that the model has "
                             f"(shape {target_shapes[name]}); is it the same model?")
        if name not in target_shapes:
            raise ValueError(f"checkpoint step {step} has entry {name!r} (shape "
                             f"{saved_shapes[name]}) that the model does not have")
        if saved_shapes[name] != target_shapes[name]:
            raise ValueError(
                f"shape mismatch restoring checkpoint step {step}: parameter {name!r} is "
                f"{saved_shapes[name]} in the checkpoint but {target_shapes[name]} in the model")


# Top-level TrainState fields added after checkpoints were first written: a checkpoint without
# one restores it from the template (e.g. skip_causes as zeros) instead of failing.
LATER_FIELDS = ("skip_causes",)


def _split_later_fields(template: dict, saved, saved_shapes: dict) -> tuple[dict, dict]:
    """``(restore target, {field: template value})`` for the LATER_FIELDS that the checkpoint
    holds no array of: left out of the target (or ``None`` where the checkpoint has the key
    with no value) and taken from the template after restoring."""
    absent = {k: template[k] for k in LATER_FIELDS
              if isinstance(template, dict) and k in template and template[k] is not None
              and not any(name == k or name.startswith(k + "/") for name in saved_shapes)}
    target = {k: v for k, v in template.items() if k not in absent}
    for k in absent:
        if hasattr(saved, "keys") and k in saved.keys():
            target[k] = None
    return target, absent


class CorruptCheckpointError(RuntimeError):
    """A checkpoint directory holds checkpoints but the requested one, or every one, is
    unreadable or fails its checksums."""


WRITE_DELAY_ENV = "VAI_JAX_CHECKPOINT_WRITE_DELAY_S"


class _DelayFuture:
    """A commit future that completes ``seconds`` after it is first waited on (test hook)."""

    def __init__(self, seconds: float):
        self._seconds = seconds

    def result(self, timeout: float | None = None):
        del timeout
        time.sleep(self._seconds)

    def cancel(self) -> None:
        pass


def _delayed(handler, seconds: float):
    """``handler`` with its background write finishing ``seconds`` late (test hook)."""
    async_save = handler.async_save

    async def delayed_async_save(*args, **kwargs):
        futures = await async_save(*args, **kwargs)
        return list(futures or []) + [_DelayFuture(seconds)]

    handler.async_save = delayed_async_save
    return handler


def _item_handlers() -> dict:
    state = ocp.StandardCheckpointHandler()
    delay = os.environ.get(WRITE_DELAY_ENV)
    if delay:
        state = _delayed(state, float(delay))
    return {"state": state, "meta": ocp.JsonCheckpointHandler()}


# ----------------------------------------------------------------------------- checksums
def _host_bytes(x) -> np.ndarray | None:
    """The array's values on this host as a C-ordered NumPy array, or ``None`` when no
    complete copy is addressable here (sharded over hosts and not replicated)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        if not x.sharding.is_fully_replicated:
            return None
        x = x.addressable_shards[0].data
    return np.ascontiguousarray(np.asarray(x))


def _digest(x) -> str | None:
    arr = _host_bytes(x)
    if arr is None:
        return None
    return hashlib.sha256(arr.reshape(-1).view(np.uint8)).hexdigest()


def _leaf_digests(tree) -> dict:
    """``{path: sha256 hex}`` of every array leaf of a state dict (see :func:`_host_bytes`)."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if hasattr(leaf, "shape"):
            digest = _digest(leaf)
            if digest is not None:
                out[_path_str(path)] = digest
    return out


def _meta_digest(meta: dict) -> str:
    """SHA-256 of ``meta`` (without ``integrity``) as canonical JSON (stable over a JSON round
    trip: tuples become lists, keys strings)."""
    body = json.loads(json.dumps({k: v for k, v in meta.items() if k != "integrity"}))
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _verify(state_dict, meta: dict) -> str | None:
    """``None`` when ``state_dict`` and ``meta`` match the checksums recorded in ``meta``
    (or none were recorded), else a description of the first mismatch."""
    integrity = meta.get("integrity")
    if integrity is None:
        return None
    if integrity.get("meta") != _meta_digest(meta):
        return "checksum mismatch in the 'meta' item (step, metrics, data position)"
    recorded = integrity.get("leaves", {})
    actual = _leaf_digests(state_dict)
    present = {_path_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(state_dict)[0]}
    for name in sorted(recorded):
        if name not in actual:
            if name in present:
                continue  # not addressable from this process: cannot be checked here
            return f"entry {name!r} with a recorded checksum is missing"
        if actual[name] != recorded[name]:
            return (f"checksum mismatch in {name!r} (sha256 {actual[name][:12]}... read, "
                    f"{recorded[name][:12]}... saved)")
    return None


class CheckpointManager:
    """Save and restore training state (orbax ``CheckpointManager`` underneath).

    Args:
      directory: where step directories go (created).
      save_every: :meth:`should_save` is true every this many steps.
      max_to_keep: keep the latest ``max_to_keep`` checkpoints ...
      best_metric: ... plus the one with the best value of this metric (``None`` = no best).
      best_mode: ``"max"`` or ``"min"``.
      async_save: write files in a background thread.
    """

    def __init__(self, directory: str, *, save_every: int, max_to_keep: int = 3,
                 best_metric: str | None = None, best_mode: str = "max",
                 async_save: bool = True):
        save_every = check_int(save_every, "save_every", ge=1)
        max_to_keep = check_int(max_to_keep, "max_to_keep", ge=1)
        if best_metric is not None and not isinstance(best_metric, str):
            raise TypeError(f"best_metric must be a metric name (str) or None; got "
                            f"{best_metric!r}")
        if best_mode not in ("max", "min"):
            raise ValueError(f"best_mode must be 'max' or 'min'; got {best_mode!r}")
        self.directory = os.path.abspath(directory)
        self.save_every = int(save_every)
        self.best_metric = best_metric
        self._best_mode = best_mode
        policies = [ocm.LatestN(n=max_to_keep)]
        if best_metric is not None:
            policies.append(ocm.BestN(
                get_metric_fn=lambda m: float(m[best_metric]), reverse=best_mode == "min", n=1,
                keep_checkpoints_without_metrics=False))
        options = ocp.CheckpointManagerOptions(
            create=True, enable_async_checkpointing=async_save, cleanup_tmp_directories=True,
            preservation_policy=ocm.AnyPreservationPolicy(policies))
        self._manager = ocp.CheckpointManager(self.directory, options=options,
                                              item_handlers=_item_handlers())

    # ----------------------------------------------------------------------------- saving
    def should_save(self, step: int) -> bool:
        return step > 0 and step % self.save_every == 0

    def save(self, step: int, state, *, data_state: bytes | None = None,
             metrics: dict | None = None, extra: dict | None = None) -> bool:
        """Save ``state`` as step ``step`` (no-op if that step exists). Returns whether saved.

        Args:
          state: the train state (any pytree with ``flax.serialization`` support).
          data_state: the data iterator's ``get_state()`` bytes, restored on resume.
          metrics: scalars of this step; must contain ``best_metric`` for the step to compete
            for "best".
          extra: JSON-serialisable loop bookkeeping returned by :meth:`restore`.

        The arrays' SHA-256 checksums are computed here, before returning (this reads every
        array to the host once), and stored in the step's ``meta`` item.
        """
        step = int(step)
        if step in self._manager.all_steps():
            return False
        metrics = {k: float(v) for k, v in (metrics or {}).items()}
        meta = {"step": step, "metrics": metrics, "extra": extra or {},
                "data_state": None if data_state is None else data_state.decode("utf-8")}
        state_dict = serialization.to_state_dict(state)
        meta["integrity"] = {"algorithm": "sha256", "leaves": _leaf_digests(state_dict),
                             "meta": _meta_digest(meta)}
        has_best = self.best_metric is not None and self.best_metric in metrics
        return self._manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state_dict),
                                    meta=ocp.args.JsonSave(meta)),
            metrics=metrics if has_best else None, force=True)

    def wait_until_finished(self) -> None:
        """Block until background writes are committed."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

    def delete_all(self) -> list[int]:
        """Delete every checkpoint in the directory (intact or not); returns the deleted steps.

        The way to train afresh over a directory that holds checkpoints, e.g. all corrupt ones:
        :meth:`save` never overwrites an existing step.
        """
        self._manager.wait_until_finished()
        steps = self.all_steps()
        for step in steps:
            self._manager.delete(step)
        if steps:
            logger.warning("deleted checkpoints at steps %s in %s", steps, self.directory)
        return steps

    # ---------------------------------------------------------------------------- restoring
    def all_steps(self) -> list[int]:
        self._manager.reload()
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        steps = self.all_steps()
        return steps[-1] if steps else None

    def best_step(self) -> int | None:
        """The kept step with the best ``best_metric`` (``None`` if none was recorded)."""
        if self.best_metric is None:
            return None
        scored = []
        for step in self.all_steps():
            try:
                meta = self._manager.restore(step, args=ocp.args.Composite(
                    meta=ocp.args.JsonRestore()))["meta"]
            except Exception:  # noqa: BLE001 - an unreadable checkpoint is not the best
                continue
            if self.best_metric in meta.get("metrics", {}):
                scored.append((meta["metrics"][self.best_metric], step))
        if not scored:
            return None
        return (max(scored) if self._best_mode == "max" else min(scored))[1]

    def restore(self, state, *, step: int | None = None):
        """Restore into the structure (and shardings) of ``state``, verifying checksums.

        Args:
          state: a template train state of the right structure (e.g. a freshly created one);
            its arrays' shardings and dtypes are used for the restored arrays.
          step: a specific step; ``None`` = the newest intact one, falling back to earlier
            checkpoints (with a warning naming the bad step and the first mismatching entry)
            when one cannot be read or fails its checksums.

        Returns:
          ``(state, data_state_bytes_or_None, meta)``, or ``None`` when the directory holds no
          checkpoint at all.

        Raises:
          CorruptCheckpointError: ``step`` is given and that checkpoint is unreadable or
            corrupt, or ``step`` is ``None`` and every checkpoint is.
          ValueError: the checkpoint's shapes differ from ``state``'s (names the parameter).
        """
        steps = [int(step)] if step is not None else self.all_steps()[::-1]
        template = serialization.to_state_dict(state)
        failures = []
        for candidate in steps:
            try:
                saved = self._manager.item_metadata(candidate)["state"]
                saved_shapes = _shapes(saved)
                if not saved_shapes:
                    raise ValueError("empty or unreadable metadata")
            except Exception as err:  # noqa: BLE001 - any unreadable checkpoint falls back
                failures.append(_report(self.directory, candidate, err, step is None))
                continue
            target, absent = _split_later_fields(template, saved, saved_shapes)
            check_compatible(saved_shapes, _shapes(target), step=candidate)
            saved_dtypes = {_path_str(p): getattr(v, "dtype", None)
                            for p, v in jax.tree_util.tree_flatten_with_path(saved)[0]}
            try:
                out = self._manager.restore(candidate, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(_abstract(target, saved_dtypes)),
                    meta=ocp.args.JsonRestore()))
                meta = dict(out["meta"])
                problem = _verify(out["state"], meta)
                if problem is not None:
                    raise CorruptCheckpointError(problem)
                if "integrity" not in meta:
                    logger.warning("checkpoint at step %d in %s has no checksums (saved before "
                                   "they were recorded); restored without verification",
                                   candidate, self.directory)
                restored = serialization.from_state_dict(
                    state, {**_cast_like(out["state"], target), **absent})
            except Exception as err:  # noqa: BLE001
                failures.append(_report(self.directory, candidate, err, step is None))
                continue
            meta.pop("integrity", None)
            data = meta.get("data_state")
            return restored, None if data is None else data.encode("utf-8"), meta
        if steps:
            raise CorruptCheckpointError(
                f"no intact checkpoint in {self.directory}: " + "; ".join(failures))
        return None


def _report(directory: str, step: int, err: Exception, falling_back: bool) -> str:
    """Raise CorruptCheckpointError for a requested step; else warn and return the reason."""
    reason = (str(err) if isinstance(err, CorruptCheckpointError)
              else f"{type(err).__name__}: {str(err)[:300]}")
    if not falling_back:
        raise CorruptCheckpointError(
            f"checkpoint step {step} in {directory} is corrupt or unreadable: {reason}") from err
    logger.warning("checkpoint at step %d in %s is corrupt or incomplete (%s); falling back to "
                   "the previous checkpoint", step, directory, reason)
    return f"step {step}: {reason}"


def _abstract(template, saved_dtypes: dict):
    """Restore targets: the template's shapes and shardings with the saved dtypes (so that the
    checksums can be verified before any cast)."""
    def target(path, x):
        if not hasattr(x, "shape"):
            return x
        dtype = saved_dtypes.get(_path_str(path))
        dtype = x.dtype if dtype is None else dtype
        return jax.ShapeDtypeStruct(x.shape, dtype, sharding=getattr(x, "sharding", None))
    return jax.tree_util.tree_map_with_path(target, template)


def _cast_like(restored, template):
    """Cast restored arrays to the template's dtypes where they differ."""
    def cast(x, t):
        if hasattr(t, "dtype") and hasattr(x, "dtype") and x.dtype != t.dtype:
            return x.astype(t.dtype)
        return x
    return jax.tree.map(cast, restored, template)


def restore_params(directory: str, *, step: int | None = None) -> dict:
    """Read a checkpoint's raw state dict (NumPy arrays) without a template, verifying checksums.

    Args:
      directory: the checkpoint directory.
      step: a specific step; ``None`` = the newest intact one (earlier ones are used, with a
        warning, when newer ones are corrupt).

    Returns:
      ``{"params": ..., "batch_stats": ..., "step": ..., ...}`` as saved.

    Raises:
      ValueError: the directory holds no checkpoint.
      CorruptCheckpointError: the requested checkpoint, or every one, is unreadable or corrupt.
    """
    directory = os.path.abspath(directory)
    with ocp.CheckpointManager(directory, item_handlers=_item_handlers(),
                               options=ocp.CheckpointManagerOptions(read_only=True)) as mgr:
        steps = [int(step)] if step is not None else sorted(mgr.all_steps())[::-1]
        if not steps:
            raise ValueError(f"no checkpoint in {directory}")
        failures = []
        for candidate in steps:
            try:
                out = mgr.restore(candidate, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
                state = jax.tree.map(np.asarray, out["state"])
                problem = _verify(state, dict(out["meta"]))
                if problem is not None:
                    raise CorruptCheckpointError(problem)
            except Exception as err:  # noqa: BLE001 - any unreadable checkpoint falls back
                failures.append(_report(directory, candidate, err, step is None))
                continue
            return state
    raise CorruptCheckpointError(f"no intact checkpoint in {directory}: " + "; ".join(failures))
