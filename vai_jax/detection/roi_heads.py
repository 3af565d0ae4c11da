"""The second stage shared by Fast R-CNN, Faster R-CNN and Mask R-CNN (torchvision's
``RoIHeads``): RoI sampling (training), RoI pooling (RoIPool or RoIAlign, one level or an FPN
pyramid), the box head (two fully connected layers, then a sibling softmax classifier over
``C + 1`` classes, 0 = background, and a class-specific box regressor), detections, and the
optional Mask R-CNN mask branch (a small fully convolutional network on 14x14 RoIAlign
features, a 2x2 stride-2 transposed conv to 28x28 and one binary mask logit map per class)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vai_jax._validation import check_array, check_image_size, check_int, check_number
from vai_jax.detection.levels import feature_strides, select_maps
from vai_jax.detection.postprocess import detect
from vai_jax.detection.targets import mask_targets, roi_targets
from vai_jax.ops.poolers import multilevel_roi_align
from vai_jax.ops.roi_align import roi_align_batched
from vai_jax.ops.roi_pool import roi_pool


class BoxHead(nn.Module):
    """TwoMLPHead + FastRCNNPredictor (torchvision).

    Attributes:
      num_classes: foreground classes ``C``.
      hidden: width of the two fully connected layers (1024 in the paper's ResNet setting).

    ``__call__(pooled, *, train)``: ``pooled [..., S, S, C_in]`` -> ``(cls_logits [..., C+1],
    box_deltas [..., C+1, 4])`` (deltas for box-coder weights ``(10, 10, 5, 5)``).

    It takes RoI-pooled tensors, not the features dict (torchvision's ``TwoMLPHead`` too): it
    runs once per RoI, and which RoIs, at which level and with which pooling is
    :class:`RoIStage`'s business (sampled RoIs when training, proposals at inference).
    """

    num_classes: int
    hidden: int = 1024
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, pooled, *, train: bool):
        del train
        pooled = check_array(pooled, "pooled", min_ndim=3, kind="floating",
                             shape_hint="[..., S, S, C_in]")
        check_int(self.num_classes, "num_classes", ge=1)
        check_int(self.hidden, "hidden", ge=1)
        lead = pooled.shape[:-3]
        x = pooled.reshape(lead + (-1,))
        dense = lambda n, name, **kw: nn.Dense(n, dtype=self.dtype, param_dtype=self.param_dtype,
                                               name=name, **kw)
        x = nn.relu(dense(self.hidden, "fc6")(x))
        x = nn.relu(dense(self.hidden, "fc7")(x))
        k = self.num_classes + 1
        cls = dense(k, "cls_score", kernel_init=nn.initializers.normal(0.01))(x)
        box = dense(4 * k, "bbox_pred", kernel_init=nn.initializers.normal(0.001))(x)
        return cls.astype(jnp.float32), box.reshape(lead + (k, 4)).astype(jnp.float32)


class MaskHead(nn.Module):
    """Mask R-CNN's mask head (torchvision ``MaskRCNNHeads`` + ``MaskRCNNPredictor``).

    Attributes: num_classes ``C`` (output channels ``C + 1``; channel 0 unused background),
    features (conv width, 256 in the paper), num_convs (4).

    ``__call__(pooled, *, train)``: ``pooled [..., 14, 14, C_in]`` -> mask logits
    ``[..., 28, 28, C+1]`` (twice the input size). Each RoI's mask is the channel of its class.
    Like :class:`BoxHead` it takes RoI-pooled tensors: :class:`RoIStage` chooses the RoIs
    (foreground samples when training, detections at inference) and pools them.
    """

    num_classes: int
    features: int = 256
    num_convs: int = 4
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, pooled, *, train: bool):
        del train
        pooled = check_array(pooled, "pooled", min_ndim=3, kind="floating",
                             shape_hint="[..., S, S, C_in]")
        check_int(self.num_classes, "num_classes", ge=1)
        check_int(self.features, "features", ge=1)
        check_int(self.num_convs, "num_convs", ge=0)
        lead = pooled.shape[:-3]
        x = pooled.reshape((-1,) + pooled.shape[-3:])
        for i in range(self.num_convs):
            x = nn.relu(nn.Conv(self.features, (3, 3), padding=1, dtype=self.dtype,
                                param_dtype=self.param_dtype, name=f"mask_fcn{i + 1}")(x))
        x = nn.relu(nn.ConvTranspose(self.features, (2, 2), strides=(2, 2), padding="VALID",
                                     dtype=self.dtype, param_dtype=self.param_dtype,
                                     name="conv5_mask")(x))
        x = nn.Conv(self.num_classes + 1, (1, 1), dtype=self.dtype, param_dtype=self.param_dtype,
                    name="mask_logits")(x)
        return x.reshape(lead + x.shape[1:]).astype(jnp.float32)


POOL_MODES = ("align", "pool")


def pool_rois(maps: Sequence[jax.Array], strides: Sequence[int], rois, size: int, *,
              mode: str = "align", canonical_scale: float = 224.0, canonical_level: int = 4):
    """Pool ``rois [B, R, 4]`` (input pixels) from one map or an FPN pyramid -> ``[B, R, size, size, C]``.

    ``maps``: ``[B, h_l, w_l, C]``, finest first; ``strides``: pixels per cell of each.
    ``mode="align"``: RoIAlign (aligned, 2x2 samples per bin); ``"pool"``: RoIPool (one level only).
    """
    if mode not in POOL_MODES:
        raise ValueError(f"mode must be one of {POOL_MODES}; got {mode!r}")
    b, r = rois.shape[:2]
    rois = rois.astype(maps[0].dtype)
    if len(maps) == 1:
        f, s = maps[0], 1.0 / strides[0]
        if mode == "align":
            return roi_align_batched(f, rois, size, spatial_scale=s, sampling_ratio=2, aligned=True)
        idx = jnp.repeat(jnp.arange(b, dtype=jnp.int32), r)
        return roi_pool(f, rois.reshape(-1, 4), idx, size, spatial_scale=s).reshape(b, r, size, size, -1)
    if mode != "align":
        raise ValueError("mode='pool' supports a single feature level; use 'align' with FPN")
    idx = jnp.repeat(jnp.arange(b, dtype=jnp.int32), r)
    out = multilevel_roi_align(list(maps), rois.reshape(-1, 4), idx, size,
                               spatial_scales=[1.0 / s for s in strides], sampling_ratio=2,
                               aligned=True, canonical_scale=canonical_scale,
                               canonical_level=canonical_level)
    return out.reshape(b, r, size, size, -1)


class RoIStage(nn.Module):
    """Box head (and mask head) on pooled proposals.

    Attributes:
      num_classes: foreground classes ``C`` (labels ``0..C-1``; the heads have ``C + 1``
        outputs with 0 = background).
      in_features: the map (a name) or the pyramid levels (names, finest first) RoIs are
        pooled from (torchvision's ``MultiScaleRoIAlign.featmap_names``).
      pool_mode: ``"align"`` (RoIAlign) or ``"pool"`` (RoIPool, Fast R-CNN's original).
      pool_size: box-head input size (7). hidden: box-head FC width.
      num_samples, positive_fraction, fg_threshold, bg_threshold: RoI sampling per image.
      score_threshold, nms_threshold, max_detections: inference.
      with_masks: add the Mask R-CNN branch (RoIAlign ``mask_pool_size`` -> 2x up-sampled masks).
      mask_features, mask_convs: mask head width and depth.
      canonical_scale, canonical_level: FPN level mapping constants.

    ``__call__(features, proposals, proposal_valid, *, image_size, targets, rng, train)``:
      features: dict of named maps ``[B, h_l, w_l, C_in]`` (strides from ``image_size``);
      proposals ``[B, P, 4]``, proposal_valid ``[B, P]``; image_size ``(H, W)``; targets: dict
      with ``boxes [B, M, 4]``, ``classes [B, M]``, ``valid [B, M]`` (+ ``masks [B, M, H, W]``)
      when ``train``; rng: key for sampling when ``train``.
      Returns (train) ``cls_logits [B, S, C+1]``, ``box_deltas [B, S, C+1, 4]``, ``roi_labels``,
      ``roi_weights``, ``roi_box_targets``, ``rois`` (+ ``mask_logits [B, F, 28, 28, C+1]``,
      ``mask_targets [B, F, 28, 28]`` for the first ``F = int(num_samples * positive_fraction)``
      sampled RoIs: the foreground slots, so background RoIs never run the mask head); (eval)
      detections ``boxes [B, D, 4]``, ``scores``, ``classes`` (0..C-1), ``valid`` (+ ``masks
      [B, D, 28, 28]`` probabilities in box frame).
    """

    num_classes: int
    in_features: str | Sequence[str]
    pool_mode: str = "align"
    pool_size: int = 7
    hidden: int = 1024
    num_samples: int = 512
    positive_fraction: float = 0.25
    fg_threshold: float = 0.5
    bg_threshold: float = 0.5
    score_threshold: float = 0.05
    nms_threshold: float = 0.5
    max_detections: int = 100
    with_masks: bool = False
    mask_pool_size: int = 14
    mask_features: int = 256
    mask_convs: int = 4
    canonical_scale: float = 224.0
    canonical_level: int = 4
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    def _pool(self, maps, strides, rois, size):
        return pool_rois(maps, strides, rois, size, mode=self.pool_mode if size == self.pool_size
                         else "align", canonical_scale=self.canonical_scale,
                         canonical_level=self.canonical_level)

    @nn.compact
    def __call__(self, features: Mapping[str, jax.Array], proposals, proposal_valid, *,
                 image_size: Sequence[int], targets=None, rng=None, train: bool):
        if self.pool_mode not in POOL_MODES:
            raise ValueError(f"pool_mode must be one of {POOL_MODES}; got {self.pool_mode!r}")
        check_int(self.num_classes, "num_classes", ge=1)
        for name in ("pool_size", "num_samples", "max_detections", "mask_pool_size"):
            check_int(getattr(self, name), name, ge=1)
        for name in ("positive_fraction", "fg_threshold", "bg_threshold", "score_threshold",
                     "nms_threshold"):
            check_number(getattr(self, name), name, ge=0.0, le=1.0)
        image_size = check_image_size(image_size)
        maps = select_maps(features, self.in_features, owner="RoIStage")
        strides = feature_strides(image_size, maps)
        box_head = BoxHead(self.num_classes, hidden=self.hidden, dtype=self.dtype,
                           param_dtype=self.param_dtype, name="box_head")
        mask_head = (MaskHead(self.num_classes, features=self.mask_features, num_convs=self.mask_convs,
                              dtype=self.dtype, param_dtype=self.param_dtype, name="mask_head")
                     if self.with_masks else None)
        proposals = jax.lax.stop_gradient(proposals)
        if train:
            b = proposals.shape[0]
            t = jax.vmap(lambda k, p, pv, gb, gc, gv: roi_targets(
                k, p, pv, gb, gc, gv, num_samples=self.num_samples,
                positive_fraction=self.positive_fraction, fg_threshold=self.fg_threshold,
                bg_threshold=self.bg_threshold))(
                jax.random.split(rng, b), proposals, proposal_valid, targets["boxes"],
                targets["classes"], targets["valid"])
            cls, deltas = box_head(self._pool(maps, strides, t["rois"], self.pool_size), train=train)
            out = {"cls_logits": cls, "box_deltas": deltas, "roi_labels": t["labels"],
                   "roi_weights": t["valid"].astype(jnp.float32), "roi_box_targets": t["box_targets"],
                   "rois": t["rois"]}
            if mask_head is not None:
                # Foreground RoIs only (as torchvision): the sampler puts them in the first
                # int(num_samples * positive_fraction) slots, so the others are never run.
                p = max(1, min(int(self.num_samples * self.positive_fraction), t["rois"].shape[1]))
                rois_fg = t["rois"][:, :p]
                pooled = self._pool(maps, strides, rois_fg, self.mask_pool_size)
                out["mask_logits"] = mask_head(pooled, train=train)
                s = out["mask_logits"].shape[2]
                out["mask_targets"] = jax.vmap(lambda m, i, r: mask_targets(m, i, r, s))(
                    targets["masks"], t["matched"][:, :p], rois_fg)
            return out
        cls, deltas = box_head(self._pool(maps, strides, proposals, self.pool_size), train=train)
        dets = detect(cls, deltas, proposals, proposal_valid, image_size=image_size,
                      score_threshold=self.score_threshold, nms_threshold=self.nms_threshold,
                      max_detections=self.max_detections)
        dets.pop("roi_index")
        if mask_head is not None:
            logits = mask_head(self._pool(maps, strides, dets["boxes"], self.mask_pool_size),
                               train=train)
            sel = jnp.take_along_axis(logits, (dets["classes"] + 1)[:, :, None, None, None], axis=-1)[..., 0]
            dets["masks"] = jax.nn.sigmoid(sel)
        return dets
