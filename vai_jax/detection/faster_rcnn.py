"""Faster R-CNN (Ren et al., 2015): backbone features (optionally an FPN), a region proposal
network over ``k`` anchors per position, proposal decoding with static sizes, and the Fast
R-CNN second stage (:class:`~vai_jax.detection.roi_heads.RoIStage`), trained jointly end to end.
Mask R-CNN is the same model with the mask branch on (:mod:`vai_jax.detection.mask_rcnn`).

Inputs are a dict (so that :func:`vai_jax.train.step.make_train_step` can pass targets through
its ``preprocess_fn``): ``image [B, H, W, 3]`` float; when ``train``: ``boxes [B, M, 4]`` xyxy
input pixels, ``classes [B, M]`` int in ``[0, C)``, ``valid [B, M]`` bool (padding False),
``rng`` a PRNG key for the samplers, and ``masks [B, M, H, W]`` for Mask R-CNN.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vai_jax.detection.proposals import decode_proposals
from vai_jax.detection.roi_heads import RoIStage
from vai_jax.detection.targets import rpn_targets
from vai_jax.nn.fpn import FPN
from vai_jax.detection.rpn import RPNHead
from vai_jax.detection.anchors import multilevel_anchors


def feature_strides(image_size, maps) -> tuple[int, ...]:
    """Stride (input pixels per cell) of each map ``[B, h, w, C]`` for an ``(H, W)`` image."""
    out = []
    for m in maps:
        s = image_size[0] / m.shape[1]
        if s != int(s) or image_size[1] / m.shape[2] != s:
            raise ValueError(f"feature map {tuple(m.shape)} is not an integer stride of image {image_size}")
        out.append(int(s))
    return tuple(out)


class FasterRCNN(nn.Module):
    """Two-stage detector with a region proposal network.

    Attributes:
      backbone: a module ``(x, *, train) -> (logits, {name: [B, h, w, C]})`` (e.g.
        ``vai_jax.create_model(..., num_classes=0)``).
      feature_names: one name (single level) or several, finest first (then ``fpn_features``
        must be > 0).
      roi_stage: the second stage (sets ``num_classes``, pooling, mask branch).
      anchor_sizes: per level, anchor sizes in pixels; aspect_ratios: ``h / w`` ratios.
      fpn_features: width of the FPN (0 = no FPN).
      rpn_*: RPN matching (0.7 / 0.3, the best anchor per box kept), sampling (256 anchors, half
        positive), proposals (top-k before / after NMS for training and inference, NMS 0.7).
    """

    backbone: nn.Module
    feature_names: Sequence[str]
    roi_stage: RoIStage
    anchor_sizes: Sequence[Sequence[float]] = ((32.0, 64.0, 128.0),)
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0)
    fpn_features: int = 0
    rpn_features: int | None = None
    rpn_high_threshold: float = 0.7
    rpn_low_threshold: float = 0.3
    rpn_num_samples: int = 256
    rpn_positive_fraction: float = 0.5
    rpn_nms_threshold: float = 0.7
    pre_nms_top_n_train: int = 2000
    post_nms_top_n_train: int = 2000
    pre_nms_top_n_test: int = 1000
    post_nms_top_n_test: int = 1000
    dtype: Any = jnp.float32

    def features(self, images, *, train: bool):
        """Backbone (+ FPN) maps, finest first, and their strides."""
        _, feats = self.backbone(images, train=train)
        maps = [feats[n] for n in self.feature_names]
        if self.fpn_features:
            maps = FPN(self.fpn_features, dtype=self.dtype, name="fpn")(maps, train=train)
        elif len(maps) > 1:
            raise ValueError("several feature_names need fpn_features > 0")
        return maps, feature_strides(images.shape[1:3], maps)

    @nn.compact
    def __call__(self, inputs: dict, *, train: bool):
        images = inputs["image"]
        image_size = tuple(int(s) for s in images.shape[1:3])
        if len(self.anchor_sizes) != len(self.feature_names):
            raise ValueError(f"anchor_sizes needs one tuple per feature level ({len(self.feature_names)}); "
                             f"got {len(self.anchor_sizes)}")
        maps, strides = self.features(images, train=train)
        anchors, counts = multilevel_anchors([m.shape[1:3] for m in maps], strides, self.anchor_sizes,
                                             [self.aspect_ratios] * len(maps), offset=0.5,
                                             round_to_int=False)
        num_anchors = len(self.anchor_sizes[0]) * len(self.aspect_ratios)
        logits, deltas = RPNHead(num_anchors, self.rpn_features, dtype=self.dtype, name="rpn")(
            maps, train=train)
        pre, post = ((self.pre_nms_top_n_train, self.post_nms_top_n_train) if train
                     else (self.pre_nms_top_n_test, self.post_nms_top_n_test))
        proposals, _, pvalid = decode_proposals(
            anchors, logits, deltas, image_size=image_size, pre_nms_top_n=pre, post_nms_top_n=post,
            nms_threshold=self.rpn_nms_threshold, level_counts=counts)
        if not train:
            out = self.roi_stage(maps, strides, proposals, pvalid, image_size=image_size, train=False)
            out["proposals"], out["proposal_valid"] = proposals, pvalid
            return out
        rng_rpn, rng_roi = jax.random.split(inputs["rng"])
        b = images.shape[0]
        labels, weights, box_t = jax.vmap(lambda k, gb, gv: rpn_targets(
            k, anchors, gb, gv, high_threshold=self.rpn_high_threshold,
            low_threshold=self.rpn_low_threshold, num_samples=self.rpn_num_samples,
            positive_fraction=self.rpn_positive_fraction))(
            jax.random.split(rng_rpn, b), inputs["boxes"], inputs["valid"])
        out = self.roi_stage(maps, strides, proposals, pvalid, image_size=image_size, targets=inputs,
                             rng=rng_roi, train=True)
        out.update(rpn_logits=logits, rpn_deltas=deltas, rpn_labels=labels, rpn_weights=weights,
                   rpn_box_targets=box_t)
        return out
