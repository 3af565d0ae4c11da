"""vai_jax.train: training state, steps, data parallelism, optimisation, checkpoints, loop.

One concern per module:

* :mod:`~vai_jax.train.state` — ``TrainState`` (params, batch_stats, opt_state, step, rng, EMA,
  loss scale, plateau state, skipped-step count) and ``init_variables``.
* :mod:`~vai_jax.train.step` — pure ``make_train_step`` / ``make_eval_step``.
* :mod:`~vai_jax.train.parallel` — ``('data',)`` mesh, shardings, ``data_parallel`` jit.
* :mod:`~vai_jax.train.distributed` — ``initialize_from_env`` for multi-host runs.
* :mod:`~vai_jax.train.optim` — optax optimisers, schedules, reduce-on-plateau.
* :mod:`~vai_jax.train.regularization` — per-layer L1/L2 penalties.
* :mod:`~vai_jax.train.precision` — compute dtypes, dynamic loss scaling for float16.
* :mod:`~vai_jax.train.augment` — on-device normalisation, flip and crop.
* :mod:`~vai_jax.train.checkpoint` — orbax ``CheckpointManager`` wrapper.
* :mod:`~vai_jax.train.metrics_writer`, :mod:`~vai_jax.train.curves` — JSON lines,
  TensorBoard, PNG curves.
* :mod:`~vai_jax.train.loop` — ``fit`` (progress bar, evaluation, checkpoints, signals).
"""
