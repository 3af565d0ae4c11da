"""The figures of the pose studies (``run`` in :mod:`experiments.pose.train` calls them).

Each ``plot_*(path, ...)`` draws one PNG: predictions against ground truth, heatmaps and
soft-argmax probability maps, error against heatmap stride, the two-maxima failure of
soft-argmax, the density head's calibration and PAF grouping.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse

from vai_jax.ops import keypoints as kpo
from vai_jax.viz.draw import draw_image
from vai_jax.viz.figures import save_figure


def save(fig, path):
    """Write ``fig`` as a PNG (110 dpi) and log the path."""
    save_figure(fig, path, dpi=110, tight=True, announce=True)


def plot_predictions(path, val, preds, log_std, n):
    """The first ``n`` validation images with each head's predictions (rows of ``preds``)
    and ground truth; 1σ ellipses on the ``"density"`` row when ``log_std`` is given."""
    names = list(preds)
    fig = Figure(figsize=(2.0 * n, 2.1 * len(names)))
    for r, name in enumerate(names):
        for c in range(n):
            ax = fig.add_subplot(len(names), n, r * n + c + 1)
            draw_image(ax, val["image"][c])
            vis = val["keypoints"][c, :, 2] > 0
            gt, p = val["keypoints"][c][vis], preds[name][c][vis]
            ax.scatter(gt[:, 0], gt[:, 1], s=22, facecolors="none", edgecolors="lime", lw=1.2)
            ax.scatter(p[:, 0], p[:, 1], s=18, c="red", marker="x", lw=1.2)
            if name == "density" and log_std is not None:
                sd = np.exp(log_std[c][vis])
                for (x, y), (sx, sy) in zip(p, sd):
                    ax.add_patch(Ellipse((x, y), 2 * sx, 2 * sy, fill=False, ec="yellow", lw=0.8))
            if c == 0:
                ax.set_title(name, fontsize=8, loc="left")
    fig.suptitle("predictions (red x) vs ground truth (green o); density: 1σ ellipses")
    save(fig, path)


def plot_heatmaps(path, val, hm_out, int_out, hstride, n):
    """Heatmap-head maps and integral-head probability maps for up to 4 images."""
    n = min(n, 4)
    fig = Figure(figsize=(8, 2.1 * n))
    s = val["image"].shape[1]
    p_int = np.asarray(kpo.spatial_softmax(int_out["heatmaps"][:n]))
    for r in range(n):
        ax = fig.add_subplot(n, 4, 4 * r + 1)
        draw_image(ax, val["image"][r])
        ax.set_title("image" if r == 0 else "", fontsize=8)
        panels = [("heatmap head: max_k H", hm_out["heatmaps"][r].max(-1), "magma"),
                  ("integral: Σ_k softmax(H)", p_int[r].sum(-1), "viridis"),
                  ("integral P, keypoint 0", p_int[r, :, :, 0], "viridis")]
        for j, (title, img, cmap) in enumerate(panels):
            ax = fig.add_subplot(n, 4, 4 * r + 2 + j)
            ax.imshow(img, extent=(0, s, s, 0), cmap=cmap, interpolation="nearest")
            vis = val["keypoints"][r, :, 2] > 0
            ax.scatter(*val["keypoints"][r][vis, :2].T, s=8, c="cyan")
            ax.set_axis_off()
            if r == 0:
                ax.set_title(title, fontsize=8)
    fig.suptitle(f"heatmaps / probability maps (stride {hstride}; cyan: ground truth)")
    save(fig, path)


def plot_stride_study(path, rows):
    """Mean pixel error against heatmap stride per decoding, with the cell-centre
    quantisation error ``0.383 · stride``."""
    fig = Figure(figsize=(5.5, 4))
    ax = fig.add_subplot(1, 1, 1)
    strides = sorted({r["stride"] for r in rows})
    for method, style in (("heatmap arg-max", "o-"), ("heatmap quarter-offset", "^-"),
                          ("heatmap Taylor", "s-"), ("integral (soft-argmax)", "d-")):
        ys = [next(r["mean_px_error"] for r in rows if r["stride"] == s and r["method"] == method)
              for s in strides]
        ax.plot(strides, ys, style, label=method)
    # Mean distance from a cell's centre to a uniform point in it: s·(√2 + asinh 1)/6 ≈ 0.383 s.
    quant = (np.sqrt(2) + np.arcsinh(1.0)) / 6
    ax.plot(strides, [quant * s for s in strides], "k:",
            label="cell-centre quantisation alone (0.383·stride)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(strides, [str(s) for s in strides])
    ax.set_xlabel("heatmap stride (image pixels per cell)")
    ax.set_ylabel("mean pixel error (validation)")
    ax.set_title("error vs heatmap resolution")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, path)


def plot_two_maxima(path):
    """Soft-argmax of a map with two equal maxima at three inverse temperatures."""
    h, w = 16, 24
    hm = np.asarray(kpo.gaussian_heatmaps(np.array([[5.5, 4.5, 2.0], [18.5, 11.5, 2.0]]),
                                          (h, w), sigma=1.2, stride=1)).max(-1)
    fig = Figure(figsize=(9, 3.2))
    for j, beta in enumerate((1.0, 10.0, 50.0)):
        logits = jnp.asarray(hm)[None, :, :, None]
        p = np.asarray(kpo.spatial_softmax(logits, beta=beta))[0, :, :, 0]
        sa = np.asarray(kpo.soft_argmax(logits, beta=beta))[0, 0]
        am = np.asarray(kpo.heatmap_argmax(logits, refine=None)[0])[0, 0]
        ax = fig.add_subplot(1, 3, j + 1)
        ax.imshow(p, extent=(0, w, h, 0), cmap="viridis", interpolation="nearest")
        ax.scatter(*sa, c="red", marker="x", s=60, label=f"soft-argmax ({sa[0]:.1f}, {sa[1]:.1f})")
        ax.scatter(*am, facecolors="none", edgecolors="white", s=80, label="arg-max")
        ax.set_title(f"P = softmax({beta:g}·H)", fontsize=9)
        ax.legend(fontsize=6, loc="upper right")
        ax.set_axis_off()
    fig.suptitle("failure mode: two equal maxima pull soft-argmax to their midpoint (12, 8)")
    save(fig, path)


def plot_density_calibration(path, cal):
    """Per-coordinate |error| against predicted σ, binned means and the calibrated line, from
    :func:`vai_jax.pose.metrics.density_calibration`."""
    sd, err = cal["sigma"], cal["abs_error"]
    mean_sd = np.asarray(cal["binned_sigma"], sd.dtype)
    mean_err = np.asarray(cal["binned_abs_error"], err.dtype)
    spearman = cal["spearman_sigma_vs_error"]
    fig = Figure(figsize=(5, 4))
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(sd, err, s=3, alpha=0.15, c="gray", label="per coordinate")
    ax.plot(mean_sd, mean_err, "o-", c="C0", label="binned mean |error| (deciles of σ)")
    lim = max(mean_sd.max(), mean_err.max()) * 1.3
    xs = np.linspace(0, lim, 50)
    ax.plot(xs, xs * np.sqrt(2 / np.pi), "k--", label="calibrated: E|e| = σ·√(2/π)")
    ax.set_xlim(0, lim)
    ax.set_ylim(0, lim * 1.5)
    ax.set_xlabel("predicted σ (pixels)")
    ax.set_ylabel("|error| (pixels)")
    ax.set_title(f"density head calibration (Spearman ρ = {spearman:.2f})")
    ax.legend(fontsize=7)
    save(fig, path)


def plot_multi(path, val, grouped, out, hstride, n):
    """Grouped instances and predicted part affinity fields for the first ``n`` images."""
    fig = Figure(figsize=(2.2 * n, 4.6))
    s = val["image"].shape[1]
    colours = ["red", "cyan", "yellow", "magenta", "orange", "lime", "white", "blue"]
    for c in range(n):
        ax = fig.add_subplot(2, n, c + 1)
        draw_image(ax, val["image"][c])
        for m, inst in enumerate(grouped[c]):
            col = colours[m % len(colours)]
            pts = inst[inst[:, 2] > 0]
            ax.scatter(pts[:, 0], pts[:, 1], s=12, c=col, edgecolors="black", lw=0.4)
            if inst[0, 2] > 0:
                for k in range(1, len(inst)):
                    if inst[k, 2] > 0:
                        ax.plot([inst[0, 0], inst[k, 0]], [inst[0, 1], inst[k, 1]], c=col, lw=0.8)
        if c == 0:
            ax.set_title("grouped instances", fontsize=8, loc="left")
        ax = fig.add_subplot(2, n, n + c + 1)
        f = out["pafs"][c]  # [H, W, L, 2]
        mag = np.linalg.norm(f, axis=-1).max(-1)
        ax.imshow(mag, extent=(0, s, s, 0), cmap="gray", interpolation="nearest")
        hh, ww = mag.shape
        xs, ys = (np.arange(ww) + 0.5) * hstride, (np.arange(hh) + 0.5) * hstride
        vec = f.sum(-2)
        ax.quiver(xs, ys, vec[..., 0], vec[..., 1], color="orange", angles="xy", scale=30)
        ax.set_xlim(0, s)
        ax.set_ylim(s, 0)
        ax.set_axis_off()
        if c == 0:
            ax.set_title("predicted PAFs (sum over limbs)", fontsize=8, loc="left")
    fig.suptitle("multi-instance: part affinity fields and greedy grouping")
    save(fig, path)
