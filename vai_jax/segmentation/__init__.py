"""Semantic segmentation: heads (FCN-32s/16s/8s, DeepLab v3 ASPP, torchvision's conv head),
networks (backbone + head, encoder–decoder, ESPNet), the pixel losses and the confusion-matrix
metrics (mIoU)."""
from vai_jax.segmentation.heads import ASPP, ConvHead, DeepLabHead, FCNHead
from vai_jax.segmentation.models import (EncoderDecoder, ESPNet, Segmenter, deeplabv3, fcn,
                                         upsample_logits)

__all__ = ["ASPP", "ConvHead", "DeepLabHead", "EncoderDecoder", "ESPNet", "FCNHead", "Segmenter",
           "deeplabv3", "fcn", "upsample_logits"]
