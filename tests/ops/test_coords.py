import numpy as np
import pytest

from vai_jax.ops import coords


def test_pixel_center_grid_is_half_offset():
    g = np.asarray(coords.pixel_center_grid(3, 4))
    assert g.shape == (3, 4, 2)
    for i in range(3):
        for j in range(4):
            assert tuple(g[i, j]) == (j + 0.5, i + 0.5)


def test_heatmap_image_round_trip_keeps_visibility():
    kp = np.array([[1.5, 2.25, 2.0], [0.0, 3.0, 0.0]], np.float32)
    img = np.asarray(coords.heatmap_to_image(kp, 4))
    np.testing.assert_allclose(img, [[6.0, 9.0, 2.0], [0.0, 12.0, 0.0]])
    np.testing.assert_allclose(coords.image_to_heatmap(img, 4), kp)
    # The centre of heatmap cell (i=1, j=2) at stride 8 is the centre of the 8x8 image block.
    np.testing.assert_allclose(coords.heatmap_to_image(np.array([2.5, 1.5]), 8), [20.0, 12.0])


def test_pixel_index_half_open_and_inside():
    pts = np.array([[0.0, 0.0], [0.999, 1.0], [3.0, 2.5], [-0.1, 1.0]], np.float32)
    np.testing.assert_array_equal(coords.pixel_index(pts), [[0, 0], [0, 1], [3, 2], [-1, 1]])
    np.testing.assert_array_equal(coords.inside_image(pts, 3, 3), [True, True, False, False])


def test_bad_arguments():
    with pytest.raises(ValueError, match="stride must be finite and > 0"):
        coords.heatmap_to_image(np.zeros((2, 2)), 0)
    with pytest.raises(ValueError, match="last dimension >= 2"):
        coords.image_to_heatmap(np.zeros((2, 1)), 2)
    with pytest.raises(ValueError, match="height and width must be >= 1"):
        coords.pixel_centers(0, 3)
