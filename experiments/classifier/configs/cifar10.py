r"""CIFAR-10 (tfds ``cifar10``, array_record), ResNet-32 with He et al. (2016)'s recipe: SGD 0.1,
momentum 0.9, weight decay 1e-4, batch 128, lr /10 at 32k and 48k of 64k steps, flip + 4-pixel
translation. ``:vgg`` — the VGG recipe (SGD 1e-2, momentum 0.9, decay 5e-4, /10 on plateau
three times, early stopping); ``:runlocal`` — 10 steps of a tiny CNN.

  pip install -e '.[tf]' && tfds build cifar10 --file_format=array_record
  python experiments/classifier/main.py --config experiments/classifier/configs/cifar10.py --workdir W

Expected: about 92.5% test top-1 (He et al. 2016: 7.51% error); not measured here (it needs a
GPU: about an hour on one).
"""
import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.dataset = "cifar10"
    c.data_dir = ""                # tfds data_dir ("" = tfds default)
    c.image_size = 32              # (fixed by the data; used for model initialisation)
    c.num_train_examples = 0       # shapes only
    c.num_test_examples = 0        # shapes only
    c.model = ml_collections.ConfigDict(dict(name="resnet32_cifar"))
    c.batch_size = 128
    c.num_steps = 64_000
    c.precision = "float32"
    c.label_smoothing = 0.0
    c.ema_decay = 0.0
    c.seed = 0
    c.optimizer = ml_collections.ConfigDict(dict(
        name="sgd", lr=0.1, momentum=0.9, nesterov=False, weight_decay=1e-4, b1=0.9, b2=0.999,
        clip_grad_norm=0.0, accumulate_steps=1))
    c.schedule = ml_collections.ConfigDict(dict(
        kind="step", warmup_steps=0, boundaries=(32_000, 48_000), decay_factor=0.1))
    c.plateau = ml_collections.ConfigDict(dict(
        enabled=False, metric="top1", factor=0.1, patience=2, max_reductions=3))
    c.early_stopping = ml_collections.ConfigDict(dict(metric="top1", patience=0))
    c.regularization = ml_collections.ConfigDict(dict(l1=0.0, l2=0.0))
    c.augment = ml_collections.ConfigDict(dict(flip=True, crop_padding=4))
    c.eval_every = 2_000
    c.log_every = 100
    c.checkpoint_every = 2_000
    c.keep_checkpoints = 3
    c.best_metric = "top1"
    c.eval_topk = (1, 5)
    c.grain_workers = 0
    c.progress = True
    if arg == "vgg":
        c.optimizer.update(dict(lr=1e-2, weight_decay=5e-4))
        c.schedule.update(dict(kind="constant", boundaries=()))
        c.plateau.update(dict(enabled=True, metric="top1", factor=0.1, patience=2,
                              max_reductions=3))
        c.early_stopping.update(dict(metric="top1", patience=6))
    elif arg == "runlocal":
        c.model = ml_collections.ConfigDict(dict(name="tiny_cnn"))
        c.batch_size = 16
        c.num_steps = 10
        c.schedule.update(dict(boundaries=(5,)))
        c.eval_every = 5
        c.log_every = 5
        c.checkpoint_every = 5
    elif arg:
        raise ValueError(f"unknown config variant {arg!r}; use 'vgg', 'runlocal' or nothing")
    return c
