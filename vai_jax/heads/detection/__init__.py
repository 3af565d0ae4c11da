"""Detection heads: region proposal network, RoI box head, mask head, feature pyramid."""
from vai_jax.heads.detection.fpn import FPN
from vai_jax.heads.detection.mask_head import MaskHead
from vai_jax.heads.detection.roi_heads import BoxHead
from vai_jax.heads.detection.rpn import RPNHead
