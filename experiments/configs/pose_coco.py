r"""2D keypoints on COCO-format keypoint files (e.g. COCO person keypoints, or any data set in
that format): top-down crops of each annotated object, resized to ``image_size``; the head
comparison and the stride study of ``pose_shapes.py`` (the PAF multi-instance part runs on the
built-in shapes data only).

  python experiments/train_pose.py --config=experiments/configs/pose_coco.py --workdir /tmp/pose_coco \
      --config.coco.train_json=annotations/person_keypoints_train2017.json \
      --config.coco.train_images=train2017 \
      --config.coco.val_json=annotations/person_keypoints_val2017.json \
      --config.coco.val_images=val2017

Keypoints are read with ``CocoSource`` (pixel indices + 0.5 → our frame) and written back with
−0.5 for pycocotools' OKS. With 17 keypoints the COCO person OKS sigmas are used, otherwise
``coco.sigmas`` (default ``oks_sigma`` for every keypoint). COCO person crops need more
than the CPU budget of the shapes default: raise ``num_steps`` and ``image_size`` (e.g. 256
steps per 1k images, 128×128) on a GPU. Not run on the development machine except as the
``runlocal`` smoke test on files exported from the shapes data set.
"""
import os
import runpy

import ml_collections

# The shared base: pose_shapes.py next to this file (configs are loaded by path, not as a
# package).
_BASE = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "pose_shapes.py"))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = _BASE["get_config"](arg)
    c.data = "coco"
    c.coco.update(dict(train_json="", train_images="", val_json="", val_images="",
                       box_scale=1.25, min_keypoints=1, sigmas=()))
    c.multi.enabled = False
    if not arg:
        c.image_size = 128
        c.num_train = 20_000
        c.num_val = 2_000
        c.num_steps = 20_000
        c.batch_size = 64
        c.backbone_widths = (64, 128, 256, 512)   # the full ResNet-18
        c.deconv_features = 128
    return c
