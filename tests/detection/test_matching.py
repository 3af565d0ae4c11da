"""Anchor/proposal matching and balanced sampling against NumPy references."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vai_jax.detection.matching import balanced_sample, match_boxes, sample_mask

_match = jax.jit(match_boxes, static_argnames=("high_threshold", "low_threshold", "allow_low_quality"))


def _random_boxes(rng, n, size=64.0):
    xy = rng.uniform(0, size * 0.8, (n, 2))
    wh = rng.uniform(2, size * 0.5, (n, 2))
    return np.concatenate([xy, xy + wh], 1).astype(np.float32)


def _iou_np(a, b):
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    out = np.zeros((len(a), len(b)))
    for i in range(len(a)):
        for j in range(len(b)):
            iw = max(0.0, min(a[i, 2], b[j, 2]) - max(a[i, 0], b[j, 0]))
            ih = max(0.0, min(a[i, 3], b[j, 3]) - max(a[i, 1], b[j, 1]))
            inter = iw * ih
            union = (a[i, 2] - a[i, 0]) * (a[i, 3] - a[i, 1]) + (b[j, 2] - b[j, 0]) * (b[j, 3] - b[j, 1]) - inter
            out[i, j] = inter / union
    return out


def _match_np(anchors, gt, valid, high, low):
    ok = valid & (gt[:, 2] > gt[:, 0]) & (gt[:, 3] > gt[:, 1])
    n = len(anchors)
    labels = np.zeros(n, int)
    matched = np.zeros(n, int)
    if not ok.any():
        return matched, labels
    idx = np.nonzero(ok)[0]
    iou = _iou_np(anchors, gt[idx])
    best = iou.max(1)
    matched = idx[iou.argmax(1)]
    labels = np.where(best >= high, 1, np.where(best < low, 0, -1))
    for k in range(len(idx)):  # the best anchor(s) of every box become foreground
        col = iou[:, k]
        if col.max() > 0:
            labels[np.isclose(col, col.max(), rtol=0, atol=1e-6)] = 1
    return matched, labels


def test_match_boxes_matches_numpy_reference_with_padding_and_degenerate_gt():
    rng = np.random.default_rng(0)
    anchors = _random_boxes(rng, 200)
    gt = _random_boxes(rng, 6)
    gt[4] = [10, 10, 10, 20]  # degenerate (zero width) -> never matched
    valid = np.array([True, True, True, True, True, False])
    gt[5] = anchors[0]  # padding that would match perfectly if it were used
    matched, labels, iou = jax.jit(lambda a, g, v: match_boxes(a, g, v, high_threshold=0.7, low_threshold=0.3))(
        anchors, gt, valid)
    m_ref, l_ref = _match_np(anchors, gt, valid, 0.7, 0.3)
    np.testing.assert_array_equal(np.asarray(labels), l_ref)
    fg = l_ref == 1
    np.testing.assert_array_equal(np.asarray(matched)[fg], m_ref[fg])
    assert not np.any(np.asarray(matched)[fg] == 5) and not np.any(np.asarray(matched)[fg] == 4)
    # The low-quality rule matters here: some foreground anchors are below 0.7.
    assert np.any(fg & (np.asarray(iou) < 0.7))


def test_best_anchor_per_box_kept_even_below_threshold():
    anchors = np.array([[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 60]], np.float32)
    gt = np.array([[0, 0, 20, 20]], np.float32)  # IoU 0.25 with anchor 0, < 0.3
    _, labels, _ = _match(anchors, gt, np.array([True]), high_threshold=0.7, low_threshold=0.3)
    np.testing.assert_array_equal(np.asarray(labels), [1, 0, 0])
    _, labels, _ = _match(anchors, gt, np.array([True]), high_threshold=0.7, low_threshold=0.3,
                               allow_low_quality=False)
    np.testing.assert_array_equal(np.asarray(labels), [0, 0, 0])


def test_no_ground_truth_gives_all_background():
    anchors = _random_boxes(np.random.default_rng(1), 10)
    gt = np.zeros((3, 4), np.float32)
    matched, labels, iou = _match(anchors, gt, np.zeros(3, bool), high_threshold=0.7, low_threshold=0.3)
    assert np.all(np.asarray(labels) == 0) and np.all(np.asarray(iou) == 0)
    matched, labels, _ = match_boxes(anchors, np.zeros((0, 4), np.float32), np.zeros(0, bool),
                                     high_threshold=0.7, low_threshold=0.3)
    assert labels.shape == (10,) and np.all(np.asarray(labels) == 0)


def test_match_boxes_rejects_bad_arguments():
    with pytest.raises(ValueError, match="gt_valid"):
        match_boxes(np.zeros((2, 4), np.float32), np.zeros((3, 4), np.float32), np.zeros(2, bool),
                    high_threshold=0.7, low_threshold=0.3)
    with pytest.raises(ValueError, match="low_threshold"):
        match_boxes(np.zeros((2, 4), np.float32), np.zeros((3, 4), np.float32), np.zeros(3, bool),
                    high_threshold=0.3, low_threshold=0.7)


@pytest.mark.parametrize("n_pos,n_neg,n_ign", [(100, 300, 50), (5, 300, 0), (3, 4, 10), (0, 0, 20)])
def test_balanced_sample_respects_fraction_and_count(n_pos, n_neg, n_ign):
    labels = np.array([1] * n_pos + [0] * n_neg + [-1] * n_ign, np.int32)
    labels = np.random.default_rng(2).permutation(labels)
    s, frac = 64, 0.25
    f = jax.jit(lambda k, l: balanced_sample(k, l, num_samples=s, positive_fraction=frac))
    idx, ok = (np.asarray(a) for a in f(jax.random.PRNGKey(0), labels))
    assert idx.shape == (s,) and ok.shape == (s,)
    chosen = idx[ok]
    assert len(np.unique(chosen)) == len(chosen)  # without replacement
    lab = labels[chosen]
    assert np.all(lab >= 0)  # ignored entries never sampled
    want_pos = min(n_pos, int(s * frac))
    assert np.sum(lab == 1) == want_pos
    assert np.sum(lab == 0) == min(n_neg, s - want_pos)
    # Layout: foreground first, then background, then padding.
    k = ok.sum()
    assert np.all(ok[:k]) and not np.any(ok[k:])
    assert np.all(np.diff(lab) <= 0)
    mask = np.asarray(sample_mask(jnp.asarray(idx), jnp.asarray(ok), len(labels)))
    assert mask.sum() == k and np.all(mask[chosen])


def test_balanced_sample_is_random_and_uniform_enough():
    labels = np.array([1] * 10 + [0] * 10, np.int32)
    counts = np.zeros(20)
    f = jax.jit(jax.vmap(lambda k: balanced_sample(k, labels, num_samples=4, positive_fraction=0.5)))
    idx, ok = f(jax.random.split(jax.random.PRNGKey(3), 400))
    np.add.at(counts, np.asarray(idx)[np.asarray(ok)], 1)
    # each entry is picked with probability 2/10 -> 80 of 400 draws
    assert np.all(np.abs(counts - 80) < 30)


def test_proposal_recall_matches_numpy_with_padding():
    from vai_jax.detection.proposals import proposal_recall

    rng = np.random.default_rng(3)
    props = np.stack([_random_boxes(rng, 12) for _ in range(3)])
    pvalid = rng.uniform(size=(3, 12)) < 0.7
    gt = np.stack([_random_boxes(rng, 4) for _ in range(3)])
    gvalid = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], bool)
    gt[1, 3] = props[1, np.argmax(pvalid[1])]  # one box found exactly by a valid proposal
    out = proposal_recall(props, pvalid, gt, gvalid, thresholds=(0.3, 0.5, 0.99))
    best = []
    for b in range(3):
        for m in np.nonzero(gvalid[b])[0]:
            ious = [_iou_np(props[b, p:p + 1], gt[b, m:m + 1])[0, 0] for p in np.nonzero(pvalid[b])[0]]
            best.append(max(ious, default=0.0))
    best = np.array(best)
    for t in (0.3, 0.5, 0.99):
        np.testing.assert_allclose(out[f"recall@{t:g}"], np.mean(best >= t), atol=1e-6)
    np.testing.assert_allclose(out["mean_best_iou"], best.mean(), atol=1e-5)
    assert out["recall@0.99"] >= 1 / len(best)
    none = proposal_recall(props, pvalid, gt, np.zeros_like(gvalid))
    assert none["recall@0.5"] == 0.0
    with pytest.raises(ValueError, match="gt_boxes"):
        proposal_recall(props, pvalid, gt[0], gvalid[0])
