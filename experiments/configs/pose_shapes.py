r"""2D keypoint experiment on the built-in shapes data (issue 5): heads compared at an equal
budget, the sub-pixel / heatmap-resolution study, density calibration, PAF multi-instance grouping.

Default (the whole study; a 2-core CPU, at most 15 minutes)::

  python experiments/train_pose.py --workdir /tmp/pose

Measured on the project's idle 2-core CPU (no GPU), 2026-11-21: **10 min 6 s wall** for the
whole command (16.4 min process CPU); deterministic (the same tables on a loaded machine, 43 min).
Mean pixel error / PCK@0.05 (ResNet-18 widths 16-128, 400 steps x 32): regression 4.97 / 26.6,
heatmap arg-max 2.02 / 47.0, quarter-offset 1.49 / 70.1, Taylor 1.26 / 79.0, integral
3.05 / 39.8, density 5.25 / 28.5. Stride 4 / 8 / 16: arg-max 2.02 / 3.52 / 6.68 px, integral
3.05 / 4.14 / 3.77 px: integral regression keeps a low error at stride 16 where arg-max decoding
cannot go below about a quarter of a cell. Density: |error| <= σ for 69.3% (Gaussian 68.3%),
<= 2σ for 95.5%. PAF grouping: 73.6% of keypoints grouped correctly (75.7% recall before
grouping), exact instance count on 91.0% of images.

Variants (``--config=experiments/configs/pose_shapes.py:<arg>``):
  ``runlocal`` — a few steps of everything on tiny data (smoke test, about a minute).
COCO-format keypoint files: see ``pose_coco.py``.
"""
import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.data = "shapes"              # "shapes" or "coco" (see pose_coco.py)
    c.image_size = 64
    c.num_train = 8192
    c.num_val = 1000
    c.coco = ml_collections.ConfigDict(dict(
        train_json="", train_images="", val_json="", val_images="", box_scale=1.25,
        min_keypoints=1, sigmas=()))
    # Backbone: a narrow ResNet-18 (any vai_jax.create_model name works; widths override).
    c.backbone = "resnet18"
    c.backbone_widths = (16, 32, 64, 128)
    c.feature = "stage3"           # stride 16 at 64x64 -> a 4x4 feature map
    c.heads = ("regression", "heatmap", "integral", "density")
    c.heatmap_stride = 4           # heatmap and integral heads in the main table
    c.heatmap_sigma = 1.0          # Gaussian target sigma in heatmap cells
    c.deconv_features = 32
    c.regression_hidden = 256
    c.integral_beta = 1.0
    c.stride_study = (4, 8, 16)    # heatmap (arg-max, sub-pixel) vs integral; () to skip
    c.batch_size = 32
    c.num_steps = 400
    c.lr = 2e-3
    c.warmup_steps = 50
    c.weight_decay = 1e-4
    c.pck_alphas = (0.05, 0.1)     # PCK reference: the object's box size max(w, h)
    c.oks_sigma = 0.05             # per-keypoint OKS constant for COCO AP on shapes
    c.multi = ml_collections.ConfigDict(dict(
        enabled=True, num_train=4096, num_val=300, feature="stage2", heatmap_stride=2,
        paf_sigma=1.0, paf_weight=1.0, num_steps=500, peak_threshold=0.3, max_peaks=8,
        tolerance=0.2))  # grouped keypoint correct within tolerance * box size (>= 2 px)
    c.eval_batch_size = 100
    c.log_every = 50
    c.seed = 0
    c.progress = True
    c.num_figure_images = 6
    if arg == "runlocal":
        c.num_train, c.num_val = 256, 64
        c.num_steps, c.warmup_steps, c.log_every = 6, 1, 3
        c.backbone_widths = (4, 8, 8, 8)
        c.deconv_features, c.regression_hidden = 8, 16
        c.eval_batch_size = 32
        c.multi.update(dict(num_train=64, num_val=8, num_steps=4))
    elif arg:
        raise ValueError(f"unknown variant {arg!r}; use '' or 'runlocal'")
    return c
