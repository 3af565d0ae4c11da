r"""CIFAR ResNet-32 (He et al. 2016) on the built-in single-object shapes data, 32x32, 6 classes.

  python experiments/classifier/main.py --workdir workdir/classifier

Expected: test top-1 99.95% on the 2,000 test images, 259 s of training at 112.5 images/s;
5 min 5 s for the README's first command (fresh virtual environment, ``pip install`` included)
on the idle 2-core CPU (no GPU). ``:runlocal`` is a seconds-long smoke test.
"""
import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.dataset = "shapes"           # "shapes" (built in) or "cifar10" (tfds)
    c.data_dir = ""                # tfds data_dir ("" = tfds default)
    c.image_size = 32              # shapes only
    c.num_train_examples = 20_000  # shapes only (generated once, kept in memory)
    c.num_test_examples = 2_000    # shapes only
    c.model = ml_collections.ConfigDict(dict(name="resnet32_cifar"))  # create_model(**c.model); or "tiny_cnn"
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
        c.model = ml_collections.ConfigDict(dict(name="tiny_cnn"))
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
