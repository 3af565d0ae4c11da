r"""Faster R-CNN on the built-in multi-object shapes data (64x64, 1-6 objects of 6-26 px,
6 classes), a narrow ResNet (stem + one unit per stage, 16/32 channels, stage2 kept at
stride 4: a 16x16 map), trained end to end on a 2-core CPU; box AP through pycocotools on the
shapes COCO export.

  python experiments/train_detector.py --workdir /tmp/det_faster
  python experiments/train_detector.py --config=experiments/configs/detector_faster_rcnn.py:runlocal --workdir /tmp/det_smoke

This file is also the base of detector_{rcnn,fast_rcnn,mask_rcnn,compare}.py (they change
``models`` and a few fields); ``runlocal`` is a smoke test (a few steps, tiny data, AP near 0).

Why stride 4 (diagnosed with 300-step runs, same seeds, 200 validation images): the objects
are 6-26 px (median 15). On the former stride-8 map (8x8), anchors 8/16/32 reach IoU >= 0.7
for only 8% of the objects (31% not even 0.5) and a 15 px object covers 2x2 cells under the
7x7 RoIAlign. With stage2 at stride 4, RPN proposal recall@0.7 went 0.51 -> 0.81, box AP
9.6 -> 22.3, AP50 21.3 -> 37.1; lr 2e-3 -> 5e-3 then AP 25.2. Not the cause: RoI sampling
(64 RoIs, 50% foreground: same AP), the evaluation (ground truth as detections gives AP 100,
tests/detection/test_det_coco_eval.py). A 2x wider net (32/64) gains 7 AP at 300 steps but
trains at half the speed: 1,500 wide steps and 2,500 narrow steps both reach AP50 95.9.

Measured with the first command (2-core CPU, no GPU, shared: load average 6-9 during the run,
two other runs of ours included; 2,500 steps x 16 images, 254k parameters): 11 min 2 s wall
for the whole command (training 609 s with compilation, 72 images/s; 4 min 27 s of user CPU in all), box AP
73.5, AP50 95.2, AP75 88.9 on 500 validation images; RPN proposal recall@0.7 98.0%;
inference 6.2 ms/image. Before (stride 8, lr 2e-3, 1,500 steps, load ~20): AP 40.9, AP50 63.6.
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
    c.backbone_stage_sizes = (1, 1)  # ResNet-18 units, first two stages only
    c.backbone_widths = (16, 32)
    c.backbone_stage_strides = (1, 1)  # stage2 kept at stride 4: a 16x16 map (see the docstring)
    c.stem_width = 16
    c.feature = "stage2"
    c.fpn_features = 0              # > 0 with c.fpn_feature_names: Faster R-CNN + FPN
    c.fpn_feature_names = ("stage1", "stage2")
    c.anchor_sizes = (8.0, 16.0, 32.0)
    c.aspect_ratios = (0.5, 1.0, 2.0)
    c.rpn_num_samples = 128
    c.pre_nms_top_n_train, c.post_nms_top_n_train = 300, 64
    c.pre_nms_top_n_test, c.post_nms_top_n_test = 300, 64
    c.roi_num_samples = 32          # R / N RoIs per image
    c.roi_positive_fraction = 0.25
    c.pool_mode = "align"           # "align" or "pool" (Fast R-CNN's RoIPool)
    c.pool_size = 7
    c.hidden = 128
    c.mask_features, c.mask_convs = 32, 2
    c.max_detections = 20
    c.score_threshold = 0.05
    # Fast R-CNN / R-CNN proposals: dense sliding windows (selective search stand-in).
    c.window_stride = 4
    c.window_sizes = (8.0, 12.0, 16.0, 24.0)  # the shapes objects are 6-26 px (median 15)
    c.window_ratios = (0.5, 1.0, 2.0)
    c.rcnn_crop_size = 32
    c.rcnn_descriptor_grid = 4       # region descriptor: the 8x8 stage2 map pooled to 4x4, flattened
    c.rcnn_finetune_fraction = 0.5  # share of R-CNN steps for stage 1 (CNN fine-tuning)
    c.batch_size = 16
    c.num_steps = 2500
    c.lr = 5e-3
    c.warmup_steps = 100
    c.weight_decay = 1e-4
    c.eval_batch_size = 50
    c.rcnn_eval_batch_size = 2
    c.window_eval_batch_size = 10    # Fast R-CNN: every image brings all its sliding windows
    c.rcnn_num_val = 50            # R-CNN is evaluated on the first 50 validation images only
    c.log_every = 50
    c.seed = 0
    c.progress = True
    c.num_figure_images = 8
    if arg == "runlocal":
        c.num_train, c.num_val = 64, 16
        c.num_steps, c.warmup_steps, c.log_every = 4, 1, 2
        c.backbone_widths = (8, 8)
        c.stem_width = 8
        c.hidden = 16
        c.mask_features, c.mask_convs = 8, 1
        c.eval_batch_size = c.window_eval_batch_size = 8
        c.batch_size = 8
        c.num_figure_images = 4
    elif arg:
        raise ValueError(f"unknown variant {arg!r}; use '' or 'runlocal'")
    return c
