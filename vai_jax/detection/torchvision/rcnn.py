"""torchvision's ``fasterrcnn_resnet50_fpn``, ``maskrcnn_resnet50_fpn`` and
``keypointrcnn_resnet50_fpn`` at inference, with static shapes: one Flax module whose fields are
the builders' keyword arguments (``min_size``, ``box_score_thresh``, …).

``model.apply(variables, images, train=False)``, ``images [B, H, W, 3]`` float32 in [0, 1]
(one size for the batch), returns a dict:

* ``boxes [B, N, 4]`` xyxy in the input image's pixels, ``scores [B, N]``, ``labels [B, N]``
  int32 (torchvision's category ids, COCO's 1..90 for 91 classes), ``valid [B, N]`` bool;
  ``N = box_detections_per_img``, descending score, padding rows zero;
* ``masks [B, N, H, W]`` mask probabilities (``masks=True``, Mask R-CNN);
* ``keypoints [B, N, K, 3]`` x, y, score (``keypoints=True``, Keypoint R-CNN);
* ``proposals [B, P, 4]``, ``proposal_scores [B, P]`` (sigmoid objectness), ``proposal_valid
  [B, P]``: the RPN's output in the resized image's pixels (torchvision's ``rpn`` output),
  ``P = rpn_post_nms_top_n_test``.

Parameters: ``body`` (ResNet-50, FrozenBatchNorm = BatchNorm in inference mode, eps 1e-5),
``fpn`` (FPN on stage1..stage4 with the max-pooled level), ``rpn_head``, ``box_head``, and
``mask_head`` or ``keypoint_head``; :func:`vai_jax.weights.from_torchvision` converts
torchvision's checkpoints.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vai_jax._validation import check_array
from vai_jax.backbones.registry import create_model
from vai_jax.detection.roi_heads import BoxHead, MaskHead
from vai_jax.detection.rpn import RPNHead
from vai_jax.detection.torchvision.heads import KeypointHead
from vai_jax.detection.torchvision.postprocess import (heatmaps_to_keypoints,
                                                       paste_masks_in_image,
                                                       postprocess_detections)
from vai_jax.detection.torchvision.rpn import ASPECT_RATIOS, anchors_for, filter_proposals
from vai_jax.detection.torchvision.transform import (IMAGENET_MEAN, IMAGENET_STD, resize_boxes,
                                                     resize_keypoints, transform_images)
from vai_jax.nn.fpn import FPN
from vai_jax.ops.poolers import multilevel_roi_align

STAGES = ("stage1", "stage2", "stage3", "stage4")
LEVELS = STAGES + ("pool",)


class TorchvisionRCNN(nn.Module):
    """Faster / Mask / Keypoint R-CNN with a ResNet-50-FPN backbone, torchvision's inference.

    Attributes (torchvision's builder arguments): num_classes (with background), min_size,
    max_size, image_mean, image_std, rpn_pre_nms_top_n_test, rpn_post_nms_top_n_test,
    rpn_nms_thresh, rpn_score_thresh, box_score_thresh, box_nms_thresh, box_detections_per_img,
    num_keypoints. masks / keypoints: add the Mask R-CNN / Keypoint R-CNN branch.
    box_candidates: detections entering the final NMS (see
    :func:`~vai_jax.detection.torchvision.postprocess.postprocess_detections`).
    """

    num_classes: int = 91
    min_size: int = 800
    max_size: int = 1333
    image_mean: Sequence[float] = IMAGENET_MEAN
    image_std: Sequence[float] = IMAGENET_STD
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_test: int = 1000
    rpn_nms_thresh: float = 0.7
    rpn_score_thresh: float = 0.0
    box_score_thresh: float = 0.05
    box_nms_thresh: float = 0.5
    box_detections_per_img: int = 100
    box_candidates: int = 4096
    masks: bool = False
    keypoints: bool = False
    num_keypoints: int = 17
    dtype: Any = jnp.float32

    def _pool(self, features, boxes, size):
        b, n = boxes.shape[:2]
        maps = [features[s] for s in STAGES]
        ids = jnp.repeat(jnp.arange(b, dtype=jnp.int32), n)
        scales = [1.0 / 2 ** (i + 2) for i in range(len(maps))]
        pooled = multilevel_roi_align(maps, boxes.reshape(-1, 4), ids, size, spatial_scales=scales,
                                      sampling_ratio=2, aligned=False)
        return pooled.reshape((b, n) + pooled.shape[1:])

    @nn.compact
    def __call__(self, images, *, train: bool):
        if train:
            raise ValueError("TorchvisionRCNN computes torchvision's inference only; call it "
                             "with train=False")
        images = check_array(images, "images", ndim=4, kind="floating", shape_hint="[B, H, W, 3]")
        if images.shape[-1] != 3:
            raise ValueError(f"images must be [B, H, W, 3] RGB; got {tuple(images.shape)}")
        b, h, w = images.shape[:3]
        x, (rh, rw) = transform_images(images.astype(jnp.float32), min_size=self.min_size,
                                       max_size=self.max_size, mean=self.image_mean,
                                       std=self.image_std)
        padded = x.shape[1:3]
        body = create_model("resnet50", num_classes=0, dtype=self.dtype).clone(
            parent=self, name="body")
        _, stages = body(x, train=False)
        features = FPN(STAGES, features=256, last_level_max_pool=True, dtype=self.dtype,
                       name="fpn")(stages, train=False)
        features = {k: v.astype(jnp.float32) for k, v in features.items()}
        rpn = RPNHead(len(ASPECT_RATIOS), LEVELS, dtype=self.dtype, name="rpn_head")(
            features, train=False)
        anchors, counts = anchors_for(padded, [features[k].shape[1:3] for k in LEVELS])
        proposals, proposal_scores, proposal_valid = filter_proposals(
            anchors, rpn["logits"], rpn["deltas"], counts, image_size=(rh, rw),
            pre_nms_top_n=self.rpn_pre_nms_top_n_test,
            post_nms_top_n=self.rpn_post_nms_top_n_test, nms_thresh=self.rpn_nms_thresh,
            score_thresh=self.rpn_score_thresh)

        cls_logits, box_deltas = BoxHead(self.num_classes - 1, 1024, dtype=self.dtype,
                                         name="box_head")(self._pool(features, proposals, 7),
                                                          train=False)
        post = jax.vmap(lambda c, d, p, v: postprocess_detections(
            c, d, p, v, image_size=(rh, rw), score_thresh=self.box_score_thresh,
            nms_thresh=self.box_nms_thresh, detections_per_img=self.box_detections_per_img,
            candidates=self.box_candidates))
        boxes, scores, labels, valid = post(cls_logits, box_deltas, proposals, proposal_valid)
        out = {"boxes": resize_boxes(boxes, (rh, rw), (h, w)), "scores": scores,
               "labels": labels, "valid": valid, "proposals": proposals,
               "proposal_scores": proposal_scores, "proposal_valid": proposal_valid}
        n = boxes.shape[1]
        if self.masks:
            logits = MaskHead(self.num_classes - 1, dtype=self.dtype, name="mask_head")(
                self._pool(features, boxes, 14), train=False)  # [B, N, 28, 28, C]
            probs = jax.nn.sigmoid(jnp.take_along_axis(
                logits, labels[:, :, None, None, None], axis=-1)[..., 0])
            pasted = jax.vmap(lambda m, bx: paste_masks_in_image(m, bx, (h, w)))(
                probs, out["boxes"])
            out["masks"] = jnp.where(valid[:, :, None, None], pasted, 0.0)
        if self.keypoints:
            pooled = self._pool(features, boxes, 14)
            heat = KeypointHead(self.num_keypoints, dtype=self.dtype, name="keypoint_head")(
                pooled.reshape((-1,) + pooled.shape[2:]), train=False)
            kps = heatmaps_to_keypoints(heat, boxes.reshape(-1, 4), (rh, rw))
            kps = resize_keypoints(kps.reshape(b, n, self.num_keypoints, 3), (rh, rw), (h, w))
            out["keypoints"] = jnp.where(valid[:, :, None, None], kps, 0.0)
        return out


def fasterrcnn_resnet50_fpn(**kwargs) -> TorchvisionRCNN:
    """torchvision's ``fasterrcnn_resnet50_fpn`` (91 COCO classes by default)."""
    return TorchvisionRCNN(**kwargs)


def maskrcnn_resnet50_fpn(**kwargs) -> TorchvisionRCNN:
    """torchvision's ``maskrcnn_resnet50_fpn`` (91 COCO classes by default)."""
    return TorchvisionRCNN(masks=True, **kwargs)


def keypointrcnn_resnet50_fpn(**kwargs) -> TorchvisionRCNN:
    """torchvision's ``keypointrcnn_resnet50_fpn`` (person and background, 17 keypoints)."""
    return TorchvisionRCNN(**{"num_classes": 2, **kwargs}, keypoints=True)


BUILDERS = {"fasterrcnn_resnet50_fpn": fasterrcnn_resnet50_fpn,
            "maskrcnn_resnet50_fpn": maskrcnn_resnet50_fpn,
            "keypointrcnn_resnet50_fpn": keypointrcnn_resnet50_fpn}
