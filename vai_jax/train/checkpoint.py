"""Checkpoints with orbax: periodic, final and on-signal saves, keep-last-k plus best, resume.

A checkpoint at step ``s`` is a directory ``<dir>/<s>/`` holding two items:

* ``state`` — the whole :class:`~vai_jax.train.state.TrainState` as a state dict (params,
  batch_stats, optimiser state, rng, step, EMA, loss scale, plateau state, skip count);
* ``meta`` — JSON: the data iterator position (``grain`` ``get_state()``, so resuming continues
  with the next unseen batch), the step's metrics and any loop bookkeeping.

Saving is asynchronous (device arrays are copied to host before :meth:`save` returns, the files
are written in the background) and atomic (orbax writes to a temporary directory and renames
it when complete), so a process killed at any moment leaves only whole checkpoints. On restore
a checkpoint that cannot be read is reported with a warning naming its step and the previous
one is used; restoring into a state of different shapes raises a ValueError naming the first
mismatching parameter.
"""
from __future__ import annotations

import logging
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import serialization
from orbax.checkpoint import checkpoint_managers as ocm

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


def _item_handlers() -> dict:
    return {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}


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
        if save_every < 1 or max_to_keep < 1:
            raise ValueError(f"save_every and max_to_keep must be >= 1; got {save_every}, "
                             f"{max_to_keep}")
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
        """
        step = int(step)
        if step in self._manager.all_steps():
            return False
        metrics = {k: float(v) for k, v in (metrics or {}).items()}
        meta = {"step": step, "metrics": metrics, "extra": extra or {},
                "data_state": None if data_state is None else data_state.decode("utf-8")}
        has_best = self.best_metric is not None and self.best_metric in metrics
        return self._manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(serialization.to_state_dict(state)),
                                    meta=ocp.args.JsonSave(meta)),
            metrics=metrics if has_best else None, force=True)

    def wait_until_finished(self) -> None:
        """Block until background writes are committed."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

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
        """Restore into the structure (and shardings) of ``state``.

        Args:
          state: a template train state of the right structure (e.g. a freshly created one);
            its arrays' shardings are used for the restored arrays.
          step: a specific step; ``None`` = the latest readable one, falling back to earlier
            checkpoints (with a warning naming the bad step) when one cannot be read.

        Returns:
          ``(state, data_state_bytes_or_None, meta)`` or ``None`` when there is no checkpoint.

        Raises:
          ValueError: the checkpoint's shapes differ from ``state``'s (names the parameter).
        """
        steps = [step] if step is not None else self.all_steps()[::-1]
        template = serialization.to_state_dict(state)
        abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None))
            if hasattr(x, "shape") else x, template)
        for candidate in steps:
            try:
                saved = self._manager.item_metadata(candidate)["state"]
                saved_shapes = _shapes(saved)
                if not saved_shapes:
                    raise ValueError("empty or unreadable metadata")
            except Exception as err:  # noqa: BLE001 - any unreadable checkpoint falls back
                self._report(candidate, err, step is None)
                continue
            check_compatible(saved_shapes, _shapes(template), step=candidate)
            try:
                out = self._manager.restore(candidate, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
                restored = serialization.from_state_dict(state, out["state"])
            except Exception as err:  # noqa: BLE001
                self._report(candidate, err, step is None)
                continue
            meta = dict(out["meta"])
            data = meta.get("data_state")
            return restored, None if data is None else data.encode("utf-8"), meta
        if steps:
            logger.warning("no readable checkpoint in %s (tried steps %s)", self.directory, steps)
            if step is not None:
                raise ValueError(f"checkpoint step {step} in {self.directory} cannot be read")
        return None

    def _report(self, step: int, err: Exception, falling_back: bool) -> None:
        logger.warning("checkpoint at step %d in %s is corrupt or incomplete (%s: %s)%s", step,
                       self.directory, type(err).__name__, str(err)[:300],
                       "; falling back to the previous checkpoint" if falling_back else "")
        if not falling_back:
            raise ValueError(f"checkpoint step {step} in {self.directory} cannot be read: "
                             f"{type(err).__name__}: {err}") from err


def restore_params(directory: str, *, step: int | None = None) -> dict:
    """Read a checkpoint's raw state dict (NumPy arrays) without a template; latest by default.

    Returns ``{"params": ..., "batch_stats": ..., "step": ..., ...}`` as saved.
    """
    with ocp.CheckpointManager(os.path.abspath(directory), item_handlers=_item_handlers(),
                               options=ocp.CheckpointManagerOptions(read_only=True)) as mgr:
        step = mgr.latest_step() if step is None else step
        if step is None:
            raise ValueError(f"no checkpoint in {directory}")
        out = mgr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    return jax.tree.map(np.asarray, out["state"])
