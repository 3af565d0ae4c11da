"""Sampling and vectorised rendering of shapes scenes (the engine behind ``ShapesDataset``).

A :class:`Scene` holds the parameters of a batch of ``B`` images with ``M`` object slots;
:func:`render_scene` turns it into images, masks, boxes and keypoints with NumPy operations over
the whole batch. Every per-pixel operation is elementwise, so an example's output does not depend
on which other examples share its batch. :func:`sample_example` draws one example's parameters, from
its own ``np.random.Generator``, into a row of a batch made by :func:`empty_scene`.

Frame: pixel (row i, col j) covers ``[j, j+1) x [i, i+1)``; a pixel is in a mask when its centre
``(j + 0.5, i + 0.5)`` lies inside the shape. See :mod:`vai_jax.data.shapes_geometry`.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from vai_jax._validation import check_int, check_number
from vai_jax.data import shapes_geometry as geo

# One sRGB colour per class (circle, square, triangle, star, cross, ellipse) for
# ``colour_by_class``: CIE L*a*b* (60, 35 cos h, 35 sin h) with hues h = 15°, 75°, ..., 315°.
# Equal lightness, so the grey image does not reveal the class (only the shape does).
# With a palette, the background's luma is kept at least PALETTE_LUMA_MARGIN away from the
# palette's (see :func:`separate_luma`) so that the object stays visible in the grey image.
CLASS_PALETTE = np.array([
    [0.8022, 0.4731, 0.5103],  # h = 15°: pink-red
    [0.6982, 0.5387, 0.3336],  # 75°: ochre
    [0.4499, 0.6095, 0.3917],  # 135°: green
    [0.0691, 0.6313, 0.6254],  # 195°: teal
    [0.2719, 0.5967, 0.7982],  # 255°: blue
    [0.6568, 0.5134, 0.7387],  # 315°: violet
], np.float64)
PALETTE_LUMA_MARGIN = 0.2
_LUMA = np.array([0.2126, 0.7152, 0.0722])  # Rec. 709 weights, on the encoded sRGB values


def separate_luma(colours: np.ndarray, target: float, margin: float) -> np.ndarray:
    """Darken or lighten ``colours [n, 3]`` (RGB in [0, 1]) so that each one's luma
    ``0.2126 R + 0.7152 G + 0.0722 B`` is at most ``target - margin`` (when their mean luma is
    below ``target``) or at least ``target + margin`` (otherwise). Darkening scales towards
    black, lightening towards white, so hues are kept and values stay in [0, 1]; colours already
    outside the band are unchanged. All colours move to one side, so that any blend of them
    stays outside the band too."""
    colours = np.asarray(colours, np.float64)
    if colours.ndim != 2 or colours.shape[-1] != 3:
        raise ValueError(f"colours must have shape [n, 3] (RGB); got {colours.shape}")
    check_number(target, "target", ge=0.0, le=1.0)
    check_number(margin, "margin", ge=0.0)
    luma = colours @ _LUMA
    out = colours.copy()
    if luma.mean() < target:
        lo = max(target - margin, 0.0)
        for k in np.nonzero(luma > lo)[0]:
            out[k] = colours[k] * (lo / luma[k])
    else:
        hi = min(target + margin, 1.0)
        for k in np.nonzero(luma < hi)[0]:
            out[k] = 1.0 - (1.0 - colours[k]) * ((1.0 - hi) / (1.0 - luma[k]))
    return out


class Scene(NamedTuple):
    """Parameters of ``B`` scenes with ``M`` object slots; objects drawn in slot order (later on top).

    Attributes:
      classes: int32 [B, M] class ids (any value where ``present`` is False).
      present: bool [B, M] slot holds an object.
      centre: float64 [B, M, 2] object centre (x, y) in pixels, continuous frame.
      radius: float64 [B, M] scale in pixels (local unit -> pixels), > 0 where present.
      cos_sin: float64 [B, M, 2] cosine and sine of the rotation (clockwise on screen).
      aspect: float64 [B, M] ellipse minor/major ratio in (0, 1]; 1 for other classes.
      colour: float32 [B, M, 3] RGB in [0, 1].
      shade: float32 [B, M, 2] relative brightness change per pixel along x and y.
      background: float32 [B, 2, 3] the two RGB colours the background texture blends.
      waves: float32 [B, 2, 3] two triangle-wave gratings (fx, fy in cycles/pixel, phase).
      noise: float32 [B, 3, H, W] uniform [0, 1) pixel noise (channel-first); fixes H and W.
      noise_std: float32 [B] standard deviation of the added noise, in units of [0, 1] intensity.
    """

    classes: np.ndarray
    present: np.ndarray
    centre: np.ndarray
    radius: np.ndarray
    cos_sin: np.ndarray
    aspect: np.ndarray
    colour: np.ndarray
    shade: np.ndarray
    background: np.ndarray
    waves: np.ndarray
    noise: np.ndarray
    noise_std: np.ndarray


def _check_scene(scene) -> "Scene":
    if not isinstance(scene, Scene):
        raise TypeError(f"scene must be a Scene (from empty_scene); got {type(scene).__name__}")
    return scene


def empty_scene(batch: int, max_objects: int, height: int, width: int) -> Scene:
    """A :class:`Scene` of ``batch`` rows with no objects, a flat grey background and no noise."""
    b = check_int(batch, "batch", ge=1)
    m = check_int(max_objects, "max_objects", ge=0)
    check_int(height, "height", ge=1)
    check_int(width, "width", ge=1)
    cos_sin = np.zeros((b, m, 2))
    cos_sin[..., 0] = 1.0
    return Scene(
        classes=np.zeros((b, m), np.int32), present=np.zeros((b, m), bool),
        centre=np.zeros((b, m, 2)), radius=np.ones((b, m)), cos_sin=cos_sin, aspect=np.ones((b, m)),
        colour=np.zeros((b, m, 3), np.float32), shade=np.zeros((b, m, 2), np.float32),
        background=np.full((b, 2, 3), 0.5, np.float32), waves=np.zeros((b, 2, 3), np.float32),
        noise=np.zeros((b, 3, height, width), np.float32), noise_std=np.zeros(b, np.float32))


def sample_example(
    rng: np.random.Generator,
    scene: Scene,
    row: int,
    *,
    num_objects: int,
    single: bool,
    class_id: int | None = None,
    palette: np.ndarray | None = None,
    palette_noise: float = 0.0,
) -> None:
    """Draw one scene's parameters into row ``row`` of ``scene`` (from :func:`empty_scene`).

    Args:
      rng: the example's own generator (all randomness comes from it, in a fixed order).
      scene: batch to write into; its shapes fix ``M`` (slots), ``H`` and ``W``.
      row: batch row to fill.
      num_objects: objects to place, <= M; slots after them stay empty.
      single: one large object kept entirely inside the frame (classification / keypoints tasks);
        otherwise smaller objects that may be cut by the border and overlap each other.
      class_id: force the class of every object (None: uniform over the classes).
      palette: float [NUM_CLASSES, 3] RGB in [0, 1]: an object of class c takes colour
        ``clip(palette[c] + palette_noise * (2u - 1), 0, 1)``, ``u`` uniform in [0, 1)³ (e.g.
        :data:`CLASS_PALETTE`). None: a random colour that stands out from the background.
        Both draw the same random numbers, so the scene differs only in its object colours.
      palette_noise: the half-width of that uniform noise per channel. With a palette the two
        background colours are also moved away from the palette's mean luma
        (:func:`separate_luma`, margin :data:`PALETTE_LUMA_MARGIN`): objects of equal
        lightness would otherwise often vanish in the grey image.
    """
    scene = _check_scene(scene)
    check_int(row, "row", ge=0, le=scene.classes.shape[0] - 1)
    check_int(num_objects, "num_objects", ge=0, le=scene.classes.shape[1])
    if class_id is not None:
        check_int(class_id, "class_id", ge=0, le=geo.NUM_CLASSES - 1)
    check_number(palette_noise, "palette_noise", ge=0.0)
    height, width = scene.noise.shape[2:4]
    size = float(min(height, width))
    # Background: two similar colours blended by two triangle-wave gratings; noise level.
    u = rng.random(13)
    bg0 = 0.05 + 0.9 * u[0:3]
    bg1 = np.clip(bg0 + 0.6 * u[3:6] - 0.3, 0.0, 1.0)
    if palette is not None:
        bg0, bg1 = separate_luma(np.stack([bg0, bg1]), float((palette @ _LUMA).mean()),
                                 PALETTE_LUMA_MARGIN)
    scene.background[row, 0] = bg0
    scene.background[row, 1] = bg1
    for g in range(2):
        freq = (0.5 + 5.5 * float(u[6 + g])) / size  # cycles per pixel
        theta = math.pi * float(u[8 + g])
        scene.waves[row, g] = (freq * math.cos(theta), freq * math.sin(theta), u[10 + g])
    scene.noise_std[row] = 0.01 + 0.05 * u[12]
    bg_mean = 0.5 * (bg0 + bg1)

    placed: list[tuple[float, float, float]] = []
    for i in range(num_objects):
        u = rng.random(8).tolist()
        c = min(int(u[0] * geo.NUM_CLASSES), geo.NUM_CLASSES - 1) if class_id is None else int(class_id)
        aspect = 0.4 + 0.25 * u[1] if c == geo.ELLIPSE else 1.0
        angle = (2.0 * u[2] - 1.0) * float(geo.MAX_ROTATION[c])
        if single:
            radius = (0.2 + 0.2 * u[3]) * size
            ext = radius * float(geo.CIRCUMRADIUS[c]) + 1.0
            cx = ext + (width - 2 * ext) * u[4]
            cy = ext + (height - 2 * ext) * u[5]
        else:
            radius = (0.08 + 0.12 * u[3]) * size
            cx = 0.5 * radius + (width - radius) * u[4]
            cy = 0.5 * radius + (height - radius) * u[5]
            for _ in range(10):  # keep centres apart so that no object is mostly hidden
                if all(math.hypot(cx - px, cy - py) >= 0.8 * max(radius, pr) for px, py, pr in placed):
                    break
                ux, uy = rng.random(2).tolist()
                cx = 0.5 * radius + (width - radius) * ux
                cy = 0.5 * radius + (height - radius) * uy
            placed.append((cx, cy, radius))
        # An object colour that stands out from the background: the first of 8 candidates far
        # enough from the mean background colour (else the farthest).
        cands = rng.random((8, 3))
        dist = np.sqrt(((cands - bg_mean) ** 2).sum(-1))
        ok = np.nonzero(dist >= 0.45)[0]
        colour = cands[ok[0] if ok.size else int(dist.argmax())]
        if palette is not None:
            colour = np.clip(palette[c] + palette_noise * (2.0 * cands[0] - 1.0), 0.0, 1.0)
        scene.classes[row, i] = c
        scene.present[row, i] = True
        scene.centre[row, i] = (cx, cy)
        scene.radius[row, i] = radius
        scene.cos_sin[row, i] = (math.cos(angle), math.sin(angle))
        scene.aspect[row, i] = aspect
        scene.colour[row, i] = colour
        scene.shade[row, i] = ((0.6 * u[6] - 0.3) / radius, (0.6 * u[7] - 0.3) / radius)
    scene.noise[row] = rng.random((3, height, width), dtype=np.float32)


def full_masks(scene: Scene) -> np.ndarray:
    """bool [B, M, H, W]: pixels whose centre lies inside each present object (ignoring occlusion)."""
    b, m = _check_scene(scene).classes.shape
    h, w = scene.noise.shape[2:4]
    xs = (np.arange(w, dtype=np.float64) + 0.5).reshape(1, 1, w)
    ys = (np.arange(h, dtype=np.float64) + 0.5).reshape(1, h, 1)
    out = np.zeros((b, m, h, w), bool)
    for c in range(geo.NUM_CLASSES):
        bi, mi = np.nonzero(scene.present & (scene.classes == c))
        if bi.size == 0:
            continue
        out[bi, mi] = geo.inside(
            c, scene.centre[bi, mi, 0], scene.centre[bi, mi, 1], scene.radius[bi, mi],
            scene.cos_sin[bi, mi, 0], scene.cos_sin[bi, mi, 1], scene.aspect[bi, mi], xs, ys)
    return out


def keypoint_positions(scene: Scene) -> np.ndarray:
    """float64 [B, M, K, 2]: exact (x, y) of every keypoint slot (padding slots at the centre)."""
    _check_scene(scene)
    local = geo.LOCAL_KEYPOINTS[np.clip(scene.classes, 0, geo.NUM_CLASSES - 1)]  # [B, M, K, 2]
    u = local[..., 0]
    v = local[..., 1] * scene.aspect[..., None]
    r = scene.radius[..., None]
    c = scene.cos_sin[..., 0:1]
    s = scene.cos_sin[..., 1:2]
    x = scene.centre[..., 0:1] + r * (c * u - s * v)
    y = scene.centre[..., 1:2] + r * (s * u + c * v)
    return np.stack([x, y], -1)


def _covered_points(scene: Scene, keep: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """bool [B, M, K]: keypoint lies inside a LATER kept object (exact geometry, closed sets)."""
    b, m, k, _ = xy.shape
    # inside_by[b, j, i*K + k]: point k of object i lies inside object j.
    inside_by = np.zeros((b, m, m * k), bool)
    px = xy[..., 0].reshape(b, m * k)
    py = xy[..., 1].reshape(b, m * k)
    for c in range(geo.NUM_CLASSES):
        bi, mi = np.nonzero(keep & (scene.classes == c))
        if bi.size == 0:
            continue
        inside_by[bi, mi] = geo.inside(
            c, scene.centre[bi, mi, 0], scene.centre[bi, mi, 1], scene.radius[bi, mi],
            scene.cos_sin[bi, mi, 0], scene.cos_sin[bi, mi, 1], scene.aspect[bi, mi], px[bi], py[bi])
    inside_by = inside_by.reshape(b, m, m, k)
    later = np.triu(np.ones((m, m), bool), k=1)  # later[i, j]: j drawn after i
    return np.einsum("bjik,ij->bik", inside_by, later)


def _background(scene: Scene, h: int, w: int, offset: np.ndarray) -> np.ndarray:
    """float32 [B, 3, H, W] background in 0..255 units plus ``offset`` [B]."""
    xs = np.arange(w, dtype=np.float32) + np.float32(0.5)
    ys = np.arange(h, dtype=np.float32) + np.float32(0.5)
    t = None
    for g in range(2):
        fx, fy, ph = (scene.waves[:, g, i] for i in range(3))
        a = (fx[:, None] * xs + ph[:, None])[:, None, :] + (fy[:, None] * ys)[:, :, None]
        tri = np.abs(a - np.floor(a) - np.float32(0.5))  # in [0, 0.5]
        t = tri if t is None else np.add(t, tri, out=t)  # in [0, 1]
    c0 = scene.background[:, 0] * np.float32(255.0) + offset[:, None]
    dc = (scene.background[:, 1] - scene.background[:, 0]) * np.float32(255.0)
    return c0[:, :, None, None] + dc[:, :, None, None] * t[:, None]


def render_scene(scene: Scene, *, min_visible_pixels: int = 1, image_only: bool = False) -> dict:
    """Render a batch of scenes.

    Objects are drawn in slot order, later ones over earlier ones. An object with fewer than
    ``min_visible_pixels`` visible pixels is not drawn at all (it would be an unlabellable speck);
    removing it only uncovers earlier objects, so the others keep their counts. With 0 every object
    is kept, even a fully hidden one (empty mask, box [0, 0, 0, 0], keypoints in the frame v = 1). Kept objects are
    then moved to the front of the object axis, keeping their drawing order.

    Args:
      scene: :class:`Scene` with ``B`` scenes, ``M`` slots, images ``H x W``.
      min_visible_pixels: int >= 0.
      image_only: return only "image" (and "semantic"), skipping keypoints and boxes.

    Returns:
      dict of NumPy arrays (frame: pixel (i, j) covers [j, j+1) x [i, i+1)):
        "image" uint8 [B, H, W, 3];
        "masks" bool [B, M, H, W] visible instance masks;
        "boxes" float32 [B, M, 4] [x1, y1, x2, y2] tight box of the visible mask (0 for padding
          and for an empty mask);
        "classes" int32 [B, M] (0 for padding); "valid" bool [B, M]; "num_objects" int32 [B];
        "keypoints" float32 [B, M, K, 3] exact [x, y, v]: v = 0 padding or outside the frame
          (x = y = 0 then), 1 inside a later object, 2 visible;
        "semantic" int32 [B, H, W] 0 background, class + 1 of the top object.
    """
    check_int(min_visible_pixels, "min_visible_pixels", ge=0)
    b, m = _check_scene(scene).classes.shape
    h, w = scene.noise.shape[2:4]
    full = full_masks(scene)

    def visible_of(f):
        vis = np.empty_like(f)
        cover = np.zeros((b, h, w), bool)
        for j in range(m - 1, -1, -1):
            np.logical_and(f[:, j], ~cover, out=vis[:, j])
            cover |= f[:, j]
        return vis

    visible = visible_of(full)
    keep = scene.present & (visible.reshape(b, m, -1).sum(-1) >= min_visible_pixels)
    if not np.array_equal(keep, scene.present):
        full &= keep[:, :, None, None]
        visible = visible_of(full)

    # Image (channel-first, 0..255 units): textured background, shaded objects, uniform noise.
    # The noise is centred and the +0.5 of round-half-up is folded into every surface colour.
    amp = scene.noise_std * np.float32(255.0 * math.sqrt(12.0))
    offset = np.float32(0.5) - np.float32(0.5) * amp
    img = _background(scene, h, w, offset)
    xs = np.arange(w, dtype=np.float32) + np.float32(0.5)
    ys = np.arange(h, dtype=np.float32) + np.float32(0.5)
    centre32 = scene.centre.astype(np.float32)
    colour255 = scene.colour * np.float32(255.0)
    semantic = np.zeros((b, h, w), np.int32)
    for j in range(m):
        rows = np.nonzero(keep[:, j])[0]
        if rows.size == 0:
            continue
        sel = slice(None) if rows.size == b else rows
        gx = scene.shade[sel, j, 0][:, None]
        gy = scene.shade[sel, j, 1][:, None]
        shade = (np.float32(1.0) + gx * (xs - centre32[sel, j, 0][:, None]))[:, None, :] + (
            gy * (ys - centre32[sel, j, 1][:, None]))[:, :, None]
        colour = colour255[sel, j][:, :, None, None] * shade[:, None]
        colour += offset[sel, None, None, None]
        fm = full[sel, j]
        if rows.size == b:
            np.copyto(img, colour, where=fm[:, None])
            semantic[fm] = 0  # later objects overwrite
            semantic += fm * (scene.classes[:, j][:, None, None] + 1)
        else:
            img[rows] = np.where(fm[:, None], colour, img[rows])
            semantic[rows] = np.where(fm, scene.classes[rows, j][:, None, None] + 1, semantic[rows])
    noise = scene.noise * amp[:, None, None, None]
    img += noise
    np.clip(img, 0.0, 255.0, out=img)
    planes = img.astype(np.uint8)
    image = np.stack([planes[:, 0], planes[:, 1], planes[:, 2]], -1)
    if image_only:
        return {"image": image, "semantic": semantic}

    # Keypoints with visibility.
    xy = keypoint_positions(scene)
    covered = _covered_points(scene, keep, xy)
    kidx = np.arange(geo.NUM_KEYPOINTS)
    exists = keep[..., None] & (kidx < geo.KEYPOINT_COUNTS[np.clip(scene.classes, 0, geo.NUM_CLASSES - 1)][..., None])
    in_frame = (xy[..., 0] >= 0) & (xy[..., 0] < w) & (xy[..., 1] >= 0) & (xy[..., 1] < h)
    vis = np.where(exists & in_frame, np.where(covered, 1, 2), 0)
    keypoints = np.concatenate([np.where(vis[..., None] > 0, xy, 0.0), vis[..., None]], -1).astype(np.float32)

    # Boxes from the visible masks.
    rows_any = visible.any(axis=3)  # [B, M, H]
    cols_any = visible.any(axis=2)  # [B, M, W]
    y1 = rows_any.argmax(-1)
    y2 = h - rows_any[..., ::-1].argmax(-1)
    x1 = cols_any.argmax(-1)
    x2 = w - cols_any[..., ::-1].argmax(-1)
    nonempty = keep & rows_any.any(-1)
    boxes = np.where(nonempty[..., None], np.stack([x1, y1, x2, y2], -1), 0).astype(np.float32)

    # Kept objects first, in drawing order.
    order = np.argsort(~keep, axis=1, kind="stable")
    take = lambda a: np.take_along_axis(a, order.reshape(order.shape + (1,) * (a.ndim - 2)), axis=1)
    valid = take(keep)
    return {
        "image": image,
        "masks": take(visible),
        "boxes": take(boxes),
        "classes": np.where(valid, take(scene.classes), 0).astype(np.int32),
        "valid": valid,
        "num_objects": keep.sum(1).astype(np.int32),
        "keypoints": take(keypoints),
        "semantic": semantic,
    }
