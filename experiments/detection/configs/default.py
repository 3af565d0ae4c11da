r"""Faster R-CNN (Ren et al. 2015, arXiv:1506.01497) on the built-in multi-object shapes data:
64x64 images with 1-6 objects of 6-26 px in 6 classes, a narrow ResNet (stem + one basic unit
per stage, 16/32 channels, stage2 kept at stride 4: a 16x16 map), trained end to end; COCO box
AP through pycocotools on the shapes COCO export.

  python experiments/detection/main.py --workdir workdir/detection

Expected: box AP 73.5, AP50 95.2, AP75 88.9 on 500 validation images, RPN proposal recall@0.7
98.0%, inference 6.2 ms/image; 2,500 steps x 16 images (254k parameters) at 72 training
images/s; 11 min 2 s for the command on the 2-core CPU (no GPU) at load average 6-9
(2026-11-21). ``:runlocal`` is a seconds-long smoke test (AP near 0).
"""
import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.models = ("faster_rcnn",)     # any of rcnn, fast_rcnn, faster_rcnn, mask_rcnn
    # Data: "shapes" (built-in), "coco" (COCO-format files: set c.coco.*) or "voc" (tfds voc via
    # load_source; must be prepared). External images are letterboxed to image_size (ResizeAndPad);
    # predictions are mapped back to the source pixels; mask AP on shapes only.
    c.data = "shapes"
    c.coco = ml_collections.ConfigDict(dict(train_json="", train_images="", val_json="", val_images=""))
    c.voc = ml_collections.ConfigDict(dict(data_dir="", train_split="train", val_split="validation"))
    c.image_size = 64
    c.num_train = 20000
    c.num_val = 500
    c.max_objects = 6               # padding size; more objects -> reported (on_overflow="drop")

    # Modules: each dict holds its constructor's fields (train.build_model passes them with **).
    c.model = ml_collections.ConfigDict()
    # vai_jax.create_model: ResNet-18 units, first two stages only; stage2 kept at stride 4.
    c.model.backbone = dict(name="resnet18", num_classes=0, stage_sizes=(1, 1), widths=(16, 32),
                            stem_width=16, stage_strides=(1, 1))
    # vai_jax.nn.fpn.FPN, or None. E.g. dict(in_features=("stage1", "stage2"), features=64); the
    # rpn and roi_stage in_features then name its levels, rpn.anchor_sizes has one tuple per level.
    c.model.fpn = None
    # vai_jax.detection.RegionProposalNetwork (Faster / Mask R-CNN).
    c.model.rpn = dict(in_features=("stage2",), anchor_sizes=((8.0, 16.0, 32.0),),
                       aspect_ratios=(0.5, 1.0, 2.0), num_samples=128,
                       pre_nms_top_n_train=300, post_nms_top_n_train=64,
                       pre_nms_top_n_test=300, post_nms_top_n_test=64)
    # vai_jax.detection.RoIStage (Fast / Faster / Mask R-CNN; num_classes from the data).
    # pool_mode "align" (RoIAlign) or "pool" (Fast R-CNN's RoIPool); num_samples: R / N RoIs.
    c.model.roi_stage = dict(in_features=("stage2",), pool_mode="align", pool_size=7, hidden=128,
                             num_samples=32, positive_fraction=0.25, score_threshold=0.05,
                             max_detections=20, mask_features=32, mask_convs=2)
    # vai_jax.detection.RCNN (num_classes from the data, stage set by the training stage).
    # descriptor_grid 4: the crop's 8x8 stage2 map pooled to 4x4, flattened.
    c.model.rcnn = dict(in_features="stage2", crop_size=32, descriptor_grid=4, num_samples=32,
                        positive_fraction=0.25, score_threshold=0.05, max_detections=20)
    # R-CNN / Fast R-CNN proposals: vai_jax.detection.proposals.sliding_window_proposals
    # (selective search stand-in; the shapes objects are 6-26 px, median 15).
    c.windows = dict(stride=4, sizes=(8.0, 12.0, 16.0, 24.0), aspect_ratios=(0.5, 1.0, 2.0))
    c.rcnn_finetune_fraction = 0.5  # share of R-CNN steps for stage 1 (CNN fine-tuning)

    c.batch_size = 16
    c.num_steps = 2500
    c.optimizer = dict(name="adamw", weight_decay=1e-4, clip_grad_norm=10.0)  # make_optimizer
    c.schedule = dict(kind="cosine", base_lr=5e-3, warmup_steps=100)  # make_schedule
    c.eval_batch_size = 50
    c.rcnn_eval_batch_size = 2
    c.window_eval_batch_size = 10    # Fast R-CNN: every image brings all its sliding windows
    c.rcnn_num_val = 50              # R-CNN is evaluated on the first 50 validation images only
    c.log_every = 50
    c.seed = 0
    c.progress = True
    c.num_figure_images = 8
    if arg == "runlocal":
        c.num_train, c.num_val = 64, 16
        c.num_steps, c.log_every = 4, 2
        c.schedule.warmup_steps = 1
        c.model.backbone.widths = (8, 8)
        c.model.backbone.stem_width = 8
        c.model.roi_stage.hidden = 16
        c.model.roi_stage.mask_features, c.model.roi_stage.mask_convs = 8, 1
        c.eval_batch_size = c.window_eval_batch_size = 8
        c.batch_size = 8
        c.num_figure_images = 4
    elif arg:
        raise ValueError(f"unknown config variant {arg!r}; use 'runlocal' or nothing")
    return c
