"""Top-k metrics: values against NumPy, eager label errors, NaN sums for bad labels under jit."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vai_jax.classification.losses import softmax_cross_entropy
from vai_jax.classification.metrics import topk_accuracy, topk_correct, topk_counts

_LOGITS = np.array([[0.1, 2.0, -1.0, 0.5],
                    [3.0, 1.0, 1.0, 0.0],
                    [0.0, 0.0, 0.2, 0.1]], np.float32)


def test_topk_correct_and_counts_match_numpy():
    labels = np.array([3, 0, 1])
    order = np.argsort(-_LOGITS, axis=1)
    for k in (1, 2, 3):
        want = (order[:, :k] == labels[:, None]).any(1)
        np.testing.assert_array_equal(topk_correct(_LOGITS, labels, k), want)
    sums = topk_counts(_LOGITS, labels, (1, 2), mask=np.array([1, 1, 0], np.float32))
    assert float(sums["count"]) == 2 and float(sums["top1_correct"]) == 1
    assert float(sums["top2_correct"]) == 2
    acc = topk_accuracy(_LOGITS, labels, (1, 9))  # k > C is clipped to C
    assert float(acc["top1"]) == pytest.approx(1 / 3) and float(acc["top9"]) == 1.0


def test_eager_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match=r"labels must hold class ids in \[0, 4\); found 1 "
                                         r"outside, the first at index 2, values \[4\]"):
        topk_correct(_LOGITS, np.array([0, 1, 4]))
    with pytest.raises(ValueError, match=r"labels .*found 1 outside.*values \[-1\]"):
        topk_counts(_LOGITS, np.array([-1, 1, 2]))
    # A masked-out example's label is not checked.
    sums = topk_counts(_LOGITS, np.array([0, 1, 7]), mask=np.array([1, 1, 0]))
    assert float(sums["count"]) == 2
    with pytest.raises(TypeError, match="k must be an int; got float"):
        topk_correct(_LOGITS, np.array([0, 1, 2]), 1.0)
    with pytest.raises(ValueError, match=r"k must be in \[1, C=4\]; got 5"):
        topk_correct(_LOGITS, np.array([0, 1, 2]), 5)
    with pytest.raises(TypeError, match="ks must be a sequence of ints; got 1"):
        topk_counts(_LOGITS, np.array([0, 1, 2]), ks=1)
    with pytest.raises(ValueError, match=r"ks must be an int >= 1; got 0"):
        topk_accuracy(_LOGITS, np.array([0, 1, 2]), ks=(0,))
    with pytest.raises(ValueError, match=r"mask must have shape \[B\]=\(3,\); got \(2,\)"):
        topk_counts(_LOGITS, np.array([0, 1, 2]), mask=np.ones(2))
    with pytest.raises(TypeError, match="labels must have an integer dtype"):
        topk_correct(_LOGITS, np.array([0.0, 1.0, 2.0]))


def test_bad_labels_under_jit_are_never_correct_and_make_the_sums_nan():
    @jax.jit
    def run(logits, labels, mask):
        return (topk_correct(logits, labels, 4), topk_counts(logits, labels, (1,), mask),
                topk_accuracy(logits, labels, (1,)))

    labels = jnp.array([1, 4, 2])
    hit, sums, acc = run(_LOGITS, labels, jnp.ones(3))
    np.testing.assert_array_equal(hit, [True, False, True])  # top-4 of 4: only the bad id misses
    assert np.isnan(float(sums["count"])) and np.isnan(float(sums["top1_correct"]))
    assert np.isnan(float(acc["top1"]))
    _, sums, _ = run(_LOGITS, labels, jnp.array([1.0, 0.0, 1.0]))  # the bad one is padding
    assert float(sums["count"]) == 2 and float(sums["top1_correct"]) == 2


def test_softmax_cross_entropy_takes_backbone_tuples():
    batch = {"label": np.array([3, 0, 1])}
    loss = softmax_cross_entropy((_LOGITS, {}), batch)
    x = _LOGITS.astype(np.float64)
    ref = np.log(np.exp(x).sum(1)) - x[np.arange(3), batch["label"]]
    np.testing.assert_allclose(loss, ref, rtol=1e-5)
    with pytest.raises(ValueError, match=r"labels must hold class ids in \[0, 4\)"):
        softmax_cross_entropy(_LOGITS, {"label": np.array([0, 4, 1])})
