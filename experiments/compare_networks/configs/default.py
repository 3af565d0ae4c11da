r"""Nine ImageNet backbones at 224x224 (AlexNet, VGG-16, GoogLeNet, Inception v3, ResNet-50,
DenseNet-121, MobileNet v1, SqueezeNet 1.0, ShuffleNet v1 g=3): parameters, multiply-
accumulates, images/s of inference and of an SGD training step at batch 32.

  python experiments/compare_networks/main.py --workdir workdir/compare_networks

Expected GMACs per image (machine-independent; ``--config.num_steps=0`` computes only the
counts, in seconds): alexnet 0.714, vgg16 15.470, googlenet 1.583, inception_v3 2.838,
resnet50 4.089, densenet121 2.834, mobilenet_v1 0.569, squeezenet1_0 0.819, shufflenet_v1
0.137. The timed run is sized for a GPU and not measured here; ``cpu.py`` is the 2-core CPU's.
"""
import ml_collections

MODELS = ("alexnet", "vgg16", "googlenet", "inception_v3", "resnet50", "densenet121",
          "mobilenet_v1", "squeezenet1_0", "shufflenet_v1")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.models = MODELS              # vai_jax.create_model names
    c.num_classes = 1000           # classifier width of every model
    c.image_size = 224             # square input for the counts and the timing
    c.batch_size = 32              # images per timed call
    c.num_steps = 10               # timed calls per measurement (0: counts only)
    c.warmup_steps = 2             # untimed calls first (the first one compiles)
    c.train = True                 # also time a training step
    # results.json files of experiments/classifier, or {model: top1 or {"top1", "dataset"}}.
    c.trained_results = ()
    c.seed = 0
    if arg:
        raise ValueError(f"unknown config variant {arg!r}; this config has none")
    return c
