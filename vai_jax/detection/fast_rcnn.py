"""Fast R-CNN (Girshick, 2015): one backbone pass per image, proposals given from outside
(here :func:`vai_jax.detection.proposals.sliding_window_proposals`, or any ``[B, P, 4]``), RoIPool
(or RoIAlign) to 7x7, sibling softmax classifier and box regressor trained jointly on N images x
R/N sampled RoIs."""
from __future__ import annotations

import flax.linen as nn

from vai_jax.detection.roi_heads import RoIStage


class FastRCNN(nn.Module):
    """Attributes: backbone (``(x, *, train) -> (logits, features)``), roi_stage (its
    ``in_features`` name the backbone map RoIs are pooled from).

    ``__call__(inputs, *, train)``: inputs ``image [B, H, W, 3]``, ``proposals [B, P, 4]`` xyxy
    input pixels, ``proposal_valid [B, P]`` bool, and when ``train`` the targets ``boxes``,
    ``classes``, ``valid`` and ``rng`` (as :class:`~vai_jax.detection.faster_rcnn.FasterRCNN`).
    Returns the :class:`RoIStage` outputs.
    """

    backbone: nn.Module
    roi_stage: RoIStage

    @nn.compact
    def __call__(self, inputs: dict, *, train: bool):
        missing = [k for k in ("image", "proposals", "proposal_valid") if k not in inputs]
        if missing:
            raise KeyError(f"inputs must hold 'image', 'proposals' and 'proposal_valid' (constant "
                           f"proposals, see detection.inputs.add_proposals); missing {missing}")
        images = inputs["image"]
        image_size = tuple(int(s) for s in images.shape[1:3])
        _, features = self.backbone(images, train=train)
        return self.roi_stage(features, inputs["proposals"], inputs["proposal_valid"],
                              image_size=image_size, targets=inputs if train else None,
                              rng=inputs.get("rng"), train=train)
