"""GoogLeNet / Inception v1 (Szegedy et al., "Going deeper with convolutions", CVPR 2015).

Paper-faithful by default: the Table 1 widths, "5×5" branches that really are 5×5, convs with
biases and ReLU (no BatchNorm), local response normalisation after the first pool and after the
second conv (Caffe's ``bvlc_googlenet``: size 5, alpha 1e-4, beta 0.75), ceil-mode 3×3/2 max
pools, 40% dropout before the classifier.

Parameter count, 1000 classes, no auxiliary classifiers: 6,998,552 weights and biases
(13,378,280 with the two auxiliary classifiers). The paper's Table 1 "params" column counts
conv weights in units of 1024 (e.g. inception_3a: 163,328 weights = 159.5K, listed 159K) and
sums to about 6.8M; it agrees with its own widths to 2% except for ``inception_4c`` (463K
listed, 498K from the widths) and ``inception_5a`` (1072K listed, 1019K from the widths) —
this module follows the widths. torchvision's ``googlenet`` has 6,624,904 parameters because it
uses 3×3 kernels in the "5×5" branches (a known discrepancy kept for its ported weights) and
BatchNorm instead of conv biases; ``GoogLeNet(norm=True, lrn=False, kernel5x5=3)`` reproduces
that count exactly (13,004,888 with auxiliary classifiers, also torchvision's); with
``pool4_window=2, aux_pool="adaptive", bn_epsilon=1e-3`` it also computes torchvision's function
(what :func:`vai_jax.weights.from_torchvision` builds for ``"googlenet"``).

Auxiliary classifiers (``aux_logits=True``, §5: on the outputs of 4a and 4d: 5×5/3 average
pool, 1×1 conv with 128 channels, FC 1024, 70% dropout, linear) run only when ``train=True``
(and at ``init``, so their parameters exist); their logits are returned in the features dict as
``features["aux1"]`` (on 4a) and ``features["aux2"]`` (on 4d), ``[B, num_classes]``. The paper
weights each auxiliary loss by 0.3.

Features: ``"stem"`` (conv1, stride 2, 64), ``"stage1"`` (conv2 output before pool2, stride 4,
192), ``"stage2"`` (3b, stride 8), ``"stage3"`` (4e, stride 16), ``"stage4"`` (5b, stride 32), and
every module's output as ``"inception_3a"`` … ``"inception_5b"``.
Parameter names: ``conv1``, ``conv2_reduce``, ``conv2``, ``inception_3a`` … ``inception_5b``
(see :class:`~vai_jax.nn.InceptionModule`), ``aux1``/``aux2`` (``conv``, ``fc1``, ``fc2``), ``fc``.
"""
from __future__ import annotations

import functools
import flax.linen as nn
import jax.numpy as jnp

from vai_jax.backbones.base import (FeatureInfo, check_image_input,
                                   imagenet_to_inception_input, pooled_classifier)
from vai_jax.nn.conv import ConvBNAct
from vai_jax.nn.inception import InceptionModule
from vai_jax.nn.lrn import local_response_norm
from vai_jax.nn.spp import adaptive_pool_2d, max_pool_2d, pool_output_size

# Table 1: name -> (#1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj).
INCEPTION_V1_TABLE = {
    "inception_3a": (64, 96, 128, 16, 32, 32),
    "inception_3b": (128, 128, 192, 32, 96, 64),
    "inception_4a": (192, 96, 208, 16, 48, 64),
    "inception_4b": (160, 112, 224, 24, 64, 64),
    "inception_4c": (128, 128, 256, 24, 64, 64),
    "inception_4d": (112, 144, 288, 32, 64, 64),
    "inception_4e": (256, 160, 320, 32, 128, 128),
    "inception_5a": (256, 160, 320, 32, 128, 128),
    "inception_5b": (384, 192, 384, 48, 128, 128),
}
# Modules of each stride group; a stride-2 max pool precedes groups 4 and 5.
_GROUPS = (("inception_3a", "inception_3b"),
           ("inception_4a", "inception_4b", "inception_4c", "inception_4d", "inception_4e"),
           ("inception_5a", "inception_5b"))


class AuxClassifier(nn.Module):
    """GoogLeNet's auxiliary classifier: 5×5/3 average pool (then adaptive average pooling to
    4×4, the identity for the paper's 14×14 input, so other input sizes work), 1×1 conv (128),
    FC 1024 + ReLU, dropout, linear. ``[B, H, W, C] → [B, num_classes]``.

    ``pool="adaptive"`` replaces the two poolings by one adaptive average pooling to 4×4
    (torchvision's ``InceptionAux``); ``"avg5x5"`` is the paper's. ``bn_epsilon`` as in
    :class:`~vai_jax.nn.ConvBNAct`."""

    num_classes: int
    dropout_rate: float = 0.7
    norm: bool = False
    pool: str = "avg5x5"
    bn_epsilon: float = 1e-5
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x, *, train: bool):
        if self.pool not in ("avg5x5", "adaptive"):
            raise ValueError(f"pool must be 'avg5x5' or 'adaptive'; got {self.pool!r}")
        if self.pool == "avg5x5" and x.shape[1] >= 5 and x.shape[2] >= 5:
            x = nn.avg_pool(x, (5, 5), strides=(3, 3))
        x = adaptive_pool_2d(x, 4, reduce="avg")
        x = ConvBNAct(128, 1, norm=self.norm, dtype=self.dtype, param_dtype=self.param_dtype,
                      bn_axis_name=self.bn_axis_name, bn_epsilon=self.bn_epsilon,
                      name="conv")(x, train=train)
        x = x.reshape(x.shape[0], -1)
        dense = functools.partial(nn.Dense, dtype=self.dtype, param_dtype=self.param_dtype)
        x = nn.relu(dense(1024, name="fc1")(x))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return dense(self.num_classes, name="fc2")(x)



def _googlenet_fits(side: int, pool4_window: int) -> bool:
    """Whether every ceil-mode max pool of GoogLeNet fits an input of side ``side``."""
    side = (side - 1) // 2 + 1  # 7x7/2 conv, padding 3
    try:
        for window in (3, 3, 3, pool4_window):
            side = pool_output_size(side, window, 2, 0, True)
    except ValueError:
        return False
    return True


class GoogLeNet(nn.Module):
    """GoogLeNet (Inception v1); see the module docstring.

    Attributes:
      num_classes: classifier width; 0 for none (``logits`` is None).
      naive: use the naive Inception module (Fig. 2a, no 1×1 reductions or pool projection);
        channels then grow by each module's input width.
      kernel5x5: kernel of the "5×5" branches (5 as in the paper; torchvision uses 3).
      lrn: local response normalisation in the stem (the paper; off in BN variants).
      norm: BatchNorm after every conv (convs then have no bias), as in torchvision.
      aux_logits: build the auxiliary classifiers (outputs in ``features["aux1"/"aux2"]``
        when ``train=True``).
      dropout_rate: before the classifier (0.4 in the paper).
      aux_dropout_rate: in the auxiliary classifiers (0.7).
      table: ``{module name: 6 widths}`` replacing Table 1 (e.g. thinner nets for tests).
      pool4_window: window of the stride-2, ceil-mode max pool before ``inception_5a``: 3 (the
        paper's 3×3/2) or 2 (torchvision's ``maxpool4``, 2×2/2).
      aux_pool: pooling of the auxiliary classifiers, ``"avg5x5"`` (the paper) or
        ``"adaptive"`` (torchvision); see :class:`AuxClassifier`.
      bn_epsilon: BatchNorm epsilon with ``norm`` (1e-5; torchvision's GoogLeNet uses 1e-3).
      transform_input: first map an ImageNet-normalised input to the ``(v − 0.5) / 0.5``
        normalisation (torchvision's ``transform_input``, on for its pretrained weights; see
        :func:`~vai_jax.backbones.base.imagenet_to_inception_input`).
      dtype, param_dtype, bn_axis_name: compute dtype, parameter dtype, ``pmap`` BN axis.

    ``__call__(x, *, train)``: ``x`` ``[B, H, W, C]`` floating (``H, W >= min_input_size``: 31,
    or 15 with ``pool4_window=2``) →
    ``(logits [B, num_classes] or None, features)``. Dropout uses the ``'dropout'`` rng when
    ``train=True``.
    """

    num_classes: int = 1000
    naive: bool = False
    kernel5x5: int = 5
    lrn: bool = True
    norm: bool = False
    aux_logits: bool = False
    dropout_rate: float = 0.4
    aux_dropout_rate: float = 0.7
    table: dict | None = None
    pool4_window: int = 3
    aux_pool: str = "avg5x5"
    bn_epsilon: float = 1e-5
    transform_input: bool = False
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    bn_axis_name: str | None = None

    def _table(self):
        return INCEPTION_V1_TABLE if self.table is None else self.table

    def module_channels(self) -> dict[str, tuple[int, int]]:
        """``{module name: (input channels, output channels)}`` from the fields alone."""
        c, out = 192, {}
        for group in _GROUPS:
            for name in group:
                c1, _, c3, _, c5, pool_proj = self._table()[name]
                c_out = c1 + c3 + c5 + (c if self.naive else pool_proj)
                out[name], c = (c, c_out), c_out
        return out

    @property
    def feature_info(self) -> tuple[FeatureInfo, ...]:
        """(name, channels, stride) of ``"stem"``, ``"stage1"`` … ``"stage4"``."""
        ch = self.module_channels()
        return (FeatureInfo("stem", 64, 2), FeatureInfo("stage1", 192, 4),
                FeatureInfo("stage2", ch["inception_3b"][1], 8),
                FeatureInfo("stage3", ch["inception_4e"][1], 16),
                FeatureInfo("stage4", ch["inception_5b"][1], 32))

    @property
    def min_input_size(self) -> int:
        """The smallest ``H`` and ``W`` (pixels) for which every feature map is non-empty."""
        s = 1
        while not _googlenet_fits(s, self.pool4_window):
            s += 1
        return s

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = check_image_input(self, x, family="GoogLeNet", stem="conv1/conv/kernel",
                              min_size=self.min_input_size)
        if self.pool4_window not in (2, 3):
            raise ValueError(f"pool4_window must be 2 or 3; got {self.pool4_window!r}")
        conv = functools.partial(ConvBNAct, norm=self.norm, dtype=self.dtype,
                                 param_dtype=self.param_dtype, bn_axis_name=self.bn_axis_name,
                                 bn_epsilon=self.bn_epsilon)
        pool = functools.partial(max_pool_2d, window=3, strides=2, ceil_mode=True)
        features = {}
        x = x.astype(self.dtype)
        if self.transform_input:
            x = imagenet_to_inception_input(x)
        x = conv(64, 7, strides=2, name="conv1")(x, train=train)
        features["stem"] = x
        x = pool(x)
        if self.lrn:
            x = local_response_norm(x)
        x = conv(64, 1, name="conv2_reduce")(x, train=train)
        x = conv(192, 3, name="conv2")(x, train=train)
        if self.lrn:
            x = local_response_norm(x)
        features["stage1"] = x
        x = pool(x)

        with_aux = self.aux_logits and self.num_classes > 0 and (train or self.is_initializing())
        aux_on = {"inception_4a": "aux1", "inception_4d": "aux2"}
        for g, group in enumerate(_GROUPS):
            if g == 1:
                x = pool(x)
            elif g == 2:
                x = max_pool_2d(x, self.pool4_window, 2, ceil_mode=True)
            for name in group:
                x = InceptionModule(*self._table()[name], naive=self.naive,
                                    kernel5x5=self.kernel5x5, norm=self.norm, dtype=self.dtype,
                                    param_dtype=self.param_dtype, bn_axis_name=self.bn_axis_name,
                                    bn_epsilon=self.bn_epsilon, name=name)(x, train=train)
                features[name] = x
                if with_aux and name in aux_on:
                    aux = AuxClassifier(self.num_classes, self.aux_dropout_rate, norm=self.norm,
                                        pool=self.aux_pool, bn_epsilon=self.bn_epsilon,
                                        dtype=self.dtype, param_dtype=self.param_dtype,
                                        bn_axis_name=self.bn_axis_name, name=aux_on[name])(x, train=train)
                    if train:
                        features[aux_on[name]] = aux
            features[f"stage{g + 2}"] = x

        return pooled_classifier(self, x, train=train), features


MODELS = {
    "googlenet": GoogLeNet,
    "googlenet_bn": functools.partial(GoogLeNet, norm=True, lrn=False),
}
