r"""The models of ``default.py`` (FCN-32s/16s/8s, DeepLab v3 at output stride 8, ESPNet with
and without HFF) on PASCAL VOC 2012 masks (21 classes incl. background, 255 ignored), read
through ``tfds.data_source`` from the ``voc_segmentation/2012`` builder of
:mod:`vai_jax.data.segmentation_sources` (prepare it once with
``load_segmentation_source(..., download=True)``), images and masks resized to 256x256 (masks
with nearest neighbour); ResNet-18 widths, 20,000 steps x 16 per model.

  python experiments/segmentation/main.py --workdir W --config experiments/segmentation/configs/voc.py

Not measured (no VOC data or accelerator on the development machine); the ``runlocal``
variant runs end to end under ``tfds.testing.mock_data`` in
tests/experiments/test_segmentation.py.
"""
import ml_collections

from experiments.segmentation.configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = default.get_config("runlocal" if arg == "runlocal" else None)
    c.dataset = "voc"
    c.tfds_name = "voc_segmentation/2012"
    c.train_split = "train"
    c.test_split = "validation"
    if arg == "runlocal":
        return c
    if arg:
        raise ValueError(f"unknown config variant {arg!r}; use 'runlocal' or nothing")
    c.image_size = 256
    c.num_steps = 20_000
    c.batch_size = 16
    c.lr = 1e-3
    c.backbone.widths = (64, 128, 256, 512)
    c.backbone.stage_sizes = (2, 2, 2, 2)
    c.backbone.stem_width = 64
    c.fcn.fc_features = (1024, 1024)
    c.deeplab.features = 256
    c.deeplab.rates = (12, 24, 36)        # DeepLab v3's (6, 12, 18) at output stride 16, x2 at 8
    c.deeplab_os16.features = 256
    c.deeplab_os16.rates = (6, 12, 18)
    c.espnet.alpha, c.espnet.beta = 2, 8
    return c
