r"""2D keypoints on COCO-format keypoint files (COCO person keypoints, or any data set in that
format): top-down crops of each annotated instance (Xiao et al. 2018, Simple Baselines),
resized to ``image_size``; the head comparison and the heatmap-stride study of
``default.py`` with the full ResNet-18 (the PAF multi-instance study runs on the built-in
shapes data only).

  python experiments/pose/main.py --workdir W --config experiments/pose/configs/coco.py \
      --config.coco.train_json=annotations/person_keypoints_train2017.json \
      --config.coco.train_images=train2017 \
      --config.coco.val_json=annotations/person_keypoints_val2017.json \
      --config.coco.val_images=val2017

With 17 keypoints the COCO person OKS sigmas are used, otherwise ``coco.sigmas`` (default
``oks_sigma`` for every keypoint). Expected: not measured (it needs a GPU: 20,000 steps × 64
at 128×128). ``:runlocal`` is the smoke test of ``default.py`` on COCO-format files.
"""
from experiments.pose.configs import default


def get_config(arg: str | None = None):
    c = default.get_config(arg)
    c.data = "coco"
    c.multi.enabled = False
    if not arg:
        c.image_size = 128
        c.num_train = 20_000
        c.num_val = 2_000
        c.num_steps = 20_000
        c.batch_size = 64
        c.backbone.widths = (64, 128, 256, 512)   # the full ResNet-18
        c.head.regression.conv_features = c.head.density.conv_features = 128
        c.head.heatmap.deconv_features = c.head.integral.deconv_features = 128
        c.multi.head.deconv_features = 128
    return c
