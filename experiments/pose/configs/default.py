r"""2D keypoints on the built-in single-object shapes data (64×64, narrow ResNet-18): direct
regression, heatmap (Xiao et al. 2018, Simple Baselines), integral (Sun et al. 2018, Integral
Human Pose Regression) and density heads at an equal budget, error against heatmap
resolution, density calibration, and part-affinity-field grouping (Cao et al. 2017) on the
multi-object shapes data.

  python experiments/pose/main.py --workdir W --config experiments/pose/configs/default.py

Expected (ResNet-18 widths 16-128, 400 steps × 32), mean pixel error / PCK@0.05: regression
4.97 / 26.6, heatmap arg-max 2.02 / 47.0, quarter-offset 1.49 / 70.1, Taylor 1.26 / 79.0,
integral 3.05 / 39.8, density 5.25 / 28.5; heatmap stride 4 / 8 / 16: arg-max 2.02 / 3.52 /
6.68 px, integral 3.05 / 4.14 / 3.77 px; density |error| <= σ for 69.3%, <= 2σ for 95.5%; PAF
grouping 73.6% of keypoints correct, exact instance count on 91.0% of images. 10 min 6 s wall
(16.4 min process CPU) on the idle 2-core CPU (no GPU), 2026-11-21; deterministic.
``:runlocal`` runs every study once on a few images (the smoke test).
"""
import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.data = "shapes"              # "shapes" or "coco" (see coco.py)
    c.image_size = 64
    c.num_train = 8192
    c.num_val = 1000
    c.coco = ml_collections.ConfigDict(dict(  # COCO-format files (data="coco")
        train_json="", train_images="", val_json="", val_images="", sigmas=()))
    c.crops = ml_collections.ConfigDict(dict(box_scale=1.25, min_keypoints=1))  # top_down_crops(**)
    # vai_jax.create_model(**c.backbone, num_classes=0): a narrow ResNet-18.
    c.backbone = ml_collections.ConfigDict(dict(name="resnet18", widths=(16, 32, 64, 128)))
    c.heads = ("regression", "heatmap", "integral", "density")  # trained, in table order
    # Each head class's constructor fields (num_keypoints, stride and num_deconv are derived);
    # stage3 has stride 16 at 64x64: a 4x4 map.
    c.head = ml_collections.ConfigDict(dict(
        regression=dict(in_features="stage3", conv_features=32, hidden=256),
        heatmap=dict(in_features="stage3", deconv_features=32),
        integral=dict(in_features="stage3", deconv_features=32, beta=1.0),
        density=dict(in_features="stage3", conv_features=32, hidden=256)))
    c.heatmap_stride = 4           # heatmap and integral heads in the main table
    c.heatmap_loss = ml_collections.ConfigDict(dict(sigma=1.0))  # in heatmap cells
    c.stride_study = (4, 8, 16)    # heatmap (arg-max, sub-pixel) vs integral; () to skip
    c.batch_size = 32
    c.num_steps = 400
    c.schedule = ml_collections.ConfigDict(dict(kind="cosine", base_lr=2e-3, warmup_steps=50))
    c.optimizer = ml_collections.ConfigDict(dict(name="adamw", weight_decay=1e-4))
    c.pck_alphas = (0.05, 0.1)     # PCK reference: the object's box size max(w, h)
    c.oks_sigma = 0.05             # per-keypoint OKS constant for COCO AP on shapes
    c.multi = ml_collections.ConfigDict(dict(
        enabled=True, num_train=4096, num_val=300, heatmap_stride=2, num_steps=500,
        head=dict(in_features="stage2", deconv_features=32),  # PAFHead(**)
        loss=dict(sigma=1.0, paf_sigma=1.0, paf_weight=1.0),  # pose.losses.paf_loss(**)
        peaks=dict(max_peaks=8, threshold=0.3),               # ops.heatmap_peaks(**)
        tolerance=0.2))  # grouped keypoint correct within tolerance * box size (>= 2 px)
    c.eval_batch_size = 100
    c.log_every = 50
    c.seed = 0
    c.progress = True
    c.num_figure_images = 6
    if arg == "runlocal":  # every study once, on a few images, with a one-unit-per-stage net
        c.num_train, c.num_val = 64, 16
        c.backbone.update(dict(widths=(4, 8, 8, 8), stage_sizes=(1, 1, 1, 1)))
        c.head.regression.update(dict(conv_features=8, hidden=16))
        c.head.density.update(dict(conv_features=8, hidden=16))
        c.head.heatmap.deconv_features = c.head.integral.deconv_features = 8
        c.stride_study = (4,)
        c.batch_size, c.num_steps, c.log_every = 8, 2, 1
        c.schedule.warmup_steps = 1
        c.multi.update(dict(num_train=16, num_val=4, num_steps=2))
        c.multi.head.deconv_features = 8
        c.eval_batch_size = 16
        c.num_figure_images = 3
    elif arg:
        raise ValueError(f"unknown config variant {arg!r}; use 'runlocal' or nothing")
    return c
