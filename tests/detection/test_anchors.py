"""Anchors: hand-computed cells, grid order and offset, torchvision's AnchorGenerator."""
import numpy as np
import pytest

from vai_jax.detection.anchors import cell_anchors, grid_anchors, level_anchors, multilevel_anchors


def _torchvision():
    try:
        import torch
        import torchvision
        from torchvision.models.detection.anchor_utils import AnchorGenerator

        torchvision.ops.nms  # noqa: B018
    except Exception as e:
        pytest.skip(f"torchvision unavailable: {type(e).__name__}: {e}")
    return torch, AnchorGenerator


def test_cell_anchor_values():
    # size 32, ratio h/w = 2: w = 32 / sqrt 2 = 22.63, h = 45.25 -> half sides 11.31, 22.63.
    c = cell_anchors((32,), (1.0, 2.0), round_to_int=False)
    np.testing.assert_allclose(c, [[-16, -16, 16, 16], [-11.3137, -22.6274, 11.3137, 22.6274]], atol=1e-3)
    np.testing.assert_array_equal(cell_anchors((32,), (2.0,)), [[-11, -23, 11, 23]])
    # ratio outer, size inner; area is size**2
    c = cell_anchors((16, 32), (0.5, 1.0, 2.0), round_to_int=False)
    area = (c[:, 2] - c[:, 0]) * (c[:, 3] - c[:, 1])
    np.testing.assert_allclose(area, [256, 1024] * 3, rtol=1e-5)
    np.testing.assert_allclose((c[:, 3] - c[:, 1]) / (c[:, 2] - c[:, 0]), [0.5, 0.5, 1, 1, 2, 2], rtol=1e-5)


def test_grid_order_and_offset():
    cell = np.array([[-1, -1, 1, 1], [-2, -1, 2, 1]], np.float32)
    a = np.asarray(grid_anchors(cell, (2, 3), 8))
    assert a.shape == (2 * 3 * 2, 4)
    centres = (a[:, :2] + a[:, 2:]) / 2
    np.testing.assert_allclose(centres[::2], [[x * 8, y * 8] for y in range(2) for x in range(3)])
    half = np.asarray(grid_anchors(cell, (2, 3), (8, 4), offset=0.5))
    np.testing.assert_allclose((half[0, :2] + half[0, 2:]) / 2, [2, 4])  # (x, y) = (0.5 * 4, 0.5 * 8)
    full, counts = multilevel_anchors([(4, 4), (2, 2)], [8, 16], [(32,), (64,)], [(0.5, 1, 2)] * 2)
    assert counts == (48, 12) and full.shape == (60, 4)
    np.testing.assert_allclose(np.asarray(full[48:]), np.asarray(level_anchors((2, 2), 16, (64,), (0.5, 1, 2))))


def test_bad_input():
    with pytest.raises(ValueError, match="sizes must be"):
        cell_anchors((), (1.0,))
    with pytest.raises(ValueError, match="aspect_ratios must be"):
        cell_anchors((32,), (0.0,))
    with pytest.raises(ValueError, match="stride must be"):
        grid_anchors(np.zeros((1, 4)), (2, 2), 0)
    with pytest.raises(ValueError, match="feature_shape must be"):
        grid_anchors(np.zeros((1, 4)), (2,), 8)
    with pytest.raises(ValueError, match="strides must have one entry per level"):
        multilevel_anchors([(2, 2)], [8, 16], [(32,)], [(1.0,)])


def test_torchvision_anchor_generator_parity():
    torch, AnchorGenerator = _torchvision()
    from torchvision.models.detection.image_list import ImageList

    sizes = ((32,), (64,), (128,))
    ratios = ((0.5, 1.0, 2.0),) * 3
    gen = AnchorGenerator(sizes, ratios)
    shapes = [(16, 20), (8, 10), (4, 5)]
    feats = [torch.zeros(1, 1, h, w) for h, w in shapes]
    want = gen(ImageList(torch.zeros(1, 3, 128, 160), [(128, 160)]), feats)[0].numpy()
    got, _ = multilevel_anchors(shapes, [8, 16, 32], sizes, ratios)
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)
