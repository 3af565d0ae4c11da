"""Geometry of the built-in shapes: classes, named keypoints, skeletons and exact inside tests.

Every shape is defined in a *local* frame ``(u, v)`` of unit scale (``u`` to the right, ``v`` down,
like the image axes) and placed in the image by a centre ``(cx, cy)``, a scale ``radius`` (pixels)
and a rotation ``angle`` (radians; positive turns clockwise on screen because image ``y`` points
down)::

    x = cx + radius * (cos(angle) * u - sin(angle) * v)
    y = cy + radius * (sin(angle) * u + cos(angle) * v)

Coordinates follow the project frame: pixel (row i, col j) covers ``[j, j+1) x [i, i+1)`` and its
centre is ``(j + 0.5, i + 0.5)``. A pixel belongs to a shape's mask when its centre lies inside the
shape (closed set). Keypoints are the exact geometric points (corners, tips, centre), not rounded.

Shapes (local frame, unit scale):

* circle: radius 1 (its keypoints ignore rotation: circles are drawn with angle 0).
* square: half-side ``1/sqrt(2)`` (corners on the unit circle).
* triangle: equilateral, vertices on the unit circle, apex up at ``(0, -1)``; centroid at 0.
* star: five tips on the unit circle (first tip up), inner vertices at radius ``STAR_INNER``.
* cross: a plus sign, arms of half-length 1 and half-width ``CROSS_HALF_WIDTH``.
* ellipse: semi-axes 1 (along ``u``) and ``aspect`` (along ``v``), ``aspect`` < 1.

Rotations are sampled inside ``MAX_ROTATION[c]``, 75 % of half the shape's symmetry period, so each
named keypoint (``top_left`` ...) is determined by the image without ambiguity.

The inside tests use only ``+ - * /`` and comparisons per pixel (no transcendental functions), so
masks are bit-for-bit reproducible across machines for the same parameters.
"""
from __future__ import annotations

import math

import numpy as np

CLASS_NAMES = ("circle", "square", "triangle", "star", "cross", "ellipse")
NUM_CLASSES = len(CLASS_NAMES)
CIRCLE, SQUARE, TRIANGLE, STAR, CROSS, ELLIPSE = range(NUM_CLASSES)

STAR_INNER = 0.45
CROSS_HALF_WIDTH = 0.3
_SQ = 1.0 / math.sqrt(2.0)
_STAR_TIP_ANGLES = [-math.pi / 2 + 2 * math.pi * k / 5 for k in range(5)]

KEYPOINT_NAMES = (
    ("centre", "top", "right", "bottom", "left"),
    ("centre", "top_left", "top_right", "bottom_right", "bottom_left"),
    ("centre", "apex", "bottom_right", "bottom_left"),
    ("centre", "tip_top", "tip_upper_right", "tip_lower_right", "tip_lower_left", "tip_upper_left"),
    ("centre", "top", "right", "bottom", "left"),
    ("centre", "minor_top", "major_right", "minor_bottom", "major_left"),
)
NUM_KEYPOINTS = max(len(n) for n in KEYPOINT_NAMES)

# Limbs (0-based keypoint indices): the centre joined to every other keypoint of the class.
SKELETON = tuple(tuple((0, k) for k in range(1, len(n))) for n in KEYPOINT_NAMES)

# (left, right) pairs that swap names under a horizontal image flip (x -> W - x).
FLIP_PAIRS = (
    ((2, 4),),
    ((1, 2), (3, 4)),
    ((2, 3),),
    ((2, 5), (3, 4)),
    ((2, 4),),
    ((2, 4),),
)


def _flip_permutation() -> np.ndarray:
    perm = np.tile(np.arange(NUM_KEYPOINTS, dtype=np.int32), (NUM_CLASSES, 1))
    for c, pairs in enumerate(FLIP_PAIRS):
        for a, b in pairs:
            perm[c, a], perm[c, b] = b, a
    return perm


# int32 [NUM_CLASSES, K]: after a horizontal flip, keypoints[m] = keypoints[m][FLIP_PERMUTATION[cls]].
FLIP_PERMUTATION = _flip_permutation()
FLIP_PERMUTATION.setflags(write=False)

# Number of real (non-padding) keypoints per class, int32 [NUM_CLASSES].
KEYPOINT_COUNTS = np.array([len(n) for n in KEYPOINT_NAMES], np.int32)

# Distance from the centre to the farthest point of each shape, in local units (ellipse: aspect < 1).
CIRCUMRADIUS = np.array([1.0, 1.0, 1.0, 1.0, math.hypot(1.0, CROSS_HALF_WIDTH), 1.0])

# Largest |angle| sampled per class, radians (75 % of half the symmetry period; circle: 0).
MAX_ROTATION = np.array(
    [0.0, 0.75 * math.pi / 4, 0.75 * math.pi / 3, 0.75 * math.pi / 5, 0.75 * math.pi / 4, 0.75 * math.pi / 2]
)


def _local_keypoints() -> np.ndarray:
    """float64 [NUM_CLASSES, K, 2] keypoints in the local frame (ellipse ``v`` to be scaled by aspect)."""
    pts = np.zeros((NUM_CLASSES, NUM_KEYPOINTS, 2))
    pts[CIRCLE, :5] = [(0, 0), (0, -1), (1, 0), (0, 1), (-1, 0)]
    pts[SQUARE, :5] = [(0, 0), (-_SQ, -_SQ), (_SQ, -_SQ), (_SQ, _SQ), (-_SQ, _SQ)]
    pts[TRIANGLE, :4] = [(0, 0), (0, -1), (math.sqrt(3) / 2, 0.5), (-math.sqrt(3) / 2, 0.5)]
    pts[STAR, 0] = (0, 0)
    pts[STAR, 1:6] = [(math.cos(a), math.sin(a)) for a in _STAR_TIP_ANGLES]
    pts[CROSS, :5] = [(0, 0), (0, -1), (1, 0), (0, 1), (-1, 0)]
    pts[ELLIPSE, :5] = [(0, 0), (0, -1), (1, 0), (0, 1), (-1, 0)]
    return pts


LOCAL_KEYPOINTS = _local_keypoints()
LOCAL_KEYPOINTS.setflags(write=False)


def _edge(p, q):
    """Half-plane ``n . p <= r`` bounded by the line through p and q, containing the origin."""
    n = (q[1] - p[1], -(q[0] - p[0]))
    r = n[0] * p[0] + n[1] * p[1]
    if r < 0:
        n, r = (-n[0], -n[1]), -r
    return n[0], n[1], r


def _polygon_halfplanes(vertices):
    return [_edge(vertices[i], vertices[(i + 1) % len(vertices)]) for i in range(len(vertices))]


_SQUARE_HP = [(1.0, 0.0, _SQ), (-1.0, 0.0, _SQ), (0.0, 1.0, _SQ), (0.0, -1.0, _SQ)]
_TRIANGLE_HP = _polygon_halfplanes([tuple(p) for p in LOCAL_KEYPOINTS[TRIANGLE, 1:4]])
_W = CROSS_HALF_WIDTH
_CROSS_HP = (
    [(1.0, 0.0, 1.0), (-1.0, 0.0, 1.0), (0.0, 1.0, _W), (0.0, -1.0, _W)],
    [(1.0, 0.0, _W), (-1.0, 0.0, _W), (0.0, 1.0, 1.0), (0.0, -1.0, 1.0)],
)
# Star = union over tips k of the convex kite (origin, inner_{k-}, tip_k, inner_{k+}) = sector_k
# (between the rays through the two inner vertices) intersected with the two outer-edge half-planes.
_STAR_RAY_ANGLES = [a - math.pi / 5 for a in _STAR_TIP_ANGLES]  # ray j bounds sectors j-1 and j
_STAR_RAYS = [(-math.sin(a), math.cos(a), 0.0) for a in _STAR_RAY_ANGLES]  # n.p = cross(dir_j, p)
_STAR_EDGES = []
for _k, _a in enumerate(_STAR_TIP_ANGLES):
    _tip = (math.cos(_a), math.sin(_a))
    _pa = (STAR_INNER * math.cos(_a - math.pi / 5), STAR_INNER * math.sin(_a - math.pi / 5))
    _pb = (STAR_INNER * math.cos(_a + math.pi / 5), STAR_INNER * math.sin(_a + math.pi / 5))
    _STAR_EDGES.append((_edge(_pa, _tip), _edge(_tip, _pb)))
del _k, _a, _tip, _pa, _pb


def star_polygon() -> np.ndarray:
    """float64 [10, 2] star outline in the local frame (tip, inner, tip, ...), clockwise on screen."""
    out = []
    for a in _STAR_TIP_ANGLES:
        out.append((math.cos(a), math.sin(a)))
        b = a + math.pi / 5
        out.append((STAR_INNER * math.cos(b), STAR_INNER * math.sin(b)))
    return np.array(out)


def local_outline(class_id: int, aspect: float = 1.0, num: int = 256) -> np.ndarray:
    """float64 [P, 2] outline polygon of a class in the local frame (circle/ellipse sampled at ``num``).

    Used for drawing and as an independent reference in tests; the masks do not use it.
    """
    if class_id in (CIRCLE, ELLIPSE):
        t = np.linspace(0.0, 2 * np.pi, num, endpoint=False)
        return np.stack([np.cos(t), aspect * np.sin(t)], -1)
    if class_id == SQUARE:
        return LOCAL_KEYPOINTS[SQUARE, 1:5].copy()
    if class_id == TRIANGLE:
        return LOCAL_KEYPOINTS[TRIANGLE, 1:4].copy()
    if class_id == STAR:
        return star_polygon()
    if class_id == CROSS:
        w = CROSS_HALF_WIDTH
        return np.array([(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1),
                         (-w, w), (-1, w), (-1, -w), (-w, -w)], dtype=np.float64)
    raise ValueError(f"class_id must be in [0, {NUM_CLASSES}); got {class_id}")


def _expand(p: np.ndarray, ndim: int) -> np.ndarray:
    return np.reshape(p, p.shape + (1,) * (ndim - p.ndim))


def inside(class_id: int, cx, cy, radius, cos, sin, aspect, x, y) -> np.ndarray:
    """Closed inside test of objects of one class at points ``(x, y)``.

    Args:
      class_id: the class (Python int) shared by the ``n`` objects.
      cx, cy, radius, cos, sin, aspect: float64 [n] object parameters (image pixels; ``cos``/``sin``
        of the rotation angle; ``aspect`` is used by the ellipse only).
      x, y: float64 arrays broadcastable to ``[n, ...]`` after the leading axis, in the continuous
        pixel frame; e.g. ``x`` [1, 1, W] and ``y`` [1, H, 1] give an [n, H, W] raster of pixel centres.

    Returns:
      bool array of the broadcast shape ``[n, ...]``.
    """
    nd = max(np.ndim(x), np.ndim(y), 1)
    cx, cy, radius, cos, sin, aspect = (_expand(np.asarray(p, np.float64), nd)
                                        for p in (cx, cy, radius, cos, sin, aspect))
    dx = x - cx
    dy = y - cy

    def hp(nu, nv, r):
        # n . (u, v) <= r with (u, v) = R^-1 (dx, dy) / radius, rearranged so that a raster needs one
        # broadcast comparison: alpha*dx - r*radius <= -beta*dy.
        alpha = nu * cos - nv * sin
        beta = nu * sin + nv * cos
        return alpha * dx - r * radius, -beta * dy

    def all_le(planes):
        out = None
        for nu, nv, r in planes:
            lhs, rhs = hp(nu, nv, r)
            m = lhs <= rhs
            out = m if out is None else np.logical_and(out, m, out=out)
        return out

    if class_id == CIRCLE:
        return dx * dx + dy * dy <= radius * radius
    if class_id == ELLIPSE:
        inv_r2 = 1.0 / (radius * radius)
        inv_a2 = 1.0 / (aspect * aspect)
        a_xx = (cos * cos + sin * sin * inv_a2) * inv_r2
        a_yy = (sin * sin + cos * cos * inv_a2) * inv_r2
        a_xy = 2.0 * cos * sin * (1.0 - inv_a2) * inv_r2
        return (a_xx * dx * dx + (a_xy * dx) * dy) + a_yy * dy * dy <= 1.0
    if class_id == SQUARE:
        return all_le(_SQUARE_HP)
    if class_id == TRIANGLE:
        return all_le(_TRIANGLE_HP)
    if class_id == CROSS:
        return np.logical_or(all_le(_CROSS_HP[0]), all_le(_CROSS_HP[1]))
    if class_id == STAR:
        rays = [hp(*r) for r in _STAR_RAYS]
        out = None
        for k in range(5):
            a_l, a_r = rays[k]
            b_l, b_r = rays[(k + 1) % 5]
            m = (a_l >= a_r) & (b_l <= b_r) & all_le(_STAR_EDGES[k])
            out = m if out is None else np.logical_or(out, m, out=out)
        return out
    raise ValueError(f"class_id must be in [0, {NUM_CLASSES}); got {class_id}")
