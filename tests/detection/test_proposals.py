"""RPN proposal decoding and sliding windows: a hand-checked decode, and trace-time errors for
shapes and sizes that do not fit together."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vai_jax.detection.proposals import decode_proposals, sliding_window_proposals

ANCHORS = np.array([[0, 0, 8, 8], [4, 4, 20, 12], [10, 2, 14, 30]], np.float32)


def _decode(anchors=ANCHORS, logits=None, deltas=None, **kw):
    logits = np.array([[0.0, 3.0, -1.0]], np.float32) if logits is None else logits
    deltas = np.zeros(logits.shape + (4,), np.float32) if deltas is None else deltas
    args = dict(image_size=(16, 16), pre_nms_top_n=3, post_nms_top_n=2, nms_threshold=0.7)
    return decode_proposals(anchors, logits, deltas, **{**args, **kw})


def test_zero_deltas_give_the_clipped_anchors_by_score():
    boxes, scores, valid = jax.jit(lambda l, d: _decode(logits=l, deltas=d))(
        np.array([[0.0, 3.0, -1.0]], np.float32), np.zeros((1, 3, 4), np.float32))
    np.testing.assert_allclose(boxes[0], [[4, 4, 16, 12], [0, 0, 8, 8]])  # clipped to 16 x 16
    np.testing.assert_allclose(scores[0], 1 / (1 + np.exp([-3.0, 0.0])), rtol=1e-6)
    np.testing.assert_array_equal(valid[0], [True, True])


@pytest.mark.parametrize("kwargs, error, match", [
    ({"anchors": ANCHORS[:2]}, ValueError, r"anchors \[A, 4\], logits \[B, A\] and deltas "
                                           r"\[B, A, 4\] must agree on A and B; got anchors "
                                           r"\(2, 4\), logits \(1, 3\)"),
    ({"deltas": np.zeros((1, 4, 4), np.float32)}, ValueError, "must agree on A and B"),
    ({"image_size": (0, 32)}, ValueError, r"image_size must be a pair \(H, W\) of ints >= 1; "
                                          r"got \(0, 32\)"),
    ({"image_size": 16}, TypeError, r"image_size must be a pair \(H, W\) of ints"),
    ({"level_counts": (1, 1)}, ValueError, r"level_counts must sum to the number of anchors "
                                           r"A=3; got \[1, 1\]"),
    ({"pre_nms_top_n": 0}, ValueError, "pre_nms_top_n must be an int >= 1; got 0"),
    ({"post_nms_top_n": 2.0}, TypeError, "post_nms_top_n must be an int; got float"),
    ({"nms_threshold": "0.7"}, TypeError, "nms_threshold must be a real number; got str"),
    ({"nms_threshold": float("nan")}, ValueError, r"nms_threshold must be a finite number >= 0.0 "
                                                  r"and <= 1.0; got nan"),
    ({"min_size": -1.0}, ValueError, "min_size must be a finite number >= 0.0"),
    ({"anchors": np.array([[0, 0, 8, 8], [4, 4, 2, 12], [0, 0, 1, 1]], np.float32)}, ValueError,
     r"anchors must be \[x1, y1, x2, y2\] boxes with x2 >= x1"),
])
def test_decode_proposals_rejects_mismatched_inputs_at_trace_time(kwargs, error, match):
    anchors = kwargs.pop("anchors", ANCHORS)
    with pytest.raises(error, match=match):
        jax.jit(lambda a: _decode(anchors=anchors, logits=a, **kwargs))(
            jnp.zeros((1, 3), jnp.float32))


@pytest.mark.parametrize("kwargs, error, match", [
    ({"stride": 0}, ValueError, "stride must be an int >= 1; got 0"),
    ({"stride": 8.0}, TypeError, "stride must be an int; got float"),
    ({"sizes": ()}, ValueError, r"sizes must be a non-empty sequence of numbers > 0; got \(\)"),
    ({"aspect_ratios": (1.0, -2.0)}, ValueError, "aspect_ratios must be a finite number > 0; "
                                                 "got -2.0"),
    ({"image_size": (0, 32)}, ValueError, r"image_size must be a pair \(H, W\) of ints >= 1"),
])
def test_sliding_window_proposals_rejects_bad_arguments(kwargs, error, match):
    args = dict(image_size=(32, 32), stride=8, sizes=(8.0,), aspect_ratios=(1.0,))
    with pytest.raises(error, match=match):
        sliding_window_proposals(**{**args, **kwargs})
