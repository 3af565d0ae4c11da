"""Affine maps of one record: image, boxes, keypoints and masks move together under one matrix.

Runs per record inside grain workers (NumPy only, no JAX). Every geometric transform is a
3×3 homogeneous affine matrix ``A`` acting on ``(x, y, 1)`` in the continuous pixel frame of
:mod:`vai_jax.ops.coords` (pixel (row i, col j) covers ``[j, j+1) × [i, i+1)``, centre
``(j + 0.5, i + 0.5)``), mapping INPUT coordinates to OUTPUT coordinates. One mapping serves
everything:

- image: output pixel centre ``p`` takes the bilinear sample of the input at ``A⁻¹ p``
  (sample points outside the input blend with ``fill``);
- masks ``[M, H, W]``: nearest — the input pixel containing ``A⁻¹ p`` (outside -> 0);
- keypoints ``[M, K, 3]``: ``(x, y) -> A (x, y)``; visibility set to 0 (and x = y = 0) when the
  point leaves ``[0, W_out) × [0, H_out)``; when ``A`` mirrors (``det < 0``) the ``flip_pairs`` swap, so a
  left wrist stays labelled left;
- boxes ``[M, 4]``: the four corners are mapped and the enclosing box clipped to the output;
  when ``A`` is not axis-aligned (a rotation that is not a multiple of 90°, or a shear) and
  ``masks`` are present, the box is the enclosing box of the transformed mask instead (tight).
  Boxes that become empty (or whose mask becomes empty) get ``valid = False`` and are zeroed;
- ``semantic`` class maps ``[H, W]``: nearest, like masks.

Record keys are those of :mod:`vai_jax.data.pipeline` (``image`` uint8 ``[H, W, 3]``,
``boxes``, ``classes``, ``valid``, ``masks``, ``keypoints``, ``areas``); other keys pass through.
Sizes are ``(height, width)``. The random transforms built on these maps are in
:mod:`vai_jax.data.transforms`.
Resizing is plain bilinear sampling (no anti-aliasing): shrinking by more than ~2× aliases.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from vai_jax._validation import check_number

Record = dict
_GEOMETRIC_KEYS = frozenset({"image", "masks", "semantic", "boxes", "keypoints", "valid", "areas"})


# ----------------------------------------------------------------------------------------------
# Affine matrices: 3x3 float64, input (x, y, 1) -> output (x, y, 1).


def translation_matrix(tx: float, ty: float) -> np.ndarray:
    """``(x, y) -> (x + tx, y + ty)``; ``tx``, ``ty`` finite numbers."""
    check_number(tx, "tx")
    check_number(ty, "ty")
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def scale_matrix(sx: float, sy: float, center: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Scale by ``(sx, sy)`` (finite, non-zero) about ``center = (cx, cy)``."""
    for name, v in (("sx", sx), ("sy", sy)):
        check_number(v, name)
        if v == 0:
            raise ValueError(f"{name} must be a non-zero number (the map must be invertible); "
                             f"got {v!r}")
    cx, cy = _check_center(center)
    s = np.array([[sx, 0.0, 0.0], [0.0, sy, 0.0], [0.0, 0.0, 1.0]])
    return translation_matrix(cx, cy) @ s @ translation_matrix(-cx, -cy)


def rotation_matrix(angle_deg: float, center: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Rotate by ``angle_deg`` about ``center``; positive = counter-clockwise on screen (y down)."""
    check_number(angle_deg, "angle_deg")
    t = np.deg2rad(angle_deg)
    c, s = np.cos(t), np.sin(t)
    r = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    cx, cy = _check_center(center)
    return translation_matrix(cx, cy) @ r @ translation_matrix(-cx, -cy)


def hflip_matrix(width: float) -> np.ndarray:
    """Horizontal mirror of an image ``width`` pixels wide: ``x -> width - x`` (pixel ``j`` ->
    pixel ``width - 1 - j``)."""
    check_number(width, "width", gt=0)
    return np.array([[-1.0, 0.0, float(width)], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def crop_resize_matrix(x0: float, y0: float, crop_w: float, crop_h: float, out_size: tuple[int, int]) -> np.ndarray:
    """Map the input rectangle ``[x0, x0 + crop_w) × [y0, y0 + crop_h)`` onto an output of
    ``out_size = (height, width)``."""
    for name, v in (("x0", x0), ("y0", y0)):
        check_number(v, name)
    for name, v in (("crop_w", crop_w), ("crop_h", crop_h)):
        check_number(v, name, gt=0)
    ho, wo = _check_size(out_size, "out_size")
    return scale_matrix(wo / crop_w, ho / crop_h) @ translation_matrix(-x0, -y0)


def _check_center(center) -> tuple[float, float]:
    if isinstance(center, (str, bytes)) or not hasattr(center, "__len__") or len(center) != 2:
        raise ValueError(f"center must be a pair (cx, cy) of numbers; got {center!r}")
    for v in center:
        check_number(v, "center")
    return center[0], center[1]


def _check_matrix(matrix: Any) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape == (2, 3):
        m = np.vstack([m, [0.0, 0.0, 1.0]])
    if m.shape != (3, 3) or not np.allclose(m[2], [0.0, 0.0, 1.0]):
        raise ValueError(f"matrix must be an affine [2, 3] or [3, 3] (last row 0 0 1); got shape {np.shape(matrix)}")
    if not np.all(np.isfinite(m)) or abs(np.linalg.det(m[:2, :2])) < 1e-12:
        raise ValueError("matrix must be finite and invertible")
    return m


def _check_size(size: Any, name: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (height, width); got {size!r}") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"{name} must be positive (height, width); got {size!r}")
    return h, w


def _source_points(matrix: np.ndarray, out_size: tuple[int, int]):
    """Input-frame points ``A⁻¹ p`` for every output pixel centre ``p``: ``(sx, sy)`` [Ho, Wo]."""
    ho, wo = out_size
    inv = np.linalg.inv(matrix)
    xs = np.arange(wo, dtype=np.float64) + 0.5
    ys = np.arange(ho, dtype=np.float64) + 0.5
    sx = inv[0, 0] * xs[None, :] + inv[0, 1] * ys[:, None] + inv[0, 2]
    sy = inv[1, 0] * xs[None, :] + inv[1, 1] * ys[:, None] + inv[1, 2]
    return sx, sy


# ----------------------------------------------------------------------------------------------
# Warps of arrays and coordinates.


def warp_image(image: Any, matrix: Any, out_size: tuple[int, int], *, fill: float = 0) -> np.ndarray:
    """Bilinear warp of ``image`` ``[H, W, C]`` (or ``[H, W]``) by the affine ``matrix``.

    Output pixel centre ``p`` (output frame) samples the input at ``A⁻¹ p``; sample taps outside
    the input read ``fill``. Integer dtypes are rounded and clipped back to their range.

    Returns:
      array ``[Ho, Wo, C]`` (or ``[Ho, Wo]``), same dtype as ``image``; ``out_size = (Ho, Wo)``.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must have shape [H, W, C] or [H, W]; got {image.shape}")
    m = _check_matrix(matrix)
    out_size = _check_size(out_size, "out_size")
    squeeze = image.ndim == 2
    img = image[:, :, None] if squeeze else image
    inv = np.linalg.inv(m)
    if inv[0, 1] == 0 and inv[1, 0] == 0:
        out = _warp_separable(img, inv, out_size, fill)
        return out[:, :, 0] if squeeze else out
    h, w = img.shape[:2]
    padded = np.pad(img.astype(np.float32), ((1, 1), (1, 1), (0, 0)), constant_values=float(fill))
    sx, sy = _source_points(m, out_size)
    u, v = sx - 0.5, sy - 0.5  # continuous -> pixel-index coordinates (centres at integers)
    x0, y0 = np.floor(u), np.floor(v)
    fx = (u - x0).astype(np.float32)[..., None]
    fy = (v - y0).astype(np.float32)[..., None]
    # +1 for the padding; taps beyond the border clip onto the fill-valued padding.
    xa = np.clip(x0 + 1, 0, w + 1).astype(np.intp)
    xb = np.clip(x0 + 2, 0, w + 1).astype(np.intp)
    ya = np.clip(y0 + 1, 0, h + 1).astype(np.intp)
    yb = np.clip(y0 + 2, 0, h + 1).astype(np.intp)
    top = padded[ya, xa] * (1 - fx) + padded[ya, xb] * fx
    bottom = padded[yb, xa] * (1 - fx) + padded[yb, xb] * fx
    out = top * (1 - fy) + bottom * fy
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    out = out.astype(image.dtype)
    return out[:, :, 0] if squeeze else out


def _taps(scale: float, offset: float, n_out: int, n_in: int):
    """1-D bilinear taps for ``s = scale·(k + 0.5) + offset``: indices into the 1-padded axis
    and the weight of the second tap."""
    u = scale * (np.arange(n_out, dtype=np.float64) + 0.5) + offset - 0.5
    k0 = np.floor(u)
    frac = (u - k0).astype(np.float32)
    a = np.clip(k0 + 1, 0, n_in + 1).astype(np.intp)
    b = np.clip(k0 + 2, 0, n_in + 1).astype(np.intp)
    return a, b, frac


def _warp_separable(img: np.ndarray, inv: np.ndarray, out_size: tuple[int, int], fill: float) -> np.ndarray:
    """warp_image for axis-aligned maps (scale/translate/flip): rows then columns, 1-D taps.
    Integer-aligned maps (crops, flips, integer shifts) reduce to an exact gather."""
    ho, wo = out_size
    h, w = img.shape[:2]
    xa, xb, fx = _taps(inv[0, 0], inv[0, 2], wo, w)
    ya, yb, fy = _taps(inv[1, 1], inv[1, 2], ho, h)
    if not fx.any() and not fy.any():
        padded = np.pad(img, ((1, 1), (1, 1), (0, 0)), constant_values=np.asarray(fill).astype(img.dtype))
        if np.issubdtype(img.dtype, np.integer):
            info = np.iinfo(img.dtype)
            if not info.min <= fill <= info.max or fill != int(fill):
                padded = None  # fill not representable: take the float path
        if padded is not None:
            return padded[ya][:, xa]
    padded = np.pad(img.astype(np.float32), ((1, 1), (1, 1), (0, 0)), constant_values=float(fill))
    fy3, fx3 = fy[:, None, None], fx[None, :, None]
    rows = padded[ya] * (1 - fy3) + padded[yb] * fy3  # [Ho, W + 2, C]
    out = rows[:, xa] * (1 - fx3) + rows[:, xb] * fx3
    if np.issubdtype(img.dtype, np.integer):
        info = np.iinfo(img.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(img.dtype)


def warp_masks(masks: Any, matrix: Any, out_size: tuple[int, int]) -> np.ndarray:
    """Nearest warp of ``masks`` ``[M, H, W]`` (any dtype): output pixel centre ``p`` takes the
    input pixel containing ``A⁻¹ p`` (``floor``), 0 outside. Returns ``[M, Ho, Wo]``, same dtype."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must have shape [M, H, W]; got {masks.shape}")
    m = _check_matrix(matrix)
    out_size = _check_size(out_size, "out_size")
    h, w = masks.shape[1:]
    inv = np.linalg.inv(m)
    if inv[0, 1] == 0 and inv[1, 0] == 0:  # axis-aligned: separable gather
        ho, wo = out_size
        jx = np.floor(inv[0, 0] * (np.arange(wo) + 0.5) + inv[0, 2])
        iy = np.floor(inv[1, 1] * (np.arange(ho) + 0.5) + inv[1, 2])
        out = masks[:, np.clip(iy, 0, h - 1).astype(np.intp)][:, :, np.clip(jx, 0, w - 1).astype(np.intp)]
        out[:, (iy < 0) | (iy >= h)] = 0
        out[:, :, (jx < 0) | (jx >= w)] = 0
        return out
    sx, sy = _source_points(m, out_size)
    ix, iy = np.floor(sx), np.floor(sy)
    inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    ix = np.clip(ix, 0, w - 1).astype(np.intp)
    iy = np.clip(iy, 0, h - 1).astype(np.intp)
    out = masks[:, iy, ix]
    out[:, ~inside] = 0
    return out


def transform_points(points: Any, matrix: Any) -> np.ndarray:
    """``(x, y)`` points ``[..., 2]`` (extra columns kept) -> ``A (x, y)``, float32."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim < 1 or p.shape[-1] < 2:
        raise ValueError(f"points must have shape [..., >=2] (x, y first); got {p.shape}")
    m = _check_matrix(matrix)
    xy = p[..., :2] @ m[:2, :2].T + m[:2, 2]
    return np.concatenate([xy, p[..., 2:]], axis=-1).astype(np.float32)


def flip_permutation_from_pairs(flip_pairs: Sequence[tuple[int, int]], num_keypoints: int) -> np.ndarray:
    """int ``[K]`` permutation swapping each ``(a, b)`` of ``flip_pairs``."""
    perm = np.arange(num_keypoints)
    for pair in flip_pairs:
        if len(pair) != 2 or not all(0 <= int(i) < num_keypoints for i in pair):
            raise ValueError(f"flip_pairs entry {pair!r} must be (a, b) with 0 <= a, b < K={num_keypoints}")
        a, b = (int(i) for i in pair)
        perm[a], perm[b] = b, a
    return perm


def transform_keypoints(
    keypoints: Any,
    matrix: Any,
    out_size: tuple[int, int],
    *,
    flip_pairs: Sequence[tuple[int, int]] = (),
    flip_permutation: Any = None,
    classes: Any = None,
) -> np.ndarray:
    """Map keypoints ``[..., K, 3]`` ``[x, y, v]`` by ``matrix`` into an ``out_size`` output.

    ``v`` becomes 0 for points outside ``[0, Wo) × [0, Ho)``; every point with ``v = 0`` gets
    ``x = y = 0`` (as in COCO and ShapesDataset). When the matrix mirrors
    (``det < 0``) keypoint names swap: keypoints ``a`` and ``b`` of every pair in ``flip_pairs``,
    or, with ``flip_permutation`` int ``[K]`` or per-class ``[C, K]`` (then ``classes`` int
    ``[...]`` picks each object's row), ``out[..., k, :] = in[..., perm[k], :]``.
    Returns float32 ``[..., K, 3]``.
    """
    kp = np.asarray(keypoints, dtype=np.float32)
    if kp.ndim < 2 or kp.shape[-1] != 3:
        raise ValueError(f"keypoints must have shape [..., K, 3] as [x, y, v]; got {kp.shape}")
    m = _check_matrix(matrix)
    ho, wo = _check_size(out_size, "out_size")
    out = transform_points(kp, m)
    x, y = out[..., 0], out[..., 1]
    inside = (x >= 0) & (x < wo) & (y >= 0) & (y < ho)
    out[..., 2] = np.where(inside, out[..., 2], 0.0)
    out[..., :2] = np.where(out[..., 2:] > 0, out[..., :2], 0.0)  # absent points sit at (0, 0)
    if len(flip_pairs) and flip_permutation is not None:
        raise ValueError("pass flip_pairs or flip_permutation, not both")
    if np.linalg.det(m[:2, :2]) >= 0:
        return out
    k = kp.shape[-2]
    if len(flip_pairs):
        out = out[..., flip_permutation_from_pairs(flip_pairs, k), :]
    elif flip_permutation is not None:
        perm = np.asarray(flip_permutation)
        if perm.shape[-1] != k or perm.ndim not in (1, 2):
            raise ValueError(f"flip_permutation must be int [K] or [C, K] with K={k}; got shape {perm.shape}")
        if perm.ndim == 1:
            out = out[..., perm, :]
        else:
            if classes is None:
                raise ValueError("a per-class flip_permutation [C, K] needs classes")
            rows = perm[np.asarray(classes, dtype=np.intp)]  # [..., K]
            if rows.shape != out.shape[:-1]:
                raise ValueError(f"classes shape {np.shape(classes)} does not match keypoints {kp.shape}")
            out = np.take_along_axis(out, rows[..., None], axis=-2)
    return out


def _axis_aligned(m: np.ndarray, tol: float = 1e-9) -> bool:
    a = m[:2, :2]
    return (abs(a[0, 1]) < tol and abs(a[1, 0]) < tol) or (abs(a[0, 0]) < tol and abs(a[1, 1]) < tol)


def transform_boxes(boxes: Any, matrix: Any, out_size: tuple[int, int]):
    """Enclosing boxes of the mapped corners of ``boxes`` ``[M, 4]`` ``[x1, y1, x2, y2]``,
    clipped to ``[0, Wo] × [0, Ho]``.

    Returns:
      ``(boxes float32 [M, 4], nonempty bool [M])``; empty boxes are zeroed.
    """
    b = np.asarray(boxes, dtype=np.float64)
    if b.ndim != 2 or b.shape[-1] != 4:
        raise ValueError(f"boxes must have shape [M, 4] ([x1, y1, x2, y2]); got {b.shape}")
    m = _check_matrix(matrix)
    ho, wo = _check_size(out_size, "out_size")
    corners = np.stack(
        [b[:, [0, 1]], b[:, [2, 1]], b[:, [0, 3]], b[:, [2, 3]]], axis=1
    )  # [M, 4 corners, 2]
    mapped = corners @ m[:2, :2].T + m[:2, 2]
    lo, hi = mapped.min(axis=1), mapped.max(axis=1)
    out = np.concatenate([lo, hi], axis=-1)
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, wo)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, ho)
    nonempty = (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])
    out[~nonempty] = 0
    return out.astype(np.float32), nonempty


def masks_to_boxes(masks: Any):
    """Enclosing boxes of masks ``[M, H, W]``: a mask covering pixels cols ``j0..j1``, rows
    ``i0..i1`` gives ``[j0, i0, j1 + 1, i1 + 1]``. Returns ``(float32 [M, 4], nonempty bool [M])``;
    empty masks give zeros."""
    masks = np.asarray(masks).astype(bool)
    if masks.ndim != 3:
        raise ValueError(f"masks must have shape [M, H, W]; got {masks.shape}")
    cols, rows = masks.any(axis=1), masks.any(axis=2)  # [M, W], [M, H]
    nonempty = cols.any(axis=1)
    w, h = masks.shape[2], masks.shape[1]
    x1 = np.argmax(cols, axis=1)
    x2 = w - np.argmax(cols[:, ::-1], axis=1)
    y1 = np.argmax(rows, axis=1)
    y2 = h - np.argmax(rows[:, ::-1], axis=1)
    out = np.stack([x1, y1, x2, y2], axis=-1).astype(np.float32)
    out[~nonempty] = 0
    return out, nonempty


def apply_affine(
    record: Mapping[str, Any],
    matrix: Any,
    out_size: tuple[int, int],
    *,
    flip_pairs: Sequence[tuple[int, int]] = (),
    flip_permutation: Any = None,
    fill: float = 0,
    semantic_fill: int = 0,
) -> Record:
    """Apply one affine ``matrix`` (input -> output frame) to every geometric field of ``record``.

    See the module docstring for what happens to each key. ``out_size = (Ho, Wo)``.
    ``flip_pairs`` / ``flip_permutation`` (``[K]`` or per-class ``[C, K]``, rows picked by
    ``record["classes"]``): see :func:`transform_keypoints`.
    ``semantic`` int ``[H, W]`` class maps warp nearest with ``semantic_fill`` outside the input;
    ``num_objects`` is recounted from ``valid``. Any other key shaped like ``[H, W, ...]`` raises
    ValueError rather than silently going out of register with the image.
    Returns a new record; ``valid`` bool ``[M]`` is added when ``boxes`` are present.
    """
    m = _check_matrix(matrix)
    out_size = _check_size(out_size, "out_size")
    out = dict(record)
    if "image" not in out:
        raise ValueError("record must have an 'image' [H, W, 3]")
    hw = np.shape(out["image"])[:2]
    for k, v in out.items():
        if k not in _GEOMETRIC_KEYS and np.ndim(v) >= 2 and np.shape(v)[:2] == hw:
            raise ValueError(
                f"record key {k!r} (shape {np.shape(v)}) looks like an image-aligned map that "
                f"apply_affine does not move; known keys: {sorted(_GEOMETRIC_KEYS)}"
            )
    out["image"] = warp_image(out["image"], m, out_size, fill=fill)
    if "semantic" in out:
        sem = np.asarray(out["semantic"])
        out["semantic"] = warp_masks((sem - semantic_fill)[None], m, out_size)[0] + semantic_fill
    masks_ok = None
    if "masks" in out:
        dtype = np.asarray(out["masks"]).dtype
        out["masks"] = warp_masks(out["masks"], m, out_size).astype(dtype)
        mask_boxes, masks_ok = masks_to_boxes(out["masks"])
    if "keypoints" in out:
        out["keypoints"] = transform_keypoints(
            out["keypoints"], m, out_size, flip_pairs=flip_pairs, flip_permutation=flip_permutation,
            classes=out.get("classes"),
        )
    if "boxes" in out:
        boxes, ok = transform_boxes(out["boxes"], m, out_size)
        if masks_ok is not None:
            if not _axis_aligned(m):
                boxes = mask_boxes
            ok = ok & masks_ok
            boxes = np.where(ok[:, None], boxes, 0).astype(np.float32)
        valid = np.asarray(out.get("valid", np.ones(len(boxes), bool)), bool) & ok
        out["boxes"] = np.where(valid[:, None], boxes, 0).astype(np.float32)
        out["valid"] = valid
    if "num_objects" in out and "valid" in out:
        out["num_objects"] = np.asarray(out["valid"]).sum().astype(np.int32)
    if "areas" in out:
        out["areas"] = (np.asarray(out["areas"], np.float32) * abs(np.linalg.det(m[:2, :2]))).astype(np.float32)
    return out
