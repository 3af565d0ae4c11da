"""Simulated weak annotations: image-level labels against sets, point labels (one per instance on
its visible mask, background points, determinism by seed and index) on shapes records, and the
objectness prior against a direct 2-D convolution."""
import numpy as np
import pytest

from vai_jax.data.shapes import ShapesDataset
from vai_jax.segmentation.weak_labels import (gaussian_blur, image_labels, objectness_prior,
                                              simulate_points)


@pytest.fixture(scope="module")
def records():
    return ShapesDataset("detection", split="train", num_examples=6, image_size=32,
                         seed=3).get_batch(range(6))


def test_image_labels_match_sets(records):
    sem = records["semantic"].copy()
    sem[0, :2] = 255
    got = image_labels(sem, 7)
    assert got.shape == (6, 7) and got.dtype == bool
    for b in range(6):
        assert set(np.flatnonzero(got[b])) == set(np.unique(sem[b])) - {255}
    with pytest.raises(ValueError, match=r"semantic must lie in \[0, 7\)"):
        image_labels(sem + 1, 7)
    with pytest.raises(ValueError, match="num_classes must be an int >= 2"):
        image_labels(sem, 1)


def test_points_one_per_instance_on_its_mask(records):
    for b in range(6):
        sem, masks, valid = records["semantic"][b], records["masks"][b], records["valid"][b]
        pts = simulate_points(sem, masks, valid, seed=0, index=b, background_points=2)
        assert pts.shape == sem.shape and pts.dtype == np.int32
        annotated = pts != 255
        np.testing.assert_array_equal(pts[annotated], sem[annotated])   # the true class there
        for m in np.flatnonzero(valid):
            assert np.sum(annotated & masks[m]) == 1                     # one click per object
        assert np.sum(annotated & (sem == 0)) == min(2, np.sum(sem == 0))
        assert annotated.sum() == valid.sum() + min(2, np.sum(sem == 0))
        # Deterministic in (seed, index); another seed moves the clicks.
        again = simulate_points(sem, masks, valid, seed=0, index=b, background_points=2)
        np.testing.assert_array_equal(pts, again)
    moved = [not np.array_equal(
        simulate_points(records["semantic"][b], records["masks"][b], records["valid"][b],
                        seed=0, index=b),
        simulate_points(records["semantic"][b], records["masks"][b], records["valid"][b],
                        seed=1, index=b)) for b in range(6)]
    assert all(moved)


def test_points_skip_padding_and_ignored_pixels():
    sem = np.zeros((4, 5), np.int32)
    sem[1:3, 1:3] = 2
    masks = np.zeros((3, 4, 5), bool)
    masks[0, 1:3, 1:3] = True
    masks[1, 0, 0] = True          # a padding slot (valid False): no point
    sem_ign = sem.copy()
    sem_ign[1:3, 1:3] = 255        # the object lies on ignored pixels only: no point
    valid = np.array([True, False, False])
    pts = simulate_points(sem, masks, valid, seed=5, background_points=0)
    assert np.sum(pts != 255) == 1 and np.sum(pts[1:3, 1:3] == 2) == 1
    assert not (simulate_points(sem_ign, masks, valid, seed=5, background_points=0) != 255).any()
    with pytest.raises(ValueError, match=r"masks must be \[M, H, W\] with \(H, W\)"):
        simulate_points(sem, masks[:, :3], valid, seed=0)
    with pytest.raises(ValueError, match=r"valid must have shape \(3,\)"):
        simulate_points(sem, masks, valid[:2], seed=0)
    with pytest.raises(ValueError, match="background_points must be an int >= 0"):
        simulate_points(sem, masks, valid, seed=0, background_points=-1)
    with pytest.raises(ValueError, match="semantic must have rank 2"):
        simulate_points(sem[None], masks, valid, seed=0)
    with pytest.raises(TypeError, match="masks must have"):
        simulate_points(sem, masks.astype(np.int32), valid, seed=0)


def _np_blur2d(x, sigma):
    """Direct 2-D convolution with the outer product of the taps, edge pixels repeated."""
    r = int(np.ceil(3 * sigma))
    t = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k2 = np.outer(t, t) / t.sum() ** 2
    h, w = x.shape
    out = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            for a in range(-r, r + 1):
                for b in range(-r, r + 1):
                    y, z = min(max(i + a, 0), h - 1), min(max(j + b, 0), w - 1)
                    out[i, j] += k2[a + r, b + r] * x[y, z]
    return out


def test_gaussian_blur_and_objectness_prior(records):
    x = np.random.default_rng(0).uniform(0, 1, (2, 9, 7))
    got = gaussian_blur(x, 1.3)
    assert got.shape == (2, 9, 7) and got.dtype == np.float32
    for b in range(2):
        np.testing.assert_allclose(got[b], _np_blur2d(x[b], 1.3), rtol=1e-5, atol=1e-6)
    sem = records["semantic"][:2]
    prior = objectness_prior(sem, 2.0, floor=0.05)
    ref = 0.05 + 0.9 * np.stack([_np_blur2d((s >= 1).astype(float), 2.0) for s in sem])
    np.testing.assert_allclose(prior, ref, rtol=1e-5, atol=1e-6)
    assert prior.min() >= 0.05 - 1e-6 and prior.max() <= 0.95 + 1e-6
    with pytest.raises(ValueError, match="sigma"):
        objectness_prior(sem, -1.0)
    with pytest.raises(ValueError, match=r"floor must lie in \[0, 0.5\)"):
        objectness_prior(sem, 1.0, floor=0.5)
