"""The training loop: steps, logging, evaluation, plateau/early stopping, checkpoints, signals.

:func:`fit` drives an already-built (jitted) ``train_step`` over a resumable data iterator
(anything with ``__next__``, ``get_state()`` and ``set_state()``, e.g. a grain iterator). It
resumes from the newest intact checkpoint (state, rngs, data position, loop bookkeeping) and
stops with an error when the checkpoint directory holds checkpoints but none is intact
(``restart=True`` deletes them and trains from step 0 instead), shows
a tqdm bar (step, loss, images/s, ETA), writes metrics, evaluates periodically, saves every
``save_every`` steps, at the end, and when SIGTERM/SIGINT arrives (then returns early). At the
end it reports the steps the train step skipped (not applied: invalid labels, non-finite loss or
gradients) with their causes: a warning, a ``"skipped"`` record of the metrics writer and
:attr:`FitResult.skip_causes`.
"""
from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
from typing import Callable, Iterable

import jax
import numpy as np
from tqdm.auto import tqdm

from vai_jax._validation import check_int
from vai_jax.train.checkpoint import CheckpointManager, CorruptCheckpointError
from vai_jax.train.metrics_writer import MetricsWriter
from vai_jax.train.optim import plateau_update
from vai_jax.train.state import SKIP_CAUSES

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class EarlyStopping:
    """Stop when ``metric`` has not improved by ``min_delta`` for ``patience`` evaluations."""

    metric: str
    patience: int
    mode: str = "max"
    min_delta: float = 0.0
    best: float | None = None
    bad_evals: int = 0

    def __post_init__(self):
        if self.mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min'; got {self.mode!r}")
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1; got {self.patience}")

    def update(self, value: float) -> bool:
        """Record one evaluation; True when training should stop."""
        sign = 1.0 if self.mode == "max" else -1.0
        if self.best is None or sign * (value - self.best) > self.min_delta:
            self.best, self.bad_evals = float(value), 0
        else:
            self.bad_evals += 1
        return self.bad_evals >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "bad_evals": self.bad_evals}

    def load_state_dict(self, d: dict) -> None:
        self.best, self.bad_evals = d.get("best"), int(d.get("bad_evals", 0))


@dataclasses.dataclass
class Plateau:
    """Reduce-on-plateau driven by an evaluation metric (the transformation lives in
    :func:`vai_jax.train.optim.make_plateau`; its state in ``TrainState.plateau_state``)."""

    transform: object
    metric: str
    mode: str = "max"

    def __post_init__(self):
        if self.mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min'; got {self.mode!r}")
        if not isinstance(self.metric, str):
            raise TypeError(f"metric must be a metric name (str); got {self.metric!r}")


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns.

    ``skipped_steps`` counts the steps of the whole run (from step 0, across resumptions) whose
    update was not applied; ``skip_causes`` splits them by cause (the keys of
    :data:`vai_jax.train.state.SKIP_CAUSES`, or ``{"unknown": n}`` for a state without
    ``skip_causes``).
    """

    state: object
    step: int
    stopped_by: str  # "completed" | "early_stopping" | "signal"
    last_eval: dict
    images_per_sec: float
    train_seconds: float
    skipped_steps: int = 0
    skip_causes: dict = dataclasses.field(default_factory=dict)


def skip_summary(state) -> tuple[int, dict]:
    """``(skipped_steps, {cause: count})`` of a train state (read from the devices); causes
    with a zero count are left out."""
    total = int(jax.device_get(state.skipped_steps))
    causes = getattr(state, "skip_causes", None)
    if causes is None:
        return total, ({"unknown": total} if total else {})
    counts = np.asarray(jax.device_get(causes)).reshape(-1)
    return total, {name: int(n) for name, n in zip(SKIP_CAUSES, counts) if n}


class _SignalFlag:
    """Sets ``.received`` on SIGTERM/SIGINT while active (main thread only)."""

    def __init__(self):
        self.received = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        del frame
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def evaluate(eval_step: Callable, state, batches: Iterable[dict], *, batch_size: int) -> dict:
    """Run ``eval_step`` over ``batches`` and return per-example averages.

    A last batch smaller than ``batch_size`` is padded (mask 0) to keep shapes static.
    ``eval_step`` returns sums including ``"count"``; each other sum ``name`` (suffix
    ``_correct``/``_sum`` removed) is divided by the total count, except ``"invalid_labels"``
    (:func:`vai_jax.train.step.make_eval_step` with ``num_classes``): when not 0 it is returned
    as a total and logged as a warning (the metrics of those batches are NaN).
    """
    batch_size = check_int(batch_size, "batch_size", ge=1)
    totals: dict = {}
    for batch in batches:
        n = len(next(iter(batch.values())))
        mask = np.ones(batch_size, np.float32)
        if n < batch_size:
            pad = batch_size - n
            batch = {k: np.concatenate([v, np.repeat(v[-1:], pad, 0)]) for k, v in batch.items()}
            mask[n:] = 0
        batch = dict(batch, mask=mask)
        sums = jax.device_get(eval_step(state, batch))
        for k, v in sums.items():
            totals[k] = totals.get(k, 0.0) + float(v)
    count = totals.pop("count", 0.0)
    invalid = totals.pop("invalid_labels", None)
    if not count:
        raise ValueError("evaluation saw no examples")
    out = {}
    for k, v in totals.items():
        for suffix in ("_correct", "_sum"):
            k = k.removesuffix(suffix)
        out[k] = v / count
    out["count"] = count
    if invalid:
        out["invalid_labels"] = invalid
        logger.warning("evaluation saw %d class id(s) outside [0, num_classes); the metrics "
                       "of their batches are NaN", int(invalid))
    return out


def fit(state, *, train_step: Callable, train_iter, num_steps: int, batch_size: int,
        eval_fn: Callable | None = None, eval_every: int = 0, log_every: int = 50,
        checkpoints: CheckpointManager | None = None, writer: MetricsWriter | None = None,
        learning_rate_fn: Callable | None = None, plateau: Plateau | None = None,
        early_stopping: EarlyStopping | None = None, place_state: Callable = lambda s: s,
        progress: bool = True, restart: bool = False) -> FitResult:
    """Train ``state`` to ``num_steps`` steps.

    Args:
      state: a fresh train state (placed on devices); replaced by the newest intact checkpoint's
        when ``checkpoints`` has one (the data iterator is then moved to the saved position).
      train_step: ``(state, host_batch) -> (state, metrics)``, e.g.
        :func:`vai_jax.train.parallel.data_parallel` of a step (the state may be donated).
      train_iter: iterator of host batches with ``get_state``/``set_state``.
      num_steps: total steps of the run (counted from step 0, not from the resume point).
      batch_size: global batch size (for images/s).
      eval_fn: ``state -> {metric: float}``; called every ``eval_every`` steps and at the end.
      log_every: steps between train-metric lines (metrics are fetched from devices only then).
      checkpoints: saves every ``checkpoints.save_every`` steps, at the end and on signals.
      writer: metrics sink (JSON lines + TensorBoard).
      learning_rate_fn: ``step -> lr`` for logging (the plateau scale is applied on top).
      plateau: reduce the learning rate when an eval metric stalls.
      early_stopping: stop when an eval metric stalls.
      place_state: re-places a state modified outside the step (e.g. ``parallel.replicate``).
      progress: show the tqdm bar.
      restart: delete every checkpoint in ``checkpoints``' directory and train from step 0
        (the only way to train afresh over existing checkpoints, e.g. when all are corrupt).
        By default the run resumes from the newest intact checkpoint.

    Returns:
      :class:`FitResult`. Steps the train step skipped (see
      :func:`vai_jax.train.step.make_train_step`) are reported at the end: a warning naming
      the count per cause, a ``split="skipped"`` record of ``writer`` (``skipped_steps`` and
      ``skipped_<cause>`` for every cause) and ``FitResult.skipped_steps`` /
      ``FitResult.skip_causes``.

    Raises:
      CorruptCheckpointError: ``restart`` is False and the checkpoint directory holds
        checkpoints of which none is intact (unreadable or failing its checksums).
      ValueError: ``restart=True`` without ``checkpoints``; a negative ``num_steps`` or
        ``eval_every``, ``batch_size`` or ``log_every`` below 1. TypeError: a non-integer count,
        a ``train_step`` / ``eval_fn`` that is not callable, a ``train_iter`` without
        ``__next__`` (or, with ``checkpoints``, without ``get_state`` / ``set_state``).
    """
    num_steps = check_int(num_steps, "num_steps", ge=0)
    batch_size = check_int(batch_size, "batch_size", ge=1)
    log_every = check_int(log_every, "log_every", ge=1)
    eval_every = check_int(eval_every, "eval_every", ge=0)
    if not callable(train_step):
        raise TypeError(f"train_step must be callable (state, batch) -> (state, metrics); got "
                        f"{type(train_step).__name__}")
    if eval_fn is not None and not callable(eval_fn):
        raise TypeError(f"eval_fn must be callable state -> dict or None; got "
                        f"{type(eval_fn).__name__}")
    needs = ("__next__",) + (("get_state", "set_state") if checkpoints is not None else ())
    missing = [m for m in needs if not hasattr(train_iter, m)]
    if missing:
        raise TypeError(f"train_iter must be an iterator with {', '.join(needs)}; "
                        f"{type(train_iter).__name__} lacks {', '.join(missing)}")
    if not isinstance(restart, bool):
        raise TypeError(f"restart must be a bool; got {restart!r}")
    start = 0
    if restart and checkpoints is None:
        raise ValueError("restart=True deletes existing checkpoints and needs checkpoints=; "
                         "got checkpoints=None")
    if restart:
        deleted = checkpoints.delete_all()
        tqdm.write(f"restart=True: training from step 0 (deleted the checkpoints at steps "
                   f"{deleted} in {checkpoints.directory})")
    elif checkpoints is not None:
        try:
            restored = checkpoints.restore(state)
        except CorruptCheckpointError as err:
            raise CorruptCheckpointError(
                f"cannot resume: {err}. Pass restart=True to fit to delete these checkpoints "
                "and train from step 0") from err
        if restored is not None:
            state, data_state, meta = restored
            state = place_state(state)
            if data_state is not None:
                train_iter.set_state(data_state)
            extra = meta.get("extra", {})
            if early_stopping is not None and "early_stopping" in extra:
                early_stopping.load_state_dict(extra["early_stopping"])
            start = int(meta["step"])
            logger.info("resumed from step %d", start)
            tqdm.write(f"resumed from checkpoint step {start}")
    last_eval: dict = {}
    stopped_by = "completed"
    step = start
    intervals: list[tuple[int, float]] = []  # (images, seconds) between log lines
    bar = tqdm(total=num_steps, initial=start, disable=not progress, dynamic_ncols=True,
               unit="step", desc="train")

    def extra_state():
        return {"early_stopping": early_stopping.state_dict()} if early_stopping else {}

    last_eval_step = -1

    def run_eval():
        nonlocal state, last_eval, last_eval_step
        last_eval_step = step
        last_eval = {k: float(v) for k, v in eval_fn(state).items()}
        if writer is not None:
            writer.write(step, {k: v for k, v in last_eval.items() if k != "count"},
                         split="eval")
        tqdm.write(f"step {step}: eval " + " ".join(
            f"{k}={v:.4f}" for k, v in last_eval.items() if k != "count"))
        stop = False
        if plateau is not None and plateau.metric in last_eval:
            value = last_eval[plateau.metric] * (-1.0 if plateau.mode == "max" else 1.0)
            old = float(state.plateau_state.scale)
            state = place_state(state.replace(
                plateau_state=plateau_update(plateau.transform, state.plateau_state, value)))
            if float(state.plateau_state.scale) < old:
                tqdm.write(f"step {step}: {plateau.metric} plateaued; learning-rate scale "
                           f"{old:g} -> {float(state.plateau_state.scale):g}")
        if early_stopping is not None and early_stopping.metric in last_eval:
            stop = early_stopping.update(last_eval[early_stopping.metric])
        return stop

    with _SignalFlag() as flag:
        t_log, images_since = time.perf_counter(), 0
        while step < num_steps:
            try:
                batch = next(train_iter)
            except StopIteration:
                logger.warning("data ran out at step %d", step)
                break
            state, metrics = train_step(state, batch)
            step += 1
            images_since += batch_size
            bar.update(1)
            if step % log_every == 0 or step == num_steps:
                metrics = jax.device_get(metrics)
                now = time.perf_counter()
                rate = images_since / max(now - t_log, 1e-9)
                intervals.append((images_since, now - t_log))
                scalars = {k: float(v) for k, v in metrics.items()}
                scalars["images_per_sec"] = rate
                if learning_rate_fn is not None:
                    lr = float(learning_rate_fn(step - 1))
                    if state.plateau_state is not None:
                        lr *= float(state.plateau_state.scale)
                    scalars["learning_rate"] = lr
                if writer is not None:
                    writer.write(step, scalars, split="train")
                bar.set_postfix(loss=f"{scalars['loss']:.4f}", img_s=f"{rate:.0f}",
                                refresh=False)
                t_log, images_since = time.perf_counter(), 0
            stop = False
            if eval_fn is not None and eval_every and step % eval_every == 0 and step < num_steps:
                stop = run_eval()
                t_log = time.perf_counter()  # evaluation time is not training time
            periodic = checkpoints is not None and checkpoints.should_save(step)
            if checkpoints is not None and ((periodic and step < num_steps) or stop
                                            or flag.received):
                checkpoints.save(step, state, data_state=train_iter.get_state(),
                                 metrics=last_eval if last_eval else None, extra=extra_state())
            if flag.received:
                stopped_by = "signal"
                tqdm.write(f"{flag.received} received: saved step {step}, stopping")
                break
            if stop:
                stopped_by = "early_stopping"
                tqdm.write(f"early stopping at step {step}")
                break
        bar.close()
        if stopped_by != "signal":
            if eval_fn is not None and last_eval_step != step:
                run_eval()
            if checkpoints is not None:
                checkpoints.save(step, state, data_state=train_iter.get_state(),
                                 metrics=last_eval if last_eval else None, extra=extra_state())
        if checkpoints is not None:
            checkpoints.wait_until_finished()
        skipped, causes = _report_skipped(state, step, writer)
        if writer is not None:
            writer.flush()
    # The first interval includes compilation; leave it out of the rate when there are others.
    steady = intervals[1:] if len(intervals) > 1 else intervals
    n_images, seconds = sum(i for i, _ in steady), sum(t for _, t in steady)
    return FitResult(state=state, step=step, stopped_by=stopped_by, last_eval=last_eval,
                     images_per_sec=n_images / seconds if seconds else float("nan"),
                     train_seconds=sum(t for _, t in intervals), skipped_steps=skipped,
                     skip_causes=causes)


def _report_skipped(state, step: int, writer: MetricsWriter | None) -> tuple[int, dict]:
    """Warn about the run's skipped steps by cause and record them with ``writer``."""
    skipped, causes = skip_summary(state)
    if writer is not None:
        record = {"skipped_steps": skipped}
        names = SKIP_CAUSES if getattr(state, "skip_causes", None) is not None else ("unknown",)
        record.update({f"skipped_{c}": causes.get(c, 0) for c in names})
        writer.write(step, record, split="skipped")
    if skipped:
        text = ", ".join(f"{c}: {n}" for c, n in causes.items())
        message = (f"{skipped} of {step} train steps were skipped (update not applied) — "
                   f"{text}")
        logger.warning(message)
        tqdm.write(message)
    return skipped, causes
