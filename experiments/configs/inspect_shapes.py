r"""Config of ``experiments/inspect_network.py``: look inside a classifier of the built-in shapes.

Command (trains a small PlainCNN on 32x32 shapes first, ~1-2 minutes on a 2-core CPU, then runs
every tool)::

  python experiments/inspect_network.py --workdir /tmp/inspect

On the network trained by the classifier experiment (README command 1: CIFAR ResNet-32 on
32x32 shapes; pruning then removes channels of the inner convolution of every residual unit)::

  python experiments/train_classifier.py --workdir workdir/classifier
  python experiments/inspect_network.py --workdir workdir/inspect_r32 \
      --config=experiments/configs/inspect_shapes.py:classifier --checkpoint_dir workdir/classifier

Writes to ``--workdir``: ``report.md`` (every table), ``results.json``, ``filters.png``,
``activation_max.png``, ``patches_<layer>.png``, ``probe.png``, ``pruning.png``,
``evidence.png``. Result to expect: see ``MEASURED``.

Variants (``--config=experiments/configs/inspect_shapes.py:<arg>``): ``classifier`` — the
classifier experiment's ``resnet32_cifar`` (needs ``--checkpoint_dir``); ``runlocal`` — tiny
sizes, a smoke test of seconds.
"""
import ml_collections

# Measured with the defaults on the project's idle 2-core CPU (no GPU), 2026-11-21: 2 min 33 s
# wall for the whole command (150 s inside run(), 242 s CPU); the same numbers as on a loaded
# machine (1109 s wall at load ~20): the run is deterministic.
MEASURED = """
PlainCNN 16-16-32-32-64-64, 72,694 params, 9.88 M MACs: test top-1 98.6% (1000 images).
Receptive fields (px): conv1..conv6 = 3, 5, 10, 14, 24, 32.
Linear probes, test %:     conv1 conv2 conv3 conv4 conv5 conv6
  trained                   40.6  49.3  69.6  84.6  97.8  98.7
  random init               27.1  28.4  30.4  31.3  32.7  31.0   (chance 16.7)
Pruning every conv (L1), then 100 fine-tune steps: 25% -> 41,130 params, 5.64 M MACs, 98.0%;
  50% -> 18,494, 2.58 M, 87.1%; 75% -> 4,786, 0.70 M, 36.3% (non-zero-rate scores: 93.1 / 48.8
  / 19.8%). Straight after pruning (no fine-tuning) every ratio is at 17-29%.
k-means weight sharing (no fine-tuning): float32 292,568 B 98.6%; 8-bit 81,608 B 98.6%;
  4-bit 40,176 B 98.9%; 3-bit 30,922 B 88.3%; 2-bit 21,780 B 35.0%; 1-bit 12,694 B 19.3%.
':classifier' on the main job's checkpoint (README command 1, fresh clone; 6 min 53 s wall idle):
ResNet-32 463,894 params, 68.9 M MACs, test top-1 99.7%. Linear probes (trained) stem 37.2,
stage1 58.5, stage2 89.1, stage3 99.7%. Pruning the inner conv of every unit (L1) + 100 steps:
25% -> 348,414 params 98.8%; 50% -> 232,934, 97.8%; 75% -> 117,454, 92.4% (non-zero-rate
scores 99.2 / 92.0 / 60.4%). k-means: 8-bit 506,292 B 99.5%; 4-bit 251,048 B 99.3%; 3-bit
97.0%; 2-bit 35.8%.
"""


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.image_size = 32
    c.num_train = 4000            # shapes classification examples generated for training/probes
    c.num_test = 1000
    # The network: "plain_cnn" (trained here unless a checkpoint is given) or any
    # vai_jax.create_model name (needs --checkpoint_dir; a fresh init is used for "random").
    c.model = "plain_cnn"
    c.widths = (16, 16, 32, 32, 64, 64)
    c.pool_after = (2, 4)
    c.checkpoint_dir = ""         # train_classifier.py workdir or its checkpoints/ folder
    c.train = ml_collections.ConfigDict(dict(steps=600, batch_size=64, lr=3e-3,
                                             weight_decay=1e-4, crop_padding=2))
    # Layers to show ("" entries are ignored; empty tuple = automatic: the feature stages).
    c.layers = ()
    c.actmax = ml_collections.ConfigDict(dict(channels=8, steps=128, lr=0.05, l2_decay=1e-3,
                                              blur_every=4, blur_sigma=0.5, jitter=1))
    c.patches = ml_collections.ConfigDict(dict(channels=6, k=8))
    c.probe = ml_collections.ConfigDict(dict(num_train=2000, target_dim=1024, steps=300,
                                             lr=1e-2, weight_decay=1e-4))
    c.prune = ml_collections.ConfigDict(dict(ratios=(0.25, 0.5, 0.75), methods=("l1", "nonzero"),
                                             finetune_steps=100, finetune_lr=1e-3))
    c.quant = ml_collections.ConfigDict(dict(bits=(8, 6, 4, 3, 2, 1)))
    c.evidence_images = 6
    c.progress = True

    if arg == "classifier":
        c.model = "resnet32_cifar"
    elif arg == "runlocal":
        c.image_size = 16
        c.num_train = 256
        c.num_test = 64
        c.widths = (4, 8, 8)
        c.pool_after = (1,)
        c.train.steps = 20
        c.train.batch_size = 32
        c.actmax.steps = 8
        c.actmax.channels = 2
        c.patches.channels = 2
        c.patches.k = 3
        c.probe.num_train = 128
        c.probe.steps = 20
        c.prune.ratios = (0.5,)
        c.prune.methods = ("l1",)
        c.prune.finetune_steps = 5
        c.quant.bits = (4, 1)
        c.evidence_images = 2
        c.progress = False
    elif arg:
        raise ValueError(f"unknown config variant {arg!r}; use 'classifier', 'runlocal' or nothing")
    return c
