"""Region proposal network (Ren et al., 2015): a 3x3 conv slid over each feature map, then
sibling 1x1 convs giving, for each of the ``k`` anchors of every position, an objectness logit
and four box deltas (:class:`RPNHead`); anchors, anchor targets and proposal decoding around it
(:class:`RegionProposalNetwork`, torchvision's ``RegionProposalNetwork``)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vai_jax._validation import check_image_size, check_int, check_number
from vai_jax.detection.anchors import multilevel_anchors
from vai_jax.detection.levels import as_names, feature_strides, select_maps
from vai_jax.detection.proposals import decode_proposals
from vai_jax.detection.targets import rpn_targets


class RPNHead(nn.Module):
    """RPN head shared over feature levels (torchvision ``RPNHead``).

    Attributes:
      num_anchors: anchors per position ``k``.
      in_features: the map (a name) or maps (names, finest first; same channels ``C``) of the
        features dict it runs on.
      conv_features: channels of the 3x3 conv (None: the input's channels, as torchvision).

    ``__call__(features, *, train)``: ``features`` a dict of named maps ``[B, h, w, C]`` ->
    ``{"logits": [B, N], "deltas": [B, N, 4]}`` float32, concatenated over the levels with
    ``N = sum_l h_l * w_l * k`` ordered level by level (``in_features`` order), then
    ``(i, j, a)`` — the order of :func:`vai_jax.detection.anchors.multilevel_anchors`, which is
    what proposal decoding and the anchor targets take. Deltas use box-coder weights
    ``(1, 1, 1, 1)``.
    """

    num_anchors: int
    in_features: str | Sequence[str]
    conv_features: int | None = None
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, features: Mapping[str, jax.Array], *, train: bool) -> dict:
        del train
        check_int(self.num_anchors, "num_anchors", ge=1)
        if self.conv_features is not None:
            check_int(self.conv_features, "conv_features", ge=1)
        maps = select_maps(features, self.in_features, owner="RPNHead")
        channels = {m.shape[-1] for m in maps}
        if len(channels) != 1:
            raise ValueError(f"RPNHead shares its convs over levels: the maps of in_features "
                             f"{as_names(self.in_features)} must have equal channels; got "
                             f"{[m.shape[-1] for m in maps]} (use an FPN)")
        ch = self.conv_features or maps[0].shape[-1]
        conv = nn.Conv(ch, (3, 3), padding=1, dtype=self.dtype, param_dtype=self.param_dtype,
                       kernel_init=nn.initializers.normal(0.01), name="conv")
        cls = nn.Conv(self.num_anchors, (1, 1), dtype=self.dtype, param_dtype=self.param_dtype,
                      kernel_init=nn.initializers.normal(0.01), name="cls_logits")
        reg = nn.Conv(4 * self.num_anchors, (1, 1), dtype=self.dtype, param_dtype=self.param_dtype,
                      kernel_init=nn.initializers.normal(0.01), name="bbox_pred")
        logits, deltas = [], []
        for f in maps:
            t = nn.relu(conv(f))
            b = f.shape[0]
            logits.append(cls(t).reshape(b, -1))
            deltas.append(reg(t).reshape(b, -1, 4))
        return {"logits": jnp.concatenate(logits, 1).astype(jnp.float32),
                "deltas": jnp.concatenate(deltas, 1).astype(jnp.float32)}


class RegionProposalNetwork(nn.Module):
    """The first stage of Faster R-CNN: anchors, :class:`RPNHead`, anchor targets (training)
    and proposal decoding with static sizes.

    Attributes:
      in_features: the map(s) of the features dict the RPN runs on, finest first.
      anchor_sizes: per level, anchor sizes in pixels; aspect_ratios: ``h / w`` ratios (the
        same for every level). ``k = len(anchor_sizes[l]) * len(aspect_ratios)``, equal on
        every level.
      conv_features: the head's 3x3 conv width (None: the input's channels).
      high_threshold, low_threshold: anchor matching (0.7 / 0.3; the best anchor of each box
        is kept). num_samples, positive_fraction: sampled anchors per image (256, half
        positive).
      nms_threshold, pre_nms_top_n_*, post_nms_top_n_*: proposals (top-k before / after NMS,
        per level before, for training and inference).

    ``__call__(features, *, image_size, targets=None, rng=None, train)``: ``features`` a dict
    of named maps; ``image_size`` ``(H, W)``; when ``train``, ``targets`` with ``boxes
    [B, M, 4]`` and ``valid [B, M]``, and ``rng`` a PRNG key for the anchor sampler. Returns
    ``proposals [B, P, 4]`` (gradients stopped), ``proposal_valid [B, P]``, and when
    ``train`` also ``logits [B, A]``, ``deltas [B, A, 4]``, ``labels [B, A]`` (1/0/-1),
    ``weights [B, A]`` (1 = sampled) and ``box_targets [B, A, 4]`` for the loss.

    The head's parameters are this module's own (``conv``, ``cls_logits``, ``bbox_pred``;
    torchvision's ``rpn.head.*``).
    """

    in_features: str | Sequence[str]
    anchor_sizes: Sequence[Sequence[float]] = ((32.0, 64.0, 128.0),)
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0)
    conv_features: int | None = None
    high_threshold: float = 0.7
    low_threshold: float = 0.3
    num_samples: int = 256
    positive_fraction: float = 0.5
    nms_threshold: float = 0.7
    pre_nms_top_n_train: int = 2000
    post_nms_top_n_train: int = 2000
    pre_nms_top_n_test: int = 1000
    post_nms_top_n_test: int = 1000
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @property
    def num_anchors(self) -> int:
        """Anchors per position ``k``."""
        return len(self.anchor_sizes[0]) * len(self.aspect_ratios)

    def setup(self):
        self.head = RPNHead(self.num_anchors, self.in_features, self.conv_features,
                            dtype=self.dtype, param_dtype=self.param_dtype)
        nn.share_scope(self, self.head)

    def __call__(self, features: Mapping[str, jax.Array], *, image_size: Sequence[int],
                 targets: Mapping[str, jax.Array] | None = None, rng=None, train: bool) -> dict:
        names = as_names(self.in_features)
        for name in ("high_threshold", "low_threshold", "positive_fraction", "nms_threshold"):
            check_number(getattr(self, name), name, ge=0.0, le=1.0)
        if self.low_threshold > self.high_threshold:
            raise ValueError(f"low_threshold must be <= high_threshold; got {self.low_threshold} "
                             f"and {self.high_threshold}")
        for name in ("num_samples", "pre_nms_top_n_train", "post_nms_top_n_train",
                     "pre_nms_top_n_test", "post_nms_top_n_test"):
            check_int(getattr(self, name), name, ge=1)
        if len(self.anchor_sizes) != len(names):
            raise ValueError(f"anchor_sizes needs one tuple per feature level ({len(names)}); "
                             f"got {len(self.anchor_sizes)}")
        if len({len(s) for s in self.anchor_sizes}) != 1:
            raise ValueError(f"anchor_sizes must have the same number of sizes on every level "
                             f"(the head is shared); got {self.anchor_sizes}")
        image_size = check_image_size(image_size)
        maps = select_maps(features, names, owner="RegionProposalNetwork")
        strides = feature_strides(image_size, maps)
        anchors, counts = multilevel_anchors([m.shape[1:3] for m in maps], strides, self.anchor_sizes,
                                             [self.aspect_ratios] * len(maps), offset=0.5,
                                             round_to_int=False)
        head = self.head(features, train=train)
        logits, deltas = head["logits"], head["deltas"]
        pre, post = ((self.pre_nms_top_n_train, self.post_nms_top_n_train) if train
                     else (self.pre_nms_top_n_test, self.post_nms_top_n_test))
        proposals, _, valid = decode_proposals(
            anchors, logits, deltas, image_size=image_size, pre_nms_top_n=pre, post_nms_top_n=post,
            nms_threshold=self.nms_threshold, level_counts=counts)
        out = {"proposals": proposals, "proposal_valid": valid}
        if not train:
            return out
        b = logits.shape[0]
        labels, weights, box_targets = jax.vmap(lambda k, gb, gv: rpn_targets(
            k, anchors, gb, gv, high_threshold=self.high_threshold,
            low_threshold=self.low_threshold, num_samples=self.num_samples,
            positive_fraction=self.positive_fraction))(
            jax.random.split(rng, b), targets["boxes"], targets["valid"])
        out.update(logits=logits, deltas=deltas, labels=labels, weights=weights,
                   box_targets=box_targets)
        return out
