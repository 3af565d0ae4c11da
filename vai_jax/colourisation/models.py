"""The colourisation network of Iizuka, Simo-Serra & Ishikawa (2016), "Let there be Color!: Joint
End-to-end Learning of Global and Local Image Priors for Automatic Image Colorization with
Simultaneous Classification" (SIGGRAPH), at any width.

Four parts share the low-level features of the grey image:

* low-level encoder: 3×3 convolutions, some of stride 2 (paper: 6 layers to 1/8 resolution);
* mid-level branch: 3×3 convolutions at that resolution (local features);
* global branch: 3×3 stride-2 convolutions, flattened, and dense layers to one vector per image
  (paper: 4 convolutions and dense layers of 1024, 512 and 256);
* fusion layer: the global vector is concatenated to the mid-level features at every spatial
  position and mixed by a 1×1 convolution (:func:`fuse_global`); then a decoder of 3×3
  convolutions and ×2 nearest-neighbour up-samplings back to the input resolution, and a 3×3
  output convolution to ``ab = ab_scale · tanh(·)`` in Lab units.

An optional classification head (two dense layers on the penultimate global layer, as the
paper's) gives the image class, trained jointly with a weighted cross-entropy
(:func:`vai_jax.colourisation.losses.colourisation_loss`). ``fusion=False`` is the same
network without the global path into the decoder: the 1×1 fusion convolution then sees the
mid-level features alone, and every output pixel depends only on its receptive field.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from vai_jax._validation import check_array
from vai_jax.nn.conv import ConvBNAct
from vai_jax.ops.upsample import resize_bilinear


def fuse_global(local, global_vector):
    """The fusion of Iizuka et al.: ``global_vector [B, G]`` copied to every position of
    ``local [B, H, W, C]`` and concatenated on the channels → ``[B, H, W, C + G]``."""
    local = check_array(local, "local", ndim=4, kind="floating", shape_hint="[B, H, W, C]")
    global_vector = check_array(global_vector, "global_vector", ndim=2, kind="floating",
                                shape_hint="[B, G]")
    if global_vector.shape[0] != local.shape[0]:
        raise ValueError(f"global_vector must have shape [B, G] with B={local.shape[0]} (local's "
                         f"batch); got {tuple(global_vector.shape)}")
    b, h, w, _ = local.shape
    tiled = jnp.broadcast_to(global_vector[:, None, None, :].astype(local.dtype),
                             (b, h, w, global_vector.shape[-1]))
    return jnp.concatenate([local, tiled], axis=-1)


def _upsample2(x):
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class _Encoder(nn.Module):
    """3×3 conv-BN-ReLU layers with the given widths and strides."""

    features: Sequence[int]
    strides: Sequence[int]
    norm: bool
    dtype: jnp.dtype
    param_dtype: jnp.dtype

    @nn.compact
    def __call__(self, x, *, train: bool):
        for i, (f, s) in enumerate(zip(self.features, self.strides)):
            x = ConvBNAct(f, 3, strides=s, norm=self.norm, dtype=self.dtype,
                          param_dtype=self.param_dtype, name=f"conv{i + 1}")(x, train=train)
        return x


class ColourisationNet(nn.Module):
    """Grey image → chrominance, with local and global features (Iizuka et al. 2016).

    Attributes:
      low_features, low_strides: widths and strides (1 or 2) of the shared low-level encoder
        (paper: 64, 128, 128, 256, 256, 512 with strides 2, 1, 2, 1, 2, 1).
      mid_features: widths of the mid-level 3×3 convolutions (paper: 512, 256).
      global_features: widths of the global branch's stride-2 3×3 convolutions (paper: 512 ×4,
        strides 2, 1, 2, 1; here all stride 2).
      global_dims: its dense layers after flattening; the last is the fused vector (paper:
        1024, 512, 256).
      fusion: feed the global vector to every position of the decoder's input; False builds no
        global branch unless the classification head needs it.
      fusion_features: channels of the 1×1 fusion convolution (paper: 256).
      decoder_features: widths of the decoder's 3×3 convolutions, each followed by a ×2
        nearest-neighbour up-sampling while below the input resolution (paper: 128, 64, 64,
        32); a remaining factor is closed by a bilinear resize of the output.
      num_classes: > 0 adds the classification head (``outputs["logits"]``).
      classifier_hidden: width of its hidden dense layer (paper: 256).
      global_size: None: the global branch reads the low-level features of the input itself
        (the input size is then fixed by the parameters of the first dense layer). An int
        ``S``: it reads those of the input resized to ``S × S`` (the same low-level weights, run
        a second time), so any input size works, as the paper's 224 × 224 global path.
      ab_scale: ``ab = ab_scale · tanh(·)``, in Lab units.
      norm: BatchNorm after every convolution but the output one.

    ``__call__(x [B, H, W, 1], *, train)``: ``x`` the normalised lightness (see
    :func:`vai_jax.colourisation.inputs.grey_input`); ``H`` and ``W`` multiples of the
    low-level stride. Returns ``{"ab": float32 [B, H, W, 2]}`` plus ``"logits"`` ``[B,
    num_classes]`` when ``num_classes > 0``.
    """

    low_features: Sequence[int] = (16, 32, 32)
    low_strides: Sequence[int] = (2, 1, 2)
    mid_features: Sequence[int] = (32,)
    global_features: Sequence[int] = (32, 32)
    global_dims: Sequence[int] = (64, 32)
    fusion: bool = True
    fusion_features: int = 32
    decoder_features: Sequence[int] = (32, 16)
    num_classes: int = 0
    classifier_hidden: int = 32
    global_size: int | None = None
    ab_scale: float = 110.0
    norm: bool = True
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    def _check(self, x):
        x = check_array(x, "x", ndim=4, kind="floating", last_dim=1, shape_hint="[B, H, W, 1]")
        if len(self.low_features) != len(self.low_strides) or any(
                s not in (1, 2) for s in self.low_strides):
            raise ValueError(f"low_strides must give a stride of 1 or 2 per low_features entry; "
                             f"got low_features={tuple(self.low_features)}, "
                             f"low_strides={tuple(self.low_strides)}")
        stride = 2 ** sum(s == 2 for s in self.low_strides)
        if x.shape[1] % stride or x.shape[2] % stride:
            raise ValueError(f"x's height and width must be multiples of the low-level stride "
                             f"{stride}; got shape {tuple(x.shape)}")
        if not self.global_dims and (self.fusion or self.num_classes):
            raise ValueError("global_dims must name at least one dense layer when fusion or "
                             "num_classes > 0")
        return x, stride

    @nn.compact
    def __call__(self, x, *, train: bool):
        x, stride = self._check(x)
        conv = dict(norm=self.norm, dtype=self.dtype, param_dtype=self.param_dtype)
        low = _Encoder(self.low_features, self.low_strides, name="low", **conv)
        local_in = low(x.astype(self.dtype), train=train)
        mid = _Encoder(self.mid_features, (1,) * len(self.mid_features), name="mid", **conv)
        local = mid(local_in, train=train)

        outputs = {}
        needs_global = self.fusion or self.num_classes > 0
        if needs_global:
            g_in = local_in
            if self.global_size is not None:
                s = int(self.global_size)
                g_in = low(resize_bilinear(x.astype(self.dtype), (s, s)), train=train)
            g = _Encoder(self.global_features, (2,) * len(self.global_features),
                         name="global", **conv)(g_in, train=train)
            g = g.reshape(g.shape[0], -1)
            layers = []
            for i, d in enumerate(self.global_dims):
                g = nn.relu(nn.Dense(d, dtype=self.dtype, param_dtype=self.param_dtype,
                                     name=f"global_fc{i + 1}")(g))
                layers.append(g)
            if self.num_classes > 0:
                h = layers[-2] if len(layers) > 1 else layers[-1]
                h = nn.relu(nn.Dense(self.classifier_hidden, dtype=self.dtype,
                                     param_dtype=self.param_dtype, name="classifier_fc1")(h))
                outputs["logits"] = nn.Dense(self.num_classes, dtype=self.dtype,
                                             param_dtype=self.param_dtype,
                                             name="classifier_fc2")(h).astype(jnp.float32)
            if self.fusion:
                local = fuse_global(local, g)
        y = ConvBNAct(self.fusion_features, 1, name="fusion", **conv)(local, train=train)

        up = stride
        for i, f in enumerate(self.decoder_features):
            y = ConvBNAct(f, 3, name=f"decoder_conv{i + 1}", **conv)(y, train=train)
            if up > 1:
                y, up = _upsample2(y), up // 2
        y = nn.Conv(2, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype,
                    param_dtype=self.param_dtype, name="output")(y)
        ab = self.ab_scale * jnp.tanh(y.astype(jnp.float32))
        if up > 1:
            ab = resize_bilinear(ab, x.shape[1:3])
        outputs["ab"] = ab
        return outputs
