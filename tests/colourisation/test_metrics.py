"""Colourisation metrics on hand-made images, padding masks, and the inputs' Lab split."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vai_jax.colourisation import (colourisation_sums, grey_input, join_lab, psnr, split_lab,
                                   summarise)
from vai_jax.train.loop import evaluate


def test_psnr_values():
    t = np.zeros((2, 4, 4, 3), np.float32)
    p = t + np.float32([[[[0.1]]], [[[0.01]]]])
    np.testing.assert_allclose(psnr(p, t), [20.0, 40.0], rtol=1e-5)
    np.testing.assert_allclose(psnr(p * 255, t, max_value=255.0), [20.0, 40.0], rtol=1e-5)
    assert float(psnr(t, t)[0]) == pytest.approx(120.0)
    with pytest.raises(ValueError, match="targets must have the shape"):
        psnr(p, t[:1])


def test_split_and_join_lab():
    image = np.random.default_rng(0).integers(0, 256, (2, 6, 6, 3), dtype=np.uint8)
    lum, ab = split_lab(image)
    assert lum.shape == (2, 6, 6, 1) and ab.shape == (2, 6, 6, 2)
    lum_f, ab_f = split_lab(image.astype(np.float32) / 255.0)
    np.testing.assert_allclose(lum_f, lum, atol=1e-5)
    np.testing.assert_allclose(ab_f, ab, atol=1e-4)
    np.testing.assert_allclose(join_lab(lum, ab) * 255.0, image, atol=1e-3)
    x = grey_input({"image": image}, None, train=True)
    np.testing.assert_allclose(x, lum / 50.0 - 1.0, atol=1e-6)
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    np.testing.assert_allclose(grey_input({"image": np.full((1, 2, 2, 3), 255, np.uint8)}, None,
                                          train=False), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="image must have last dimension 3"):
        split_lab(image[..., :2])


def _grey_batch():
    """Two 4x4 mid-grey images (ab = 0 exactly) with a 2x4 object region and labels."""
    image = np.full((2, 4, 4, 3), 119, np.uint8)
    semantic = np.zeros((2, 4, 4), np.int32)
    semantic[:, :2] = 3
    return {"image": image, "semantic": semantic, "label": np.array([0, 1])}


def test_sums_and_summary_by_hand():
    batch = _grey_batch()
    ab = np.zeros((2, 4, 4, 2), np.float32)
    ab[..., 0], ab[..., 1] = 3.0, -4.0
    ab[:, :2] = 0.0  # exact on the object pixels
    logits = np.array([[2.0, 0.0], [3.0, 0.0]], np.float32)  # right, wrong
    sums = colourisation_sums({"ab": jnp.asarray(ab), "logits": jnp.asarray(logits)}, batch,
                              jnp.ones(2))
    means = {k.removesuffix("_sum").removesuffix("_correct"): float(v) / 2.0
             for k, v in sums.items() if k != "count"}
    got = summarise(means)
    assert got["ab_mae"] == pytest.approx(0.5 * 3.5, abs=1e-4)
    assert got["ab_rmse"] == pytest.approx(np.sqrt(0.5 * 12.5), abs=1e-4)
    assert got["object_ab_mae"] == pytest.approx(0.0, abs=1e-4)
    assert got["object_ab_rmse"] == pytest.approx(0.0, abs=1e-3)
    assert got["top1"] == pytest.approx(0.5)
    exact = colourisation_sums({"ab": jnp.zeros((2, 4, 4, 2))}, batch, jnp.ones(2))
    assert float(exact["psnr_sum"]) / 2 > 50.0 and "top1_correct" not in exact


def test_padding_is_ignored_through_evaluate():
    batch = _grey_batch()
    ab = np.zeros((2, 4, 4, 2), np.float32)
    ab[1] = 10.0  # only the second image is wrong
    step = lambda _, b: colourisation_sums({"ab": jnp.asarray(b.pop("ab"))}, b, b.pop("mask"))
    first = summarise(evaluate(step, None, [{**{k: v[:1] for k, v in batch.items()},
                                             "ab": ab[:1]}], batch_size=2))
    assert first["ab_mae"] == pytest.approx(0.0, abs=1e-4)
    both = summarise(evaluate(step, None, [{**batch, "ab": ab}], batch_size=2))
    assert both["ab_mae"] == pytest.approx(5.0, abs=1e-3)
    assert both["object_ab_mae"] == pytest.approx(5.0, abs=1e-3)


def test_class_ids_outside_the_logits_raise_or_give_nan_under_jit():
    batch = _grey_batch()
    batch["label"] = np.array([0, 2])  # 2 classes: id 2 is out of range
    outputs = {"ab": jnp.zeros((2, 4, 4, 2)), "logits": jnp.zeros((2, 2))}
    with pytest.raises(ValueError, match=r"labels must hold class ids in \[0, 2\); found 1"):
        colourisation_sums(outputs, batch, jnp.ones(2))
    sums_fn = jax.jit(colourisation_sums)
    assert np.isnan(float(sums_fn(outputs, batch, jnp.ones(2))["top1_correct"]))
    padded = sums_fn(outputs, batch, jnp.array([1.0, 0.0]))  # the bad one is padding
    assert float(padded["top1_correct"]) == 1.0
