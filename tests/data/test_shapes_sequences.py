"""vai_jax.data.shapes_sequences: determinism, record layout, the declared label dynamics and
the frame degradations."""
import numpy as np
import pytest

from vai_jax.data import shapes_sequences as seqs
from vai_jax.data.shapes_render import CLASS_PALETTE
from vai_jax.data.shapes_sequences import (INITIAL, NUM_CLASSES, NUM_GESTURES, TRANSITIONS,
                                           ShapesSequences, gesture_log_likelihoods)


def _ds(**kw):
    args = dict(split="train", num_examples=64, num_frames=6, image_size=16, seed=3)
    args.update(kw)
    return ShapesSequences(**args)


def test_chains_are_stochastic_and_positive():
    assert TRANSITIONS.shape == (NUM_GESTURES, NUM_CLASSES, NUM_CLASSES)
    assert INITIAL.shape == (NUM_GESTURES, NUM_CLASSES)
    np.testing.assert_allclose(TRANSITIONS.sum(-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(INITIAL.sum(-1), 1.0, atol=1e-12)
    assert (TRANSITIONS > 0).all() and (INITIAL > 0).all()
    for g, parts in enumerate(seqs.GESTURE_PARTS):
        for i, p in enumerate(parts):
            nxt = parts[(i + 1) % len(parts)]
            assert TRANSITIONS[g, p, p] == pytest.approx(seqs.P_STAY + seqs.P_JUMP / NUM_CLASSES)
            assert TRANSITIONS[g, p, nxt] == pytest.approx(seqs.P_ADVANCE
                                                           + seqs.P_JUMP / NUM_CLASSES)
    # Mirror gestures share their parts but not their order.
    assert set(seqs.GESTURE_PARTS[0]) == set(seqs.GESTURE_PARTS[1])
    assert not np.allclose(TRANSITIONS[0], TRANSITIONS[1])
    with pytest.raises(ValueError):
        TRANSITIONS[0, 0, 0] = 1.0


def test_record_shapes_and_dtypes():
    ds = _ds()
    r = ds[5]
    assert set(r) == {"frames", "labels", "label", "occluded", "noisy", "rotation", "scale",
                      "centre"}
    assert r["centre"].shape == (6, 2) and r["centre"].dtype == np.float32
    assert r["frames"].shape == (6, 16, 16, 3) and r["frames"].dtype == np.uint8
    assert r["labels"].shape == (6,) and r["labels"].dtype == np.int32
    assert r["label"].shape == () and r["label"].dtype == np.int32
    for key in ("occluded", "noisy"):
        assert r[key].shape == (6,) and r[key].dtype == bool
    for key in ("rotation", "scale"):
        assert r[key].shape == (6,) and r[key].dtype == np.float32
    b = ds.get_batch([0, 1, 2])
    assert b["frames"].shape == (3, 6, 16, 16, 3) and b["label"].shape == (3,)
    assert ((b["labels"] >= 0) & (b["labels"] < NUM_CLASSES)).all()
    assert ((b["label"] >= 0) & (b["label"] < NUM_GESTURES)).all()
    assert (b["scale"] >= 0.15 * 16 - 1e-4).all() and (b["scale"] <= 0.32 * 16 + 1e-4).all()
    assert len(ds) == 64 and len(ds.__getitems__([1, 2])) == 2


def test_deterministic_and_independent_of_batching():
    a, b = _ds(), _ds()
    batch = a.get_batch([7, 2, 7, 40])
    for k, i in enumerate([7, 2, 7, 40]):
        single = b[i]
        for key, value in single.items():
            np.testing.assert_array_equal(batch[key][k], value, err_msg=key)
    assert not np.array_equal(a[0]["frames"], _ds(seed=4)[0]["frames"])
    assert not np.array_equal(a[0]["frames"], _ds(split="test")[0]["frames"])
    assert not np.array_equal(a[0]["frames"], a[1]["frames"])
    np.testing.assert_array_equal(a[-1]["frames"], a[63]["frames"])
    src = a.materialise(("frames", "label"), chunk=5)
    np.testing.assert_array_equal(src.arrays["frames"], a.get_batch(range(64))["frames"])
    np.testing.assert_array_equal(src.arrays["label"], a.get_batch(range(64))["label"])


def test_labels_follow_the_declared_chains():
    """Empirical transition frequencies over 12,000 transitions against TRANSITIONS: every
    entry of every row with >= 200 visits within 4.5 standard errors (plus 0.01)."""
    ds = ShapesSequences(num_examples=400, num_frames=31, image_size=16, occlusion_prob=0.0,
                         noise_prob=0.0, seed=11)
    b = ds.get_batch(range(400))
    counts = np.zeros((NUM_GESTURES, NUM_CLASSES, NUM_CLASSES))
    np.add.at(counts, (b["label"][:, None], b["labels"][:, :-1], b["labels"][:, 1:]), 1)
    checked = 0
    for g in range(NUM_GESTURES):
        for i in range(NUM_CLASSES):
            n = counts[g, i].sum()
            if n < 200:
                continue
            p = TRANSITIONS[g, i]
            tol = 4.5 * np.sqrt(p * (1 - p) / n) + 0.01
            np.testing.assert_array_less(np.abs(counts[g, i] / n - p), tol)
            checked += 1
    assert checked >= 3 * NUM_GESTURES  # every gesture's parts
    # Gestures are drawn uniformly; the first frame follows INITIAL (a weaker check).
    assert np.bincount(b["label"], minlength=NUM_GESTURES).min() >= 70
    for g in range(NUM_GESTURES):
        first = np.bincount(b["labels"][b["label"] == g, 0], minlength=NUM_CLASSES)
        assert np.abs(first / first.sum() - INITIAL[g]).max() < 0.15


def test_degradations_change_exactly_the_flagged_frames():
    """The flags come from the same draws whatever the probabilities: a clip rendered without
    degradations equals the degraded one on unflagged frames and differs on flagged ones."""
    clean = _ds(occlusion_prob=0.0, noise_prob=0.0).get_batch(range(64))
    occ = _ds(occlusion_prob=0.4, noise_prob=0.0).get_batch(range(64))
    noisy = _ds(occlusion_prob=0.0, noise_prob=0.4).get_batch(range(64))
    assert not clean["occluded"].any() and not clean["noisy"].any()
    assert 0.3 < occ["occluded"].mean() < 0.5 and 0.3 < noisy["noisy"].mean() < 0.5
    for key in ("labels", "label", "rotation", "scale", "centre"):
        np.testing.assert_array_equal(occ[key], clean[key])
        np.testing.assert_array_equal(noisy[key], clean[key])
    diff = lambda x: np.abs(x["frames"].astype(int) - clean["frames"].astype(int))
    d_occ, d_noise = diff(occ), diff(noisy)
    assert (d_occ[~occ["occluded"]] == 0).all() and (d_noise[~noisy["noisy"]] == 0).all()
    # An occluder covers a sizeable patch; strong noise changes pixels by tens of levels.
    changed = (d_occ[occ["occluded"]].max(-1) > 0).mean(axis=(1, 2))
    assert np.median(changed) > 0.1
    assert d_noise[noisy["noisy"]].mean() > 20


def test_objects_take_their_part_colour():
    """With colour_by_class the object's centre shows its part's palette colour (nearest
    palette entry); without, the clip keeps one colour whatever the part."""
    kw = dict(num_examples=24, image_size=32, occlusion_prob=0.0, noise_prob=0.0)
    for flag in (True, False):
        b = _ds(colour_by_class=flag, palette_noise=0.05, **kw).get_batch(range(24))
        col = np.round(b["centre"]).astype(int)
        n, t = np.indices(b["labels"].shape)
        patch = np.stack([b["frames"][n, t, col[..., 1] + dy, col[..., 0] + dx]
                          for dy in (-1, 0) for dx in (-1, 0)]).mean(0) / 255.0  # [N, T, 3]
        nearest = ((patch[:, :, None] - CLASS_PALETTE) ** 2).sum(-1).argmin(-1)
        if flag:
            assert (nearest == b["labels"]).mean() > 0.95
        else:
            assert (np.ptp(patch, axis=1).max(-1) < 0.2).mean() > 0.9  # one colour per clip
    with pytest.raises(TypeError, match="colour_by_class"):
        _ds(colour_by_class="yes")


def test_gesture_log_likelihoods_against_a_loop():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, NUM_CLASSES, (3, 2, 5))
    got = gesture_log_likelihoods(labels)
    assert got.shape == (3, 2, NUM_GESTURES)
    for idx in np.ndindex(3, 2):
        seq = labels[idx]
        for g in range(NUM_GESTURES):
            want = np.log(INITIAL[g, seq[0]]) + sum(
                np.log(TRANSITIONS[g, a, b]) for a, b in zip(seq[:-1], seq[1:]))
            assert got[idx + (g,)] == pytest.approx(want, rel=1e-12)
    np.testing.assert_allclose(gesture_log_likelihoods(np.array([2])), np.log(INITIAL[:, 2]))
    with pytest.raises(ValueError, match="labels must lie"):
        gesture_log_likelihoods(np.array([0, NUM_CLASSES]))
    with pytest.raises(ValueError, match="integers"):
        gesture_log_likelihoods(np.zeros(3))


def test_true_labels_identify_the_gesture():
    """The mirror gestures are told apart by order alone: the known-dynamics decoder on the
    true part labels is right far above the 50% a part-set reader reaches."""
    b = _ds(num_examples=300, num_frames=12).get_batch(range(300))
    pred = gesture_log_likelihoods(b["labels"]).argmax(-1)
    assert (pred == b["label"]).mean() > 0.85


@pytest.mark.parametrize("kw, match", [
    (dict(split="val"), "split"), (dict(num_frames=1), "num_frames"),
    (dict(image_size=8), "image_size"), (dict(occlusion_prob=1.5), "occlusion_prob"),
    (dict(noise_prob=-0.1), "noise_prob"), (dict(palette_noise=2.0), "palette_noise"),
    (dict(seed=-1), "seed")])
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        _ds(**kw)


def test_bad_indices():
    ds = _ds()
    with pytest.raises(IndexError):
        ds[64]
    with pytest.raises(TypeError):
        ds[1.0]
    with pytest.raises(ValueError, match="empty"):
        ds.get_batch([])
    with pytest.raises(ValueError, match="unknown"):
        ds.materialise(("frames", "image"))
