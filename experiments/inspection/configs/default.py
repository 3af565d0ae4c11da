r"""Look inside a small VGG-style network (:class:`vai_jax.analysis.PlainCNN`, six 3x3
conv-BN-ReLU layers of widths 16-16-32-32-64-64) trained here for 600 steps on the built-in
32x32 shapes: filters, activation maximisation (Erhan et al. 2009), top patches (Zeiler &
Fergus 2014), linear probes (Alain & Bengio 2016; Zhang et al. 2017), channel pruning (Li et
al. 2017; Hu et al. 2016), k-means weight sharing (Han et al. 2016) and BagNet-style evidence
maps (Brendel & Bethge 2019).

  python experiments/inspection/main.py --workdir workdir/inspection

Expected: test top-1 98.6% (72,694 parameters, 9.88 M MACs); linear-probe accuracy 40.6%
(conv1) to 98.7% (conv6) on the trained network and 27-33% at random initialisation; 2 min
33 s on the idle 2-core CPU (no GPU). ``:runlocal`` is a seconds-long smoke test.
"""
import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.image_size = 32
    c.num_train = 4000            # shapes classification examples for training and probes
    c.num_test = 1000
    # name="plain_cnn" (PlainCNN, trained here unless checkpoint_dir is set) or any
    # vai_jax.create_model name (needs checkpoint_dir); the other fields are constructor fields.
    c.model = ml_collections.ConfigDict(dict(name="plain_cnn", widths=(16, 16, 32, 32, 64, 64),
                                             pool_after=(2, 4)))
    c.checkpoint_dir = ""         # experiments/classifier workdir (or its checkpoints/ folder)
    c.train = ml_collections.ConfigDict(dict(steps=600, batch_size=64, lr=3e-3,
                                             weight_decay=1e-4, crop_padding=2))
    c.layers = ()                 # layers to show; () = the backbone's feature stages
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

    if arg == "runlocal":
        c.image_size = 16
        c.num_train = 256
        c.num_test = 64
        c.model.widths = (4, 8, 8)
        c.model.pool_after = (1,)
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
        raise ValueError(f"unknown config variant {arg!r}; use 'runlocal' or nothing")
    return c
