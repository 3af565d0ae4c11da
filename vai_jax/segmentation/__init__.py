"""Semantic segmentation: heads (FCN-32s/16s/8s, DeepLab v3 ASPP), networks (backbone + head,
encoder–decoder, ESPNet), the pixel losses and the confusion-matrix metrics (mIoU)."""
from vai_jax.segmentation.heads import ASPP, DeepLabHead, FCNHead
from vai_jax.segmentation.models import EncoderDecoder, ESPNet, Segmenter

__all__ = ["ASPP", "DeepLabHead", "EncoderDecoder", "ESPNet", "FCNHead", "Segmenter"]
