r"""FCN-32s/16s/8s (Long et al. 2015) on a narrow ResNet-18, DeepLab v3 (Chen et al. 2017) on the
same ResNet at output stride 8, and ESPNet (Mehta et al. 2018) with and without hierarchical
feature fusion, on the built-in shapes semantic masks (7 classes: background + 6 shapes),
64x64, 900 steps x 16 images per model.

  python experiments/segmentation/main.py --workdir W --config experiments/segmentation/configs/default.py

Expected (256 test images; 2-core CPU shared with other jobs, load average 4-7, 2026-12-03:
853 s wall, 857 s process CPU; images/s under that load)::

  | model        | mIoU  | object IoU | params  | MACs (64x64) | inference img/s | train img/s |
  | fcn32s       | 0.140 | 0.202      | 501,207 |  5.15 M      | 1000            | 289         |
  | fcn16s       | 0.318 | 0.491      | 480,942 |  5.16 M      | 1152            | 263         |
  | fcn8s        | 0.477 | 0.665      | 476,581 |  5.19 M      |  963            | 248         |
  | deeplab      | 0.425 | 0.678      | 603,799 | 39.28 M      |  962            | 156         |
  | espnet       | 0.329 | 0.848      | 188,713 | 19.01 M      |  589            |  96         |
  | espnet_nohff | 0.373 | 0.855      | 188,713 | 19.01 M      |  355            |  81         |

``:runlocal`` — 32x32, 6 steps per model, tiny widths: a smoke test (210 s process CPU).
"""
import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.dataset = "shapes"
    c.data_dir = ""
    c.image_size = 64
    c.num_train_examples = 4000
    c.num_test_examples = 256
    c.ignore_label = 255
    # Trained in this order; any of experiments.segmentation.train.MODELS.
    c.models = ("fcn32s", "fcn16s", "fcn8s", "deeplab", "espnet", "espnet_nohff")
    c.num_steps = 900             # per model (equal budget)
    c.batch_size = 16             # global
    c.lr = 1e-2
    c.warmup_steps = 30
    c.weight_decay = 1e-4
    # Per-class loss weights (count + 1)^-power from the training masks, mean 1 (0 = unweighted):
    # background is ~86% of the shapes pixels.
    c.class_weight_power = 0.5
    c.seed = 0
    c.eval_batch_size = 32
    c.bench_repeats = 5
    c.num_figure_examples = 6
    c.log_every = 50
    c.progress = True

    # vai_jax.create_model(**c.backbone, num_classes=0) of every FCN and DeepLab model (DeepLab
    # adds output_stride): a ResNet-18 layout with one unit per stage and a 3x3 stem.
    c.backbone = ml_collections.ConfigDict(dict(
        name="resnet18", stage_sizes=(1, 1, 1, 1), widths=(16, 32, 64, 128), stem_width=16,
        stem_kernel=3))
    # FCNHead fields of fcn32s/16s/8s (the variant comes from the name).
    c.fcn = ml_collections.ConfigDict(dict(fc_features=(128, 128), fc_kernel=3))
    # DeepLabHead fields at output stride 8 (deeplab) and 16 (deeplab_os16). ASPP rates are in
    # cells of the feature map: the paper's (6, 12, 18) at stride 16 suit 513-pixel crops
    # (33x33 maps); on 64-pixel images (8x8 / 4x4 maps) they would only read padding.
    c.deeplab = ml_collections.ConfigDict(dict(features=64, rates=(2, 4, 6)))
    c.deeplab_os16 = ml_collections.ConfigDict(dict(features=64, rates=(1, 2, 3)))
    # ESPNet fields (hff and decoder come from the name). decoder_kernel 4: bilinear-initialised
    # kernel-4 transposed convs in the decoder (the reference's kernel 2 prints its own 2x2
    # checkerboard on the output, with or without HFF, which would hide the difference the
    # gridding figure is about).
    c.espnet = ml_collections.ConfigDict(dict(widths=(16, 64, 128), alpha=2, beta=3,
                                              decoder_kernel=4))
    c.encdec = ml_collections.ConfigDict(dict(widths=(16, 32, 64, 128)))  # EncoderDecoder fields
    # Receptive-field support map of naive vs HFF dilated stacks (gridding.png).
    c.gridding = ml_collections.ConfigDict(dict(size=65, inits=4))

    if arg == "runlocal":
        c.image_size = 32
        c.num_train_examples = 256
        c.num_test_examples = 32
        c.models = ("fcn32s", "fcn8s", "deeplab", "espnet", "espnet_nohff")
        c.num_steps = 6
        c.warmup_steps = 1
        c.batch_size = 8
        c.eval_batch_size = 16
        c.bench_repeats = 1
        c.num_figure_examples = 3
        c.log_every = 3
        c.backbone.widths = (4, 8, 8, 16)
        c.backbone.stem_width = 4
        c.fcn.fc_features = (16, 16)
        c.deeplab.features = 8
        c.deeplab_os16.features = 8
        c.espnet.widths = (5, 10, 20)
        c.espnet.alpha = 1
        c.espnet.beta = 1
        c.encdec.widths = (4, 8, 8)
        c.gridding.size = 33
        c.gridding.inits = 1
    elif arg:
        raise ValueError(f"unknown config variant {arg!r}; use 'runlocal' or nothing")
    return c
