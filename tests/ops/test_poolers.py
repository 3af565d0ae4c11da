"""FPN level mapping and multi-level RoIAlign, against per-level RoIAlign and torchvision."""
import numpy as np

from tests.ops.roi_inputs import B, C, torchvision as _torchvision
from tests.ops.roi_reference import roi_align_ref
from vai_jax.ops import fpn_levels, multilevel_roi_align


def test_fpn_levels_formula():
    # sqrt(area) = 224 -> level 4; 112 -> 3; 448 -> 5; 56 -> 2; 10 -> clamped 2; 2000 -> clamped 5.
    sides = np.array([224, 112, 448, 56, 10, 2000, 223.0], np.float32)
    boxes = np.stack([np.zeros_like(sides), np.zeros_like(sides), sides, sides], 1)
    lv = np.asarray(fpn_levels(boxes, min_level=2, max_level=5))
    np.testing.assert_array_equal(lv, [2, 1, 3, 0, 0, 3, 1])


def test_multilevel_equals_per_level():
    rng = np.random.default_rng(7)
    scales = (1 / 4, 1 / 8, 1 / 16)
    feats = [rng.standard_normal((B, 32 // (2**i), 24 // (2**i), C)).astype(np.float32) for i in range(3)]
    xy = rng.uniform(0, 60, (10, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(4, 120, (10, 2))], 1).astype(np.float32)
    idx = np.arange(10) % B
    got = np.asarray(multilevel_roi_align(feats, boxes, idx, 2, spatial_scales=scales, sampling_ratio=2, aligned=False))
    lv = np.asarray(fpn_levels(boxes, min_level=2, max_level=4))
    for k in range(10):
        ref = roi_align_ref(feats[lv[k]], boxes[k : k + 1], idx[k : k + 1], (2, 2), scales[lv[k]], 2, False)
        np.testing.assert_allclose(got[k], ref[0], atol=2e-5)
    dense = multilevel_roi_align(feats, boxes, idx, 2, spatial_scales=scales, sampling_ratio=-1, aligned=True)
    for k in range(10):
        ref = roi_align_ref(feats[lv[k]], boxes[k : k + 1], idx[k : k + 1], (2, 2), scales[lv[k]], -1, True)
        np.testing.assert_allclose(np.asarray(dense)[k], ref[0], atol=2e-5)


def test_multiscale_roi_align_torchvision_parity():
    torch, tv = _torchvision()
    rng = np.random.default_rng(25)
    feats = [rng.standard_normal((1, 64 // 2**i, 48 // 2**i, 2)).astype(np.float32) for i in range(4)]
    xy = rng.uniform(0, 150, (30, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(2, 250, (30, 2))], 1).astype(np.float32)
    mroi = tv.ops.MultiScaleRoIAlign(["p2", "p3", "p4", "p5"], 7, 2)
    fdict = {f"p{i + 2}": torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))) for i, x in enumerate(feats)}
    want = mroi(fdict, [torch.from_numpy(boxes)], [(256, 192)]).permute(0, 2, 3, 1).numpy()
    got = multilevel_roi_align(feats, boxes, np.zeros(30, np.int32), 7, spatial_scales=(1 / 4, 1 / 8, 1 / 16, 1 / 32),
                               sampling_ratio=2, aligned=False)
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)
