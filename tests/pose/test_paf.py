"""Tests for vai_jax.pose.paf: fields against a loop reference, limb scores, greedy grouping."""
import chex
import jax.numpy as jnp
import numpy as np
import pytest

from vai_jax.ops import keypoints as kpo
from vai_jax.pose import paf


def _ref_fields(kp, skeleton, shape, stride, sigma):
    """Loop reference of Cao et al. Eq. 8–9 for one image: kp [M, K, 3] -> [H, W, L, 2]."""
    height, width = shape
    kp = np.asarray(kp, np.float64)
    out = np.zeros((height, width, len(skeleton), 2))
    for l, (a, b) in enumerate(skeleton):
        for i in range(height):
            for j in range(width):
                px, py = j + 0.5, i + 0.5
                acc, n = np.zeros(2), 0
                for m in range(len(kp)):
                    if kp[m, a, 2] <= 0 or kp[m, b, 2] <= 0:
                        continue
                    x1 = kp[m, a, :2] / stride
                    x2 = kp[m, b, :2] / stride
                    length = np.hypot(*(x2 - x1))
                    if length == 0:
                        continue
                    v = (x2 - x1) / length
                    r = np.array([px, py]) - x1
                    along = v[0] * r[0] + v[1] * r[1]
                    across = -v[1] * r[0] + v[0] * r[1]
                    if 0 <= along <= length and abs(across) <= sigma:
                        acc += v
                        n += 1
                if n:
                    out[i, j, l] = acc / n
    return out


SKELETON = np.array([[0, 1], [0, 2]])


def _crossing_instances():
    # Two instances whose limb 0 cross near the middle of the grid (overlap region), plus a
    # padded instance (all v = 0) and a limb leaving the image (instance 1, keypoint 2).
    return np.array([
        [[4.0, 4.0, 2], [36.0, 28.0, 2], [4.0, 30.0, 1]],
        [[4.0, 28.0, 2], [36.0, 6.0, 2], [50.0, 40.0, 2]],
        [[0.0, 0.0, 0], [0.0, 0.0, 0], [0.0, 0.0, 0]],
    ], np.float32)


def test_fields_match_loop_reference_including_overlap():
    kp = _crossing_instances()
    fields = paf.part_affinity_fields(kp, SKELETON, (16, 20), stride=2, sigma=1.2)
    chex.assert_shape(fields, (16, 20, 2, 2))
    ref = _ref_fields(kp, SKELETON, (16, 20), 2, 1.2)
    np.testing.assert_allclose(np.asarray(fields), ref, atol=1e-5)
    # The overlap exists: some cells hold the average of two different unit vectors (norm < 1).
    norms = np.linalg.norm(ref[:, :, 0], axis=-1)
    assert np.any((norms > 0.05) & (norms < 0.99))
    # Outside overlaps, on-limb vectors are unit.
    assert np.any(np.isclose(norms, 1.0))


def test_fields_batched_leading_axes():
    kp = _crossing_instances()
    batch = np.stack([kp, kp[::-1]])  # [2, M, K, 3]
    fields = np.asarray(paf.part_affinity_fields(batch, SKELETON, (8, 10), stride=4, sigma=1.0))
    ref = _ref_fields(kp, SKELETON, (8, 10), 4, 1.0)
    np.testing.assert_allclose(fields[0], ref, atol=1e-5)
    np.testing.assert_allclose(fields[1], ref, atol=1e-5)  # order of instances does not matter


def test_fields_all_invisible_are_zero():
    kp = np.zeros((2, 3, 3), np.float32)
    assert np.all(np.asarray(paf.part_affinity_fields(kp, SKELETON, (4, 4), stride=1,
                                                      sigma=1.0)) == 0)


def test_fields_bad_input():
    kp = _crossing_instances()
    with pytest.raises(ValueError, match="skeleton"):
        paf.part_affinity_fields(kp, np.array([[0, 3]]), (4, 4), stride=1, sigma=1.0)
    with pytest.raises(ValueError, match="keypoints"):
        paf.part_affinity_fields(kp[0, :, :2], SKELETON, (4, 4), stride=1, sigma=1.0)
    with pytest.raises(ValueError, match="sigma"):
        paf.part_affinity_fields(kp, SKELETON, (4, 4), stride=1, sigma=0.0)


def _ref_limb_dots(field, p1, p2, n):
    height, width = field.shape[:2]
    d = np.asarray(p2, np.float64) - np.asarray(p1, np.float64)
    length = np.hypot(*d)
    out = []
    for s in range(n):
        u = (s + 0.5) / n
        x, y = p1[0] + u * d[0], p1[1] + u * d[1]
        j = min(max(int(np.floor(x)), 0), width - 1)
        i = min(max(int(np.floor(y)), 0), height - 1)
        out.append(0.0 if length == 0 else float(field[i, j] @ d) / length)
    return np.array(out)


def test_limb_score_along_against_and_across_limb():
    kp = np.array([[[2.0, 3.0, 2], [14.0, 9.0, 2], [0, 0, 0]]], np.float32)
    field = np.asarray(paf.part_affinity_fields(kp, SKELETON, (12, 16), stride=1, sigma=1.0))[
        :, :, 0]
    p1, p2 = np.array([2.0, 3.0]), np.array([14.0, 9.0])
    assert float(paf.limb_score(field, p1, p2)) == pytest.approx(1.0, abs=1e-5)
    assert float(paf.limb_score(field, p2, p1)) == pytest.approx(-1.0, abs=1e-5)
    assert abs(float(paf.limb_score(field, np.array([8.0, 0.5]), np.array([8.0, 11.5])))) < 0.3
    assert float(paf.limb_score(field, p1, p1)) == 0.0  # degenerate limb: documented 0
    rng = np.random.default_rng(0)
    q1, q2 = rng.uniform(-1, 17, (6, 2)), rng.uniform(-1, 13, (6, 2))
    dots = np.asarray(paf.limb_dots(field, q1, q2, num_samples=7))
    for r in range(6):
        np.testing.assert_allclose(dots[r], _ref_limb_dots(field, q1[r], q2[r], 7), atol=1e-5)
    # The host-side twin used by group_keypoints agrees.
    np.testing.assert_allclose(paf._limb_dots_numpy(field, q1.astype(np.float32),
                                                    q2.astype(np.float32), 7), dots, atol=1e-5)


STAR = np.array([[0, 1], [0, 2], [0, 3]])


def test_grouping_reassembles_two_separated_instances_exactly():
    inst = np.array([
        [[8.0, 8.0, 2], [3.0, 3.0, 2], [13.0, 4.0, 2], [8.0, 14.0, 2]],
        [[30.0, 20.0, 2], [25.0, 14.0, 2], [36.0, 15.0, 2], [30.0, 27.0, 2]],
    ], np.float32)
    fields = paf.part_affinity_fields(inst, STAR, (32, 40), stride=1, sigma=1.0)
    # Candidates in shuffled order per keypoint type, plus an unused distractor slot.
    order = np.array([1, 0])
    peaks = np.zeros((4, 3, 2), np.float32)
    peaks[:, :2] = np.transpose(inst[order, :, :2], (1, 0, 2))
    peaks[:, 2] = 100.0
    valid = np.zeros((4, 3), bool)
    valid[:, :2] = True
    scores = np.ones((4, 3), np.float32)
    grouped, inst_scores = paf.group_keypoints(peaks, scores, valid, fields, STAR)
    assert grouped.shape == (2, 4, 3) and inst_scores.shape == (2,)
    got = sorted(grouped.tolist(), key=lambda g: g[0][0])
    np.testing.assert_allclose(np.asarray(got)[..., :2], inst[..., :2])
    assert np.all(np.asarray(got)[..., 2] == 2)


def test_grouping_from_heatmap_peaks_end_to_end():
    inst = np.array([
        [[8.5, 8.5, 2], [3.5, 3.5, 2], [13.5, 4.5, 2], [8.5, 14.5, 2]],
        [[30.5, 20.5, 2], [25.5, 14.5, 2], [36.5, 15.5, 2], [0, 0, 0]],  # one missing keypoint
    ], np.float32)
    hm = jnp.max(kpo.gaussian_heatmaps(inst, (32, 40), sigma=1.0, stride=1), axis=0)
    fields = paf.part_affinity_fields(inst, STAR, (32, 40), stride=1, sigma=1.0)
    coords, scores, valid = kpo.heatmap_peaks(hm, max_peaks=4, threshold=0.5)
    grouped, _ = paf.group_keypoints(coords, scores, valid, fields, STAR)
    assert grouped.shape[0] == 2
    got = np.asarray(sorted(grouped.tolist(), key=lambda g: g[0][0]))
    np.testing.assert_allclose(got[..., :2] * (inst[..., 2:] > 0), inst[..., :2], atol=1e-5)
    np.testing.assert_array_equal(got[..., 2], [[2, 2, 2, 2], [2, 2, 2, 0]])


def test_grouping_empty_and_bad_input():
    fields = np.zeros((8, 8, 3, 2), np.float32)
    grouped, s = paf.group_keypoints(np.zeros((4, 2, 2)), np.zeros((4, 2)),
                                     np.zeros((4, 2), bool), fields, STAR)
    assert grouped.shape == (0, 4, 3) and s.shape == (0,)
    with pytest.raises(ValueError, match="fields"):
        paf.group_keypoints(np.zeros((4, 2, 2)), np.zeros((4, 2)), np.zeros((4, 2), bool),
                            fields[..., :2, :], STAR)
