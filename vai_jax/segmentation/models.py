"""Segmentation networks: a backbone + head wrapper (:class:`Segmenter`, torchvision's
``_SimpleSegmentationModel``) with its builders :func:`fcn` (FCN-32s/16s/8s) and
:func:`deeplabv3`, an encoder–decoder "deconvolutional network" with unpooling or learned
up-sampling (Noh et al. 2015; SegNet) and ESPNet (Mehta et al. 2018).

Every network maps ``x [B, H, W, 3]`` float to ``{"out": logits [B, H, W, K]}`` at the input
size (plus ``"aux"``, the same for an auxiliary head, as torchvision's segmentation models).
Inputs smaller than the network's total stride raise ``ValueError``.
"""
from __future__ import annotations

import functools
from typing import Mapping, Sequence

import flax.linen as nn
import jax.numpy as jnp

from vai_jax._validation import check_array, check_int
from vai_jax.backbones.registry import create_model
from vai_jax.nn.conv import ConvBNAct
from vai_jax.nn.dilated import ESPBlock
from vai_jax.nn.transposed import TransposedConv, bilinear_upsampler
from vai_jax.ops.upsample import (align_to, max_pool_with_argmax, max_unpool, resize_bilinear)
from vai_jax.segmentation.heads import ConvHead, DeepLabHead, FCNHead, check_input_size


def upsample_logits(logits, stride: int, size: Sequence[int]):
    """A stride-``stride`` map ``[B, h, w, K]`` brought to the input size ``(H, W)``: bilinear
    up-sampling by ``stride`` (float32, half-pixel centres, same top-left origin) then the crop
    or edge-pad of :func:`~vai_jax.ops.upsample.align_to`; stride 1 is only aligned (dtype
    kept). Returns ``[B, H, W, K]``."""
    logits = check_array(logits, "logits", ndim=4, kind="floating", shape_hint="[B, h, w, K]")
    stride = check_int(stride, "stride", ge=1)
    if stride != 1:
        h, w = logits.shape[1:3]
        logits = resize_bilinear(logits.astype(jnp.float32), (stride * h, stride * w))
    return align_to(logits, size)


class Segmenter(nn.Module):
    """``backbone`` then ``head`` (and ``aux_head``), logits up-sampled to the input size.

    Attributes:
      backbone: returns ``(_, features)``; called with ``train``; its ``feature_info`` gives
        the strides of the features.
      head: ``head(features, *, train) -> {"out": logits}`` with ``output_stride(strides)``
        (see :mod:`vai_jax.segmentation.heads`).
      aux_head: None or a second head, trained on an earlier feature (torchvision's
        ``aux_classifier``).
      min_size: smallest allowed ``H`` and ``W``; None: the largest stride of the backbone's
        features.
      resize_to_input: False: logits up-sampled by their stride and cropped to ``H × W``
        (:func:`upsample_logits`, cells keep the input's pixel grid); True: resized bilinearly
        straight to ``H × W`` (half-pixel centres, torchvision's ``F.interpolate(size=input,
        align_corners=False)``: the map is stretched over the whole input). The two agree when
        ``H`` and ``W`` are multiples of the stride.

    ``__call__(x [B, H, W, C], *, train)`` → ``{"out": [B, H, W, K]}`` (+ ``"aux"``).
    """

    backbone: nn.Module
    head: nn.Module
    aux_head: nn.Module | None = None
    min_size: int | None = None
    resize_to_input: bool = False

    @nn.compact
    def __call__(self, x, *, train: bool):
        strides = {f.name: f.stride for f in self.backbone.feature_info}
        min_size = max(strides.values()) if self.min_size is None else self.min_size
        x = check_input_size(x, min_size)
        _, features = self.backbone(x, train=train)
        size = x.shape[1:3]
        heads = {"out": self.head}
        if self.aux_head is not None:
            heads["aux"] = self.aux_head
        out = {}
        for key, head in heads.items():
            stride = head.output_stride(strides)  # also checks head.in_features
            logits = head(features, train=train)["out"]
            if self.resize_to_input:
                out[key] = resize_bilinear(logits.astype(jnp.float32), size)
            else:
                out[key] = upsample_logits(logits, stride, size)
        return out


def _backbone(backbone, **fields) -> nn.Module:
    if isinstance(backbone, str):
        backbone = {"name": backbone}
    if not hasattr(backbone, "keys") or "name" not in backbone:  # a dict or a ConfigDict
        raise ValueError(f"backbone must be a create_model name or a dict of its arguments with "
                         f"'name'; got {backbone!r}")
    return create_model(**{**dict(backbone), "num_classes": 0, **fields})


def fcn(backbone: str | Mapping, num_classes: int, *, variant: int = 8, **head) -> Segmenter:
    """FCN-32s / 16s / 8s (Long et al. 2015): :class:`FCNHead` on ``backbone`` at its full
    stride (32).

    Args:
      backbone: a :func:`~vai_jax.create_model` name or a dict of its arguments with
        ``"name"`` (built with ``num_classes=0``).
      num_classes: ``K``.
      variant: 32, 16 or 8.
      head: other :class:`FCNHead` fields (``fc_features``, ``fc_kernel``, ``in_features``, …).
    """
    check_int(num_classes, "num_classes", ge=1)
    if variant not in (32, 16, 8):
        raise ValueError(f"variant must be 32, 16 or 8; got {variant!r}")
    return Segmenter(_backbone(backbone), FCNHead(num_classes, variant=variant, **head))


def deeplabv3(backbone: str | Mapping, num_classes: int, *, output_stride: int = 8,
              aux: bool = False, resize_to_input: bool = False, **head) -> Segmenter:
    """DeepLab v3 (Chen et al. 2017): ``backbone`` with ``output_stride`` (dilated, see
    :class:`~vai_jax.backbones.resnet.ResNet`) and :class:`DeepLabHead`;
    ``aux`` adds torchvision's auxiliary :class:`ConvHead` on ``"stage3"``.
    torchvision's ``deeplabv3_resnet50`` is ``deeplabv3("resnet50", 21, rates=(12, 24, 36),
    dropout_rate=0.5, aux=True, resize_to_input=True)``
    (:mod:`vai_jax.segmentation.torchvision`).

    Args:
      backbone: a :func:`~vai_jax.create_model` name or a dict of its arguments with
        ``"name"`` (built with ``num_classes=0`` and ``output_stride``).
      num_classes: ``K``.
      output_stride: 8 or 16 (DeepLab v3) or any stride the backbone reaches.
      aux: add the auxiliary head.
      resize_to_input: see :class:`Segmenter`.
      head: other :class:`DeepLabHead` fields (``rates``, ``features``, …); the rates are in
        pixels of the stride-``output_stride`` map.
    """
    check_int(num_classes, "num_classes", ge=1)
    check_int(output_stride, "output_stride", ge=1)
    return Segmenter(_backbone(backbone, output_stride=output_stride),
                     DeepLabHead(num_classes, **head),
                     aux_head=ConvHead(num_classes, in_features="stage3") if aux else None,
                     resize_to_input=resize_to_input)


class EncoderDecoder(nn.Module):
    """"Deconvolutional network" (Noh et al. 2015) / SegNet (Badrinarayanan et al. 2017):
    an encoder of conv stages each ending in a 2×2 max-pool, and a mirrored decoder that
    up-samples ×2 per stage, then convs.

    ``upsample="unpool"``: max-unpooling with the encoder's switches (values return to the
    pixel that won the max; no parameters). ``upsample="learned"``: a bilinear-initialised
    learnable ×2 transposed convolution. Sizes round up at each pool and the decoder crops
    back to each encoder stage's size, so any ``H, W >= 2^stages`` work.

    Attributes: num_classes, widths (per encoder stage), convs_per_stage.
    Param names: ``enc{i}_conv{j}``, ``dec{i}_conv{j}``, ``dec{i}_up``, ``classifier``.
    ``__call__(x [B, H, W, C], *, train)`` → ``{"out": [B, H, W, K]}``.
    """

    num_classes: int
    widths: Sequence[int] = (64, 128, 256, 512)
    convs_per_stage: int = 2
    upsample: str = "unpool"
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    @property
    def min_size(self) -> int:
        return 2 ** len(self.widths)

    @nn.compact
    def __call__(self, x, *, train: bool):
        if self.upsample not in ("unpool", "learned"):
            raise ValueError(f"upsample must be 'unpool' or 'learned'; got {self.upsample!r}")
        x = check_input_size(x, self.min_size).astype(self.dtype)
        cba = functools.partial(ConvBNAct, dtype=self.dtype, param_dtype=self.param_dtype,
                                bn_axis_name=self.bn_axis_name)
        stack = []
        for i, w in enumerate(self.widths, start=1):
            for j in range(1, self.convs_per_stage + 1):
                x = cba(w, 3, name=f"enc{i}_conv{j}")(x, train=train)
            size = x.shape[1:3]
            x, switches = max_pool_with_argmax(x)
            stack.append((size, switches))
        n = len(self.widths)
        for i in range(n, 0, -1):
            size, switches = stack[i - 1]
            if self.upsample == "unpool":
                x = max_unpool(x, switches, size)
            else:
                x = align_to(bilinear_upsampler(x.shape[-1], 2, name=f"dec{i}_up",
                                                dtype=self.dtype,
                                                param_dtype=self.param_dtype)(x), size)
            w_out = self.widths[i - 2] if i > 1 else self.widths[0]
            for j in range(1, self.convs_per_stage + 1):
                w = self.widths[i - 1] if j < self.convs_per_stage else w_out
                x = cba(w, 3, name=f"dec{i}_conv{j}")(x, train=train)
        return {"out": nn.Conv(self.num_classes, (1, 1), dtype=self.dtype,
                               param_dtype=self.param_dtype, name="classifier")(x)}


class _BNPReLU(nn.Module):
    """BatchNorm + channel-wise PReLU (ESPNet's ``BR``)."""

    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-3,
                         dtype=self.dtype, param_dtype=self.param_dtype,
                         axis_name=self.bn_axis_name, name="bn")(x)
        alpha = self.param("prelu", nn.initializers.constant(0.25), (x.shape[-1],),
                           self.param_dtype)
        return jnp.where(x >= 0, x, alpha.astype(x.dtype) * x)


def _avg_pool_ceil(x):
    """3×3/2 average pool with padding 1 (counting padding as in PyTorch's default):
    ``n → ⌈n/2⌉``."""
    return nn.avg_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)),
                       count_include_pad=True)


class ESPNet(nn.Module):
    """ESPNet (Mehta et al. 2018, Fig. 4d; the authors' ``ESPNet`` / ``ESPNet_Encoder``).

    Encoder (ESPNet-C): conv 3×3/2 (``level1``) with the input image re-injected (average-pooled)
    at strides 2 and 4; a strided ESP block (``level2_0``) and ``alpha`` ESP blocks at stride 4;
    a strided ESP block (``level3_0``) and ``beta`` ESP blocks at stride 8; concatenations
    followed by BN-PReLU. ``decoder=False`` scores the stride-8 map (1×1) and up-samples ×8
    bilinearly (ESPNet-C). ``decoder=True`` adds the paper's light decoder: ×2 transposed
    convs with skip merges at strides 4 and 2 (an ESP block fuses stride 4) and a final ×2
    transposed conv.

    ``decoder_kernel`` picks those ×2 transposed convs (``K → K`` channels, no bias):

    * ``2`` — the reference code's ``ConvTranspose2d(K, K, 2, stride=2, padding=0)``, randomly
      initialised. Each output pixel reads exactly one input cell through one of the 4 kernel
      taps chosen by its parity ``(i mod 2, j mod 2)``, so until training makes the 4 taps
      agree the output carries a 2×2-periodic (checkerboard) pattern.
    * ``4`` — kernel 4, stride 2, padding 1 (``out = 2·in``), initialised to exact bilinear ×2
      up-sampling on the channel diagonal (:func:`~vai_jax.nn.transposed.bilinear_upsampler`;
      equals ``jax.image.resize(..., "bilinear")`` away from a 1-pixel border, which reads
      zero padding) and learnable. Every output pixel blends 2×2 cells, so the decoder adds no
      periodic pattern of its own, and a gridding artefact seen in the output comes from the
      encoder.

    ``hff=False`` builds every ESP block without hierarchical feature fusion (a naive
    concatenation of dilated branches, prone to gridding artefacts).

    Attributes: num_classes, widths ``(w1, w2, w3)`` (16, 64, 128 in the paper), alpha, beta
    (2, 8 in ESPNet), branches (K = 5), hff, decoder, decoder_kernel (2 or 4).
    Param names of the decoder's transposed convs: ``up_l3``, ``up_l2``, ``classifier_up``
    (``kernel`` ``[k, k, K, K]``).
    ``__call__(x [B, H, W, 3], *, train)`` → ``{"out": [B, H, W, K]}``; needs ``H, W >= 8``.
    """

    num_classes: int
    widths: Sequence[int] = (16, 64, 128)
    alpha: int = 2
    beta: int = 8
    branches: int = 5
    hff: bool = True
    decoder: bool = True
    decoder_kernel: int = 2
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    min_size = 8

    @nn.compact
    def __call__(self, x, *, train: bool):
        if self.decoder_kernel not in (2, 4):
            raise ValueError(f"decoder_kernel must be 2 or 4; got {self.decoder_kernel}")
        x = check_input_size(x, self.min_size).astype(self.dtype)
        size = x.shape[1:3]
        common = dict(dtype=self.dtype, param_dtype=self.param_dtype,
                      bn_axis_name=self.bn_axis_name)
        br = lambda name: _BNPReLU(name=name, **common)
        esp = functools.partial(ESPBlock, branches=self.branches, hff=self.hff, **common)
        w1, w2, w3 = self.widths
        k = self.num_classes

        out1 = ConvBNAct(w1, 3, strides=2, act=None, name="level1", **common)(x, train=train)
        out1 = br("level1_br")(out1, train=train)
        sample1 = _avg_pool_ceil(x)
        sample2 = _avg_pool_ceil(sample1)
        cat1 = br("b1")(jnp.concatenate([out1, sample1], -1), train=train)

        out2_0 = esp(w2, strides=2, name="level2_0")(cat1, train=train)
        out2 = out2_0
        for i in range(self.alpha):
            out2 = esp(w2, name=f"level2_{i + 1}")(out2, train=train)
        cat2 = br("b2")(jnp.concatenate([out2, out2_0, sample2], -1), train=train)

        out3_0 = esp(w3, strides=2, name="level3_0")(cat2, train=train)
        out3 = out3_0
        for i in range(self.beta):
            out3 = esp(w3, name=f"level3_{i + 1}")(out3, train=train)
        cat3 = br("b3")(jnp.concatenate([out3_0, out3], -1), train=train)

        conv1x1 = lambda c, name: nn.Conv(c, (1, 1), use_bias=False, dtype=self.dtype,
                                           param_dtype=self.param_dtype, name=name)
        score3 = conv1x1(k, "classifier")(cat3)
        if not self.decoder:
            up = resize_bilinear(score3.astype(jnp.float32),
                                 (8 * score3.shape[1], 8 * score3.shape[2]))
            return {"out": align_to(up, size)}
        if self.decoder_kernel == 2:
            deconv = lambda name: TransposedConv(k, kernel_size=2, strides=2, padding=0,
                                                 use_bias=False, name=name, dtype=self.dtype,
                                                 param_dtype=self.param_dtype)
        else:
            deconv = lambda name: bilinear_upsampler(k, 2, name=name, dtype=self.dtype,
                                                     param_dtype=self.param_dtype)
        up3 = br("up_l3_br")(align_to(deconv("up_l3")(score3), cat2.shape[1:3]), train=train)
        l2 = br("proj_l2_br")(conv1x1(k, "proj_l2")(cat2), train=train)
        comb = ESPBlock(k, branches=min(self.branches, k), hff=self.hff, residual=False,
                        name="combine_l2_l3", **common)(jnp.concatenate([l2, up3], -1),
                                                        train=train)
        up2 = br("up_l2_br")(align_to(deconv("up_l2")(comb), cat1.shape[1:3]), train=train)
        l1 = conv1x1(k, "proj_l1")(cat1)
        merged = ConvBNAct(k, 3, act=None, name="combine_l1", **common)(
            jnp.concatenate([l1, up2], -1), train=train)
        merged = br("combine_l1_br")(merged, train=train)
        return {"out": align_to(deconv("classifier_up")(merged), size)}
