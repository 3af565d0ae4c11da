"""torchvision's semantic segmentation builders (``fcn_resnet50``, ``fcn_resnet101``,
``deeplabv3_resnet50``, ``deeplabv3_resnet101``) as :class:`~vai_jax.segmentation.Segmenter`\\ s
computing what torchvision computes with the same weights (see :mod:`vai_jax.weights`).

torchvision's layout: a ResNet with its last two stages dilated (``output_stride=8``), the head
on ``"stage4"`` (FCN: 3×3 conv-BN-ReLU to 512, dropout 0.1, 1×1 classifier; DeepLab v3: ASPP
with rates (12, 24, 36), image pooling and dropout 0.5, 3×3 conv-BN-ReLU, 1×1 classifier), the
auxiliary FCN head on ``"stage3"`` (``aux_loss``), and logits resized bilinearly straight to the
input size (``resize_to_input``). Inputs: ``x [B, H, W, 3]`` float32, ImageNet-normalised;
``H, W >= 8``.
"""
from __future__ import annotations

from vai_jax.backbones.registry import create_model
from vai_jax.segmentation.heads import ConvHead
from vai_jax.segmentation.models import Segmenter, deeplabv3


def _fcn(depth: int, num_classes: int, aux_loss: bool) -> Segmenter:
    return Segmenter(create_model(f"resnet{depth}", num_classes=0, output_stride=8),
                     ConvHead(num_classes),
                     aux_head=ConvHead(num_classes, in_features="stage3") if aux_loss else None,
                     resize_to_input=True)


def _deeplabv3(depth: int, num_classes: int, aux_loss: bool) -> Segmenter:
    return deeplabv3(f"resnet{depth}", num_classes, rates=(12, 24, 36), dropout_rate=0.5,
                     aux=aux_loss, resize_to_input=True)


def fcn_resnet50(num_classes: int = 21, aux_loss: bool = False) -> Segmenter:
    """torchvision's ``fcn_resnet50`` (21 VOC classes by default; the pretrained checkpoint was
    trained with ``aux_loss=True``)."""
    return _fcn(50, num_classes, aux_loss)


def fcn_resnet101(num_classes: int = 21, aux_loss: bool = False) -> Segmenter:
    """torchvision's ``fcn_resnet101``."""
    return _fcn(101, num_classes, aux_loss)


def deeplabv3_resnet50(num_classes: int = 21, aux_loss: bool = False) -> Segmenter:
    """torchvision's ``deeplabv3_resnet50``."""
    return _deeplabv3(50, num_classes, aux_loss)


def deeplabv3_resnet101(num_classes: int = 21, aux_loss: bool = False) -> Segmenter:
    """torchvision's ``deeplabv3_resnet101``."""
    return _deeplabv3(101, num_classes, aux_loss)


BUILDERS = {"fcn_resnet50": fcn_resnet50, "fcn_resnet101": fcn_resnet101,
            "deeplabv3_resnet50": deeplabv3_resnet50, "deeplabv3_resnet101": deeplabv3_resnet101}
