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

import flax.linen as nn
import jax

from vai_jax.detection.roi_heads import RoIStage
from vai_jax.detection.rpn import RegionProposalNetwork
from vai_jax.nn.fpn import FPN


class FasterRCNN(nn.Module):
    """Two-stage detector with a region proposal network (torchvision ``FasterRCNN``).

    Attributes:
      backbone: a module ``(x, *, train) -> (logits, {name: [B, h, w, C]})`` (e.g.
        ``vai_jax.create_model(..., num_classes=0)``).
      rpn: the first stage; its ``in_features`` name the maps it runs on.
      roi_stage: the second stage (sets ``num_classes``, pooling, mask branch); its
        ``in_features`` name the maps RoIs are pooled from.
      fpn: an optional :class:`~vai_jax.nn.fpn.FPN` on the backbone's maps; its outputs (named
        like its inputs, plus ``"pool"``) replace those maps for the RPN and the RoI stage.

    ``__call__(inputs, *, train)`` returns (train) the :class:`RoIStage` training outputs and
    ``rpn_logits``, ``rpn_deltas``, ``rpn_labels``, ``rpn_weights``, ``rpn_box_targets`` (see
    :func:`vai_jax.detection.losses.detection_loss`); (eval) the detections and the RPN's
    ``proposals``, ``proposal_valid``.
    """

    backbone: nn.Module
    rpn: RegionProposalNetwork
    roi_stage: RoIStage
    fpn: FPN | None = None

    def extract_features(self, images, *, train: bool) -> dict:
        """The dict of named maps the heads see: the backbone's, or the FPN's on top of it."""
        _, features = self.backbone(images, train=train)
        if self.fpn is not None:
            features = self.fpn(features, train=train)
        return features

    @nn.compact
    def __call__(self, inputs: dict, *, train: bool):
        images = inputs["image"]
        image_size = tuple(int(s) for s in images.shape[1:3])
        features = self.extract_features(images, train=train)
        if not train:
            r = self.rpn(features, image_size=image_size, train=False)
            out = self.roi_stage(features, r["proposals"], r["proposal_valid"], image_size=image_size,
                                 train=False)
            out["proposals"], out["proposal_valid"] = r["proposals"], r["proposal_valid"]
            return out
        rng_rpn, rng_roi = jax.random.split(inputs["rng"])
        r = self.rpn(features, image_size=image_size, targets=inputs, rng=rng_rpn, train=True)
        out = self.roi_stage(features, r["proposals"], r["proposal_valid"], image_size=image_size,
                             targets=inputs, rng=rng_roi, train=True)
        out.update(rpn_logits=r["logits"], rpn_deltas=r["deltas"], rpn_labels=r["labels"],
                   rpn_weights=r["weights"], rpn_box_targets=r["box_targets"])
        return out
