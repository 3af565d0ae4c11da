r"""Default classifier config: CIFAR ResNet-32 on the built-in single-object shapes data.

Command (the README's main job)::

  python experiments/train_classifier.py --workdir /tmp/shapes_resnet32

Result to expect: test top-1 accuracy of 99% or more on the 2,000 test images; a few minutes of
training on two CPU cores (CPU cost about 0.9-1.1 CPU-seconds per step of 64 images, i.e. ~60-70
images per CPU-second). Measured on the idle 2-core development CPU, from a fresh clone and a
fresh virtual environment (README command 1, 2026-11-21): test top-1 99.45% (93.4% at step 200),
225 s of training, 4 min 23 s wall for the whole command including ``pip install``, 129.9 training
images/s. (Under a load average of ~8 from other jobs the same run took 9 min 48 s at 56.8
images/s and gave the same accuracy: the run is deterministic.)
A 640-step run (``--config.num_steps=640 --config.schedule.warmup_steps=32
--config.eval_every=160``) reached 73.2% / 99.0% / 99.85% / 99.90% test
top-1 at steps 160 / 320 / 480 / 640 (57 min wall under a load average of ~15 on 2 cores; 11.3
CPU-minutes in all).

The run writes ``<workdir>/metrics.jsonl``, TensorBoard events in ``<workdir>/tensorboard/``,
checkpoints in ``<workdir>/checkpoints/``, ``curves.png`` and ``results.json``.

Variants (``--config=experiments/configs/classifier_shapes.py:<arg>``):
  ``runlocal`` — a few steps of a tiny CNN on 16x16 images (smoke test, seconds).
Override anything with ``--config.<field>=<value>``, e.g. ``--config.optimizer.lr=0.05``.
"""
import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.dataset = "shapes"           # "shapes" (built in) or "cifar10" (tfds)
    c.data_dir = ""                # tfds data_dir ("" = tfds default)
    c.image_size = 32              # shapes only
    c.num_train_examples = 20_000  # shapes only (generated once, kept in memory)
    c.num_test_examples = 2_000    # shapes only
    c.model = "resnet32_cifar"     # vai_jax.create_model name, or "tiny_cnn"
    c.batch_size = 64              # global
    c.num_steps = 400              # 25,600 images: 1.3 epochs
    c.precision = "float32"        # "float32" | "bfloat16" | "float16"
    c.label_smoothing = 0.0
    c.ema_decay = 0.0              # 0 = no EMA of the parameters
    c.seed = 0

    c.optimizer = ml_collections.ConfigDict(dict(
        name="adamw", lr=3e-3, weight_decay=5e-4, b1=0.9, b2=0.999,
        momentum=0.9, nesterov=False,  # for name="sgd"
        clip_grad_norm=0.0, accumulate_steps=1))  # clip_grad_norm 0 = off
    c.schedule = ml_collections.ConfigDict(dict(
        kind="cosine", warmup_steps=20, boundaries=(), decay_factor=0.1))
    c.plateau = ml_collections.ConfigDict(dict(
        enabled=False, metric="top1", factor=0.1, patience=2, max_reductions=3))
    c.early_stopping = ml_collections.ConfigDict(dict(metric="top1", patience=0))  # 0 = off
    c.regularization = ml_collections.ConfigDict(dict(l1=0.0, l2=0.0))
    c.augment = ml_collections.ConfigDict(dict(flip=True, crop_padding=0))  # objects are
    # already randomly placed; translations slow down the short run

    c.eval_every = 200
    c.log_every = 20
    c.checkpoint_every = 200
    c.keep_checkpoints = 2
    c.best_metric = "top1"
    c.eval_topk = (1,)
    c.grain_workers = 0
    c.progress = True

    if arg == "runlocal":
        c.model = "tiny_cnn"
        c.image_size = 16
        c.num_train_examples = 512
        c.num_test_examples = 64
        c.batch_size = 32
        c.num_steps = 20
        c.schedule.warmup_steps = 2
        c.eval_every = 10
        c.log_every = 5
        c.checkpoint_every = 10
    elif arg:
        raise ValueError(f"unknown config variant {arg!r}; use 'runlocal' or nothing")
    return c
