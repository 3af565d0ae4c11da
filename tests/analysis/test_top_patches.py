"""Maximally activating patches on a network whose answer is known by construction."""
import flax.linen as nn
import numpy as np
import pytest
from tests.analysis.analysis_testing import random_variables

from vai_jax.analysis.patches import crop_field, top_patches
from vai_jax.analysis.receptive_field import ReceptiveField


class Delta(nn.Module):
    """conv1: 3x3 (pad 1); conv2: 3x3/2 'VALID'. See _delta_variables."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        del train
        x = nn.Conv(2, (3, 3), padding=((1, 1), (1, 1)), use_bias=False, name="conv1")(x)
        return nn.Conv(1, (3, 3), strides=2, padding="VALID", name="conv2")(x)


def _delta_variables():
    """conv1's channel 0 copies the input pixel, channel 1 its negative."""
    v = random_variables(Delta(), (1, 10, 10, 1))
    k = np.zeros((3, 3, 1, 2), np.float32)
    k[1, 1, 0, 0], k[1, 1, 0, 1] = 1.0, -1.0
    v["params"]["conv1"]["kernel"] = k
    return v


def test_top_patches_find_the_bright_pixels():
    model = Delta()
    v = _delta_variables()
    images = np.zeros((5, 10, 10, 1), np.float32)
    bright = {3: ((4, 6), 5.0), 1: ((0, 0), 3.0), 4: ((9, 2), 2.0), 0: ((7, 7), 1.0)}
    for n, ((r, c), value) in bright.items():
        images[n, r, c, 0] = value
    images[2, 5, 5, 0] = -4.0  # image 2: strongest for channel 1 (the negative copy)
    display = np.repeat((images * 10 + 100).astype(np.uint8), 3, axis=-1)
    res = top_patches(model, v, "conv1", [0, 1], images, display, k=3, batch_size=2, fill=7,
                      train=False)
    assert res.field.size == (3, 3) and res.field.start == (-1, -1)
    assert res.image_index[0].tolist() == [3, 1, 4]
    assert res.position[0].tolist() == [[4, 6], [0, 0], [9, 2]]
    np.testing.assert_allclose(res.value[0], [5.0, 3.0, 2.0])
    assert res.image_index[1, 0] == 2 and res.position[1, 0].tolist() == [5, 5]
    assert res.crops.shape == (2, 3, 3, 3, 3) and res.crops.dtype == np.uint8
    # Crop of a corner unit: the out-of-image row/col are the fill value.
    corner = res.crops[0, 1, :, :, 0]
    assert corner[0].tolist() == [7, 7, 7] and corner[:, 0].tolist() == [7, 7, 7]
    assert corner[1, 1] == 130  # the bright pixel, centred
    np.testing.assert_array_equal(res.crops[0, 0], display[3, 3:6, 5:8])


def test_crop_field_against_numpy_padding():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (12, 9, 3)).astype(np.uint8)
    field = ReceptiveField(jump=(2, 2), start=(-3, -2), size=(7, 5), input_size=(12, 9))
    padded = np.pad(image, ((3, 10), (2, 10), (0, 0)))
    for i, j in [(0, 0), (3, 2), (5, 4)]:
        expected = padded[2 * i:2 * i + 7, 2 * j:2 * j + 5]
        np.testing.assert_array_equal(crop_field(image, field, i, j), expected)


def test_top_patches_bad_input():
    model = Delta()
    v = _delta_variables()
    images = np.zeros((4, 10, 10, 1), np.float32)
    with pytest.raises(ValueError, match="no layer named 'conv3'"):
        top_patches(model, v, "conv3", [0], images, train=False)
    with pytest.raises(ValueError, match=r"channels must be non-empty and in \[0, 2\)"):
        top_patches(model, v, "conv1", [2], images, train=False)
    with pytest.raises(ValueError, match=r"k must be in \[1, 4\]"):
        top_patches(model, v, "conv1", [0], images, k=5, train=False)
