"""Segmentation heads on a backbone's ``features`` dict: FCN-32s/16s/8s (Long et al. 2015),
DeepLab v3's ASPP head (Chen et al. 2017) and the conv-BN-ReLU classifier of torchvision's
segmentation models (:class:`ConvHead`).

Every head is ``head(features, *, train) -> {"out": logits [B, h, w, K]}`` and reads the maps
named by its ``in_features``. ``head.output_stride(feature_strides)`` is the stride of its
logits, from the backbone's ``{name: stride}``: :class:`~vai_jax.segmentation.models.Segmenter`
up-samples them to the input size. Up-sampling and alignment follow
:mod:`vai_jax.ops.upsample`: a stride-``s`` map shares the input's top-left origin (cell ``i``
stands for pixels ``[s·i, s·(i + 1))``), is up-sampled by ``s`` and cropped — or edge-padded,
for backbones that round odd sizes down — to ``H × W``.
"""
from __future__ import annotations

import functools
from typing import Mapping, Sequence

import flax.linen as nn
import jax.numpy as jnp

from vai_jax._validation import check_array, check_int
from vai_jax.nn.conv import ConvBNAct
from vai_jax.nn.transposed import bilinear_upsampler
from vai_jax.ops.upsample import align_to


def check_input_size(x, min_size: int, name: str = "x"):
    """ValueError unless ``x`` is ``[B, H, W, C]`` floating with ``H, W >= min_size`` (the
    network's total stride: smaller inputs leave no cell in the coarsest map)."""
    x = check_array(x, name, ndim=4, kind="floating", shape_hint="[B, H, W, C]")
    h, w = x.shape[1:3]
    if h < min_size or w < min_size:
        raise ValueError(f"{name} is too small for this network: its total stride is "
                         f"{min_size}, so H and W must be >= {min_size}; got H={h}, W={w}")
    return x


def _feature(features, name: str):
    """``features[name]`` ``[B, h, w, C]`` (floating) of a backbone's dict of named maps."""
    if not isinstance(features, Mapping):
        raise TypeError(f"features must be the backbone's dict of named feature maps; got "
                        f"{type(features).__name__}")
    if name not in features:
        raise ValueError(f"in_features names {name!r}, which the backbone does not return; "
                         f"it returns {sorted(features)}")
    return check_array(features[name], f"features[{name!r}]", ndim=4, kind="floating",
                       shape_hint="[B, h, w, C]")


def _stride_of(feature_strides: Mapping[str, int], name: str) -> int:
    if name not in feature_strides:
        raise ValueError(f"in_features names {name!r}, which the backbone does not return; "
                         f"it returns {sorted(feature_strides)}")
    return int(feature_strides[name])


class FCNHead(nn.Module):
    """FCN-32s / 16s / 8s head (Long et al. 2015, Fig. 3).

    The stride-32 feature (``in_features[0]``) goes through the convolutionalised classifier
    (``fc6``: a ``fc_kernel × fc_kernel`` conv, ``fc7``: 1×1, both ReLU + dropout) and a 1×1
    ``score`` layer. FCN-32s up-samples the scores ×32 directly. FCN-16s up-samples them ×2
    (``up2``, a bilinear-initialised learnable transposed conv), aligns them to the stride-16
    grid, adds ``score_skip1`` (1×1 conv of the stride-16 feature, zero-initialised so training
    starts from FCN-32s) and up-samples ×16. FCN-8s repeats this once more with the stride-8
    feature (``up4``, ``score_skip2``) and up-samples ×8. The final up-sampler is a fixed
    per-channel bilinear filter unless ``learn_final`` (then a full, learnable ``K → K``
    kernel initialised to bilinear on its diagonal).

    Attributes:
      num_classes: ``K``.
      variant: 32, 16 or 8.
      in_features: names of the stride-32, stride-16 and stride-8 features.
      fc_features: widths of ``fc6`` and ``fc7`` (4096 in the paper).
      fc_kernel: ``fc6`` kernel (7 for VGG-16's 7×7 pool5 grid).
      dropout_rate: after ``fc6`` and ``fc7`` (needs the ``'dropout'`` rng when training).
      skip_scales: multipliers of the skip features before scoring (FCN-8s "at once" used
        ``(0.01, 1e-4)`` on VGG; 1 for BatchNorm backbones).

    ``__call__(features, *, train)`` → ``{"out": [B, v·h, v·w, K]}`` on the input's grid
    (stride 1; ``h × w`` the finest fused map, ``v`` the variant), before the crop to the input
    size.
    """

    num_classes: int
    variant: int = 8
    in_features: Sequence[str] = ("stage4", "stage3", "stage2")
    fc_features: Sequence[int] = (4096, 4096)
    fc_kernel: int = 7
    dropout_rate: float = 0.0
    skip_scales: Sequence[float] = (1.0, 1.0)
    learn_final: bool = False
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def _num_skips(self) -> int:
        if self.variant not in (32, 16, 8):
            raise ValueError(f"variant must be 32, 16 or 8; got {self.variant}")
        return {32: 0, 16: 1, 8: 2}[self.variant]

    def output_stride(self, feature_strides: Mapping[str, int]) -> int:
        """Stride of the finest fused feature divided by the final up-sampling factor
        (``variant``): 1 for features at strides 32, 16, 8."""
        s = _stride_of(feature_strides, self.in_features[self._num_skips()])
        if s % self.variant:
            raise ValueError(f"the finest feature of FCN-{self.variant}s, "
                             f"{self.in_features[self._num_skips()]!r}, has stride {s}, which "
                             f"x{self.variant} up-sampling cannot bring to an integer stride")
        return s // self.variant

    @nn.compact
    def __call__(self, features, *, train: bool):
        n_skips = self._num_skips()
        k = self.num_classes
        conv = functools.partial(nn.Conv, dtype=self.dtype, param_dtype=self.param_dtype)
        x = features[self.in_features[0]]
        for i, (w, ks) in enumerate(zip(self.fc_features, (self.fc_kernel, 1))):
            x = nn.relu(conv(w, (ks, ks), padding="SAME", name=f"fc{6 + i}")(x))
            x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        score = conv(k, (1, 1), name="score")(x)
        for i in range(n_skips):
            skip = features[self.in_features[i + 1]].astype(self.dtype) * self.skip_scales[i]
            up = bilinear_upsampler(k, 2, name=f"up{2 ** (i + 1)}", dtype=self.dtype,
                                    param_dtype=self.param_dtype)(score)
            if any(abs(u - v) > 2 for u, v in zip(up.shape[1:3], skip.shape[1:3])):
                raise ValueError(
                    f"feature {self.in_features[i + 1]!r} {tuple(skip.shape[1:3])} is not "
                    f"on a 2x finer grid than {tuple(score.shape[1:3])}; check in_features")
            score = align_to(up, skip.shape[1:3]) + conv(
                k, (1, 1), kernel_init=nn.initializers.zeros, name=f"score_skip{i + 1}")(skip)
        final = self.variant
        up = bilinear_upsampler(k, final, trainable=self.learn_final,
                                per_channel=not self.learn_final, name="up_final",
                                dtype=self.dtype, param_dtype=self.param_dtype)(score)
        return {"out": up}


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (DeepLab v3, torchvision layout): a 1×1 branch, one 3×3
    branch per rate (dilation ``r``, receptive field ``2r + 1``), and image-level pooling
    (global average → 1×1 → broadcast back), each conv-BN-ReLU, concatenated and projected by
    a 1×1 conv-BN-ReLU. ``[B, h, w, C] → [B, h, w, features]``.

    Rates (6, 12, 18) at output stride 16, doubled at 8. Param names: ``branch0`` (1×1),
    ``branch{i}`` (rate ``rates[i-1]``), ``pool``, ``project``.
    """

    features: int = 256
    rates: Sequence[int] = (6, 12, 18)
    image_pooling: bool = True
    dropout_rate: float = 0.1
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = check_array(x, "x", ndim=4, kind="floating", shape_hint="[B, h, w, C]")
        check_int(self.features, "features", ge=1)
        for r in self.rates:
            check_int(r, "rates", ge=1)
        cba = functools.partial(ConvBNAct, self.features, dtype=self.dtype,
                                param_dtype=self.param_dtype, bn_axis_name=self.bn_axis_name)
        outs = [cba(1, name="branch0")(x, train=train)]
        for i, r in enumerate(self.rates, start=1):
            outs.append(cba(3, dilation=r, name=f"branch{i}")(x, train=train))
        if self.image_pooling:
            g = jnp.mean(x, axis=(1, 2), keepdims=True)
            g = cba(1, name="pool")(g, train=train)
            outs.append(jnp.broadcast_to(g, x.shape[:3] + (self.features,)))
        y = cba(1, name="project")(jnp.concatenate(outs, axis=-1), train=train)
        return nn.Dropout(self.dropout_rate, deterministic=not train)(y)


class DeepLabHead(nn.Module):
    """DeepLab v3 head (torchvision's ``DeepLabHead``): :class:`ASPP` on ``in_features``, 3×3
    conv-BN-ReLU, 1×1 classifier.

    Rates: DeepLab v3 uses (6, 12, 18) at output stride 16 and (12, 24, 36) at 8 (513-pixel
    crops); they are the rates in pixels of the feature map, so scale them with it.
    ``dropout_rate``: after the ASPP projection (torchvision: 0.5).
    Param names: ``aspp`` (see :class:`ASPP`), ``conv``, ``classifier``.

    ``__call__(features, *, train)`` → ``{"out": [B, h, w, K]}`` at the feature's stride.
    """

    num_classes: int
    in_features: str = "stage4"
    features: int = 256
    rates: Sequence[int] = (6, 12, 18)
    image_pooling: bool = True
    dropout_rate: float = 0.1
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    def output_stride(self, feature_strides: Mapping[str, int]) -> int:
        """The stride of ``in_features``."""
        return _stride_of(feature_strides, self.in_features)

    @nn.compact
    def __call__(self, features, *, train: bool):
        check_int(self.num_classes, "num_classes", ge=1)
        x = _feature(features, self.in_features)
        common = dict(dtype=self.dtype, param_dtype=self.param_dtype,
                      bn_axis_name=self.bn_axis_name)
        x = ASPP(self.features, self.rates, self.image_pooling, self.dropout_rate, name="aspp",
                 **common)(x, train=train)
        x = ConvBNAct(self.features, 3, name="conv", **common)(x, train=train)
        x = nn.Conv(self.num_classes, (1, 1), dtype=self.dtype, param_dtype=self.param_dtype,
                    name="classifier")(x)
        return {"out": x}


class ConvHead(nn.Module):
    """3×3 conv-BN-ReLU, dropout, 1×1 classifier on one feature map: torchvision's
    ``FCNHead``, the head of its ``fcn_resnet50`` and the auxiliary classifier (on
    ``"stage3"``) of its FCN and DeepLab v3 models.

    Attributes:
      num_classes: ``K``.
      in_features: the feature map's name.
      features: width of the 3×3 conv (None: the input channels // 4, as torchvision).
      dropout_rate: before the classifier (needs the ``'dropout'`` rng when training).
    Param names: ``conv`` (``conv/conv``, ``conv/bn``), ``classifier``.

    ``__call__(features, *, train)`` → ``{"out": [B, h, w, K]}`` at the feature's stride.
    """

    num_classes: int
    in_features: str = "stage4"
    features: int | None = None
    dropout_rate: float = 0.1
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    def output_stride(self, feature_strides: Mapping[str, int]) -> int:
        """The stride of ``in_features``."""
        return _stride_of(feature_strides, self.in_features)

    @nn.compact
    def __call__(self, features, *, train: bool):
        check_int(self.num_classes, "num_classes", ge=1)
        x = _feature(features, self.in_features)
        width = max(x.shape[-1] // 4, 1) if self.features is None else check_int(
            self.features, "features", ge=1)
        x = ConvBNAct(width, 3, dtype=self.dtype, param_dtype=self.param_dtype,
                      bn_axis_name=self.bn_axis_name, name="conv")(x, train=train)
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = nn.Conv(self.num_classes, (1, 1), dtype=self.dtype, param_dtype=self.param_dtype,
                    name="classifier")(x)
        return {"out": x}
