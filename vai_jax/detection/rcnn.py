"""R-CNN (Girshick et al., 2014), as in the paper but small: class-agnostic region proposals
(dense sliding windows here, see :mod:`vai_jax.detection.proposals`), each region warped to a
fixed square (``roi_align`` on the *image*, so every region costs one CNN forward pass: about
2,000 per image with the paper's selective search), CNN features, one-vs-rest linear SVMs and
class-specific linear box regression.

Training in stages, selected by the static ``stage`` attribute:

* ``"finetune"``: the CNN and a softmax classifier over ``C + 1`` classes are fine-tuned on
  sampled warped regions (foreground IoU >= 0.5, as the paper).
* ``"svm"``: CNN features are frozen (``stop_gradient``); the linear SVMs (hinge loss,
  :func:`vai_jax.detection.losses.one_vs_rest_hinge_loss`) and the linear box regressors
  (smooth L1 on foreground regions) are trained. Inference uses the SVM scores.

Simplifications (documented): the SVMs use the same sampled regions as fine-tuning (the paper
takes ground truth as positives and IoU < 0.3 as negatives with hard-negative mining), and the
regressor uses smooth L1 instead of ridge regression on pool5 features.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from vai_jax.detection.levels import as_names
from vai_jax.detection.postprocess import detect
from vai_jax.detection.targets import roi_targets
from vai_jax.ops.roi_align import roi_align_batched

STAGES = ("finetune", "svm")


class RCNN(nn.Module):
    """Attributes:
      backbone: the CNN ``(x, *, train) -> (logits, features)``, run on every warped region;
        its parameters are named ``cnn``.
      in_features: the name of the backbone map that makes the region descriptor.
      num_classes: foreground classes ``C``.
      crop_size: warped region side in pixels (227 in the paper).
      descriptor_grid: the region descriptor is ``in_features`` average-pooled to a ``g x g``
        grid and flattened (``g*g*C``, position-sensitive like the paper's pool5/fc7). A global
        average (``g = 1``) throws away where the object sits in the window: the SVMs then
        cannot tell a centred window from a shifted one (measured: box AP50 6.0 at 1,000 steps).
      stage: ``"finetune"`` or ``"svm"`` (see the module docstring).
      num_samples, positive_fraction: regions per image when training (128, 25% in the paper).
      score_threshold, nms_threshold, max_detections: inference (SVM scores through a sigmoid).

    ``__call__(inputs, *, train)``: inputs as :class:`~vai_jax.detection.fast_rcnn.FastRCNN`
    (``image``, ``proposals [B, P, 4]``, ``proposal_valid [B, P]``, training targets, ``rng``).
    Returns (train, finetune) ``cls_logits``, ``roi_labels``, ``roi_weights``; (train, svm)
    ``svm_scores [B, S, C+1]``, ``box_deltas [B, S, C+1, 4]``, ``roi_labels``, ``roi_weights``,
    ``roi_box_targets``; (eval) detections ``boxes``, ``scores``, ``classes``, ``valid``.
    """

    backbone: nn.Module
    in_features: str
    num_classes: int
    crop_size: int = 32
    descriptor_grid: int = 4
    stage: str = "svm"
    num_samples: int = 128
    positive_fraction: float = 0.25
    score_threshold: float = 0.05
    nms_threshold: float = 0.5
    max_detections: int = 100

    def setup(self):
        # The CNN's parameters are named "cnn". Flax derives initial values from parameter
        # names, so this name is part of the seeded results (experiments/detection/README.md).
        self.cnn = self.backbone.clone()
        k = self.num_classes + 1
        self.finetune_cls = nn.Dense(k)
        self.svm = nn.Dense(k, kernel_init=nn.initializers.normal(0.01))
        self.bbox_reg = nn.Dense(4 * k, kernel_init=nn.initializers.normal(0.001))

    def region_features(self, images, rois, *, train: bool):
        """Warp each region to ``crop_size`` and run the CNN on it: ``[B, R, 4] -> [B, R, D]``."""
        names = as_names(self.in_features)
        if len(names) != 1:
            raise ValueError(f"RCNN.in_features must name one backbone map; got {self.in_features!r}")
        b, r = rois.shape[:2]
        crops = roi_align_batched(images, rois.astype(images.dtype), self.crop_size, sampling_ratio=2,
                                  aligned=True)
        crops = crops.reshape((b * r,) + crops.shape[2:])
        _, features = self.cnn(crops, train=train)
        if names[0] not in features:
            raise ValueError(f"RCNN.in_features names {names[0]!r}, not in the backbone's features "
                             f"{sorted(features)}")
        f = features[names[0]]
        h, w, c = f.shape[1:]
        g = self.descriptor_grid
        if h % g or w % g:
            raise ValueError(f"descriptor_grid={g} must divide the {names[0]!r} map of a "
                             f"{self.crop_size}px crop; got {h}x{w}")
        # pool5-like: average over (h/g x w/g) blocks, flattened -> position-sensitive [g*g*C].
        f = f.reshape(b * r, g, h // g, g, w // g, c).mean(axis=(2, 4))
        return f.reshape(b, r, g * g * c)

    def __call__(self, inputs: dict, *, train: bool):
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}; got {self.stage!r}")
        images = inputs["image"]
        image_size = tuple(int(s) for s in images.shape[1:3])
        k = self.num_classes + 1
        finetune, svm, bbox = self.finetune_cls, self.svm, self.bbox_reg
        if train:
            b = images.shape[0]
            t = jax.vmap(lambda key, p, pv, gb, gc, gv: roi_targets(
                key, p, pv, gb, gc, gv, num_samples=self.num_samples,
                positive_fraction=self.positive_fraction))(
                jax.random.split(inputs["rng"], b), inputs["proposals"], inputs["proposal_valid"],
                inputs["boxes"], inputs["classes"], inputs["valid"])
            feats = self.region_features(images, t["rois"], train=self.stage == "finetune")
            out = {"roi_labels": t["labels"], "roi_weights": t["valid"].astype(jnp.float32)}
            if self.stage == "finetune":
                out["cls_logits"] = finetune(feats)
                return out
            feats = jax.lax.stop_gradient(feats)
            out.update(svm_scores=svm(feats), box_deltas=bbox(feats).reshape(feats.shape[:2] + (k, 4)),
                       roi_box_targets=t["box_targets"])
            return out
        proposals = inputs["proposals"]
        feats = self.region_features(images, proposals, train=False)
        if self.is_initializing():
            finetune(feats)
        scores = jax.nn.sigmoid(svm(feats))
        deltas = bbox(feats).reshape(feats.shape[:2] + (k, 4))
        dets = detect(scores, deltas, proposals, inputs["proposal_valid"], image_size=image_size,
                      score_threshold=self.score_threshold, nms_threshold=self.nms_threshold,
                      max_detections=self.max_detections, probabilities=True)
        dets.pop("roi_index")
        return dets
