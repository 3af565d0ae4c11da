"""Pasting box-frame masks into the image, against a per-pixel NumPy reference; detect() on a
hand-checked case and its trace-time errors."""
import jax
import numpy as np
import pytest

from vai_jax.detection.postprocess import detect, paste_masks


def _paste_np(mask, box, h, w):
    s_h, s_w = mask.shape
    x1, y1, x2, y2 = (float(v) for v in box)
    out = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            cx, cy = j + 0.5, i + 0.5
            if not (x1 <= cx < x2 and y1 <= cy < y2):
                continue
            u = np.clip((cx - x1) / (x2 - x1) * s_w - 0.5, 0, s_w - 1)
            v = np.clip((cy - y1) / (y2 - y1) * s_h - 0.5, 0, s_h - 1)
            u0, v0 = int(np.floor(u)), int(np.floor(v))
            u1, v1 = min(u0 + 1, s_w - 1), min(v0 + 1, s_h - 1)
            fu, fv = u - u0, v - v0
            out[i, j] = ((1 - fv) * ((1 - fu) * mask[v0, u0] + fu * mask[v0, u1])
                         + fv * ((1 - fu) * mask[v1, u0] + fu * mask[v1, u1]))
    return out


def test_full_mask_pastes_to_the_box_region():
    boxes = np.array([[3.0, 5.0, 17.0, 12.0], [0.0, 0.0, 24.0, 20.0], [10.2, 2.7, 13.9, 9.1]], np.float32)
    out = np.asarray(paste_masks(np.ones((3, 28, 28), np.float32), boxes, (20, 24)))
    assert out.shape == (3, 20, 24)
    jj, ii = np.meshgrid(np.arange(24) + 0.5, np.arange(20) + 0.5)
    for n, (x1, y1, x2, y2) in enumerate(boxes):
        region = (jj >= x1) & (jj < x2) & (ii >= y1) & (ii < y2)
        np.testing.assert_allclose(out[n], region.astype(np.float32), atol=1e-6)


@pytest.mark.parametrize("size", [28, 5])
def test_random_mask_matches_numpy_reference(size):
    rng = np.random.default_rng(size)
    masks = rng.uniform(size=(2, size, size)).astype(np.float32)
    boxes = np.array([[2.3, 1.1, 14.6, 11.0], [-3.0, 4.0, 9.0, 30.0]], np.float32)
    out = np.asarray(paste_masks(masks, boxes, (16, 18)))
    for n in range(2):
        np.testing.assert_allclose(out[n], _paste_np(masks[n], boxes[n], 16, 18), atol=1e-5)


def test_paste_masks_rejects_bad_shapes():
    with pytest.raises(ValueError, match="boxes"):
        paste_masks(np.ones((2, 4, 4), np.float32), np.zeros((3, 4), np.float32), (8, 8))
    with pytest.raises((ValueError, TypeError), match="masks"):
        paste_masks(np.ones((4, 4), np.float32), np.zeros((1, 4), np.float32), (8, 8))


def _detect_inputs():
    scores = np.array([[[0.1, 0.8, 0.1], [0.7, 0.2, 0.1]]], np.float32)  # [B=1, R=2, C+1=3]
    deltas = np.zeros((1, 2, 3, 4), np.float32)
    rois = np.array([[[2, 2, 10, 12], [0, 0, 4, 4]]], np.float32)
    return scores, deltas, rois, np.array([[True, True]])


def test_detect_keeps_scores_above_threshold_with_their_class_and_roi():
    dets = jax.jit(lambda s, d, r, v: detect(s, d, r, v, image_size=(16, 16), probabilities=True,
                                             score_threshold=0.15, max_detections=3))(
        *_detect_inputs())
    np.testing.assert_array_equal(dets["valid"][0], [True, True, False])
    np.testing.assert_allclose(dets["scores"][0, :2], [0.8, 0.2])
    np.testing.assert_array_equal(dets["classes"][0, :2], [0, 0])  # foreground class 1 -> 0
    np.testing.assert_array_equal(dets["roi_index"][0, :2], [0, 1])
    np.testing.assert_allclose(dets["boxes"][0, :2], [[2, 2, 10, 12], [0, 0, 4, 4]])


@pytest.mark.parametrize("change, error, match", [
    ({"image_size": (0, 32)}, ValueError, r"image_size must be a pair \(H, W\) of ints >= 1; "
                                          r"got \(0, 32\)"),
    ({"rois": np.zeros((1, 3, 4), np.float32)}, ValueError, r"cls_scores \[B, R, C\+1\], "
                                                            r"box_deltas .* must agree"),
    ({"box_deltas": np.zeros((1, 2, 2, 4), np.float32)}, ValueError, "must agree"),
    ({"cls_scores": np.zeros((1, 2, 1), np.float32),
      "box_deltas": np.zeros((1, 2, 1, 4), np.float32)}, ValueError, r"C \+ 1 >= 2"),
    ({"roi_valid": np.ones((1, 2), np.float32)}, TypeError, "roi_valid must have bool; got dtype float32"),
    ({"nms_threshold": None}, TypeError, "nms_threshold must be a real number; got NoneType"),
    ({"score_threshold": 1.5}, ValueError, "score_threshold must be a finite number >= 0.0 and "
                                           "<= 1.0; got 1.5"),
    ({"max_detections": 0}, ValueError, "max_detections must be an int >= 1; got 0"),
    ({"box_weights": (1.0, 1.0, 0.0, 1.0)}, ValueError, "box_weights must be a finite number > 0"),
])
def test_detect_rejects_bad_inputs_at_trace_time(change, error, match):
    scores, deltas, rois, valid = _detect_inputs()
    arrays = {"cls_scores": scores, "box_deltas": deltas, "rois": rois, "roi_valid": valid}
    options = {"image_size": (16, 16)}
    for k, v in change.items():
        (arrays if k in arrays else options)[k] = v
    with pytest.raises(error, match=match):
        jax.jit(lambda a: detect(**a, **options))(arrays)
