"""Figures of the segmentation experiment: the comparison bars, the predicted masks, and the
gridding figure (the receptive-field support of naive vs hierarchical-feature-fusion dilated
stacks, and the trained ESPNets' masks, confidence and dilated-branch activations with their
share of power at periods of 2-4 pixels).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from matplotlib.figure import Figure

from vai_jax.nn.dilated import ESPBlock


def _palette(num_classes):
    """``[K, 3]`` RGB colours per class (tab10 / tab20), background black."""
    cmap = matplotlib.colormaps["tab10" if num_classes <= 10 else "tab20"]
    colours = np.array([cmap(i % cmap.N)[:3] for i in range(num_classes)])
    colours[0] = 0.0  # background black
    return colours


def _colourise(sem, colours, ignore_label):
    """A class map ``[H, W]`` as an RGB image; ignored pixels white."""
    sem = np.asarray(sem)
    out = colours[np.clip(sem, 0, len(colours) - 1)]
    out[sem == ignore_label] = 1.0
    return out


def plot_comparison(rows, path):
    """Bars per model: test mIoU, parameters, multiply-accumulates, inference images/s."""
    names = [r["model"] for r in rows]
    fields = [("miou", "test mIoU"), ("params", "parameters"), ("macs", "multiply-accumulates"),
              ("inference_images_per_sec", "inference images/s")]
    fig = Figure(figsize=(16, 3.6))
    axes = fig.subplots(1, 4)
    for ax, (key, title) in zip(axes, fields):
        vals = [r[key] for r in rows]
        ax.bar(range(len(names)), vals,
               color=matplotlib.colormaps["tab10"](np.arange(len(names)) % 10))
        ax.set_xticks(range(len(names)), names, rotation=40, ha="right")
        ax.set_title(title)
        if key in ("params", "macs"):
            ax.set_yscale("log")
        for i, v in enumerate(vals):
            ax.text(i, v, f"{v:.3g}", ha="center", va="bottom", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_predictions(images, truth, preds: dict, num_classes, ignore_label, path):
    """One row per test image: the image, the true mask and each model's predicted mask."""
    colours = _palette(num_classes)
    n = len(images)
    cols = 2 + len(preds)
    fig = Figure(figsize=(1.7 * cols, 1.7 * n))
    axes = fig.subplots(n, cols, squeeze=False)
    for i in range(n):
        panels = [("image", images[i]), ("truth", _colourise(truth[i], colours, ignore_label))]
        panels += [(k, _colourise(v[i], colours, ignore_label)) for k, v in preds.items()]
        for j, (title, im) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(im, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


class _DilatedStack(nn.Module):
    """Stem conv then ``depth`` stride-1 ESP blocks (no residual), for the receptive-field map."""

    width: int
    depth: int
    hff: bool

    @nn.compact
    def __call__(self, x, *, train: bool):
        x = nn.Conv(self.width, (3, 3), name="stem")(x)
        for i in range(self.depth):
            x = ESPBlock(self.width, hff=self.hff, residual=False, output_norm_act=False,
                         name=f"esp{i + 1}")(x, train=train)
        return x


def effective_receptive_fields(size: int = 65, width: int = 20, depth: int = 2, seed: int = 0,
                               inits: int = 4):
    """|d out[centre, c] / d x| summed over input channels and averaged over random inits, per
    output channel group (branch), for the naive and the HFF stack. Returns {hff: [K, H, W]}."""
    out = {}
    x = jnp.zeros((1, size, size, 3))
    c = size // 2
    for hff in (False, True):
        net = _DilatedStack(width, depth, hff)
        maps = 0.0
        for s in range(inits):
            v = net.init(jax.random.PRNGKey(seed + s), x, train=False)
            d = width // 5
            groups = [range(0, width - 4 * d)] + [range(width - (4 - k) * d, width - (3 - k) * d)
                                                  for k in range(4)]

            def unit(x, idx):
                y = net.apply(v, x, train=False)
                return jnp.sum(y[0, c, c, jnp.asarray(list(idx))])

            maps = maps + jnp.stack([jnp.abs(jax.grad(unit)(x + 0.1, g)).sum(-1)[0]
                                     for g in groups])
        out[hff] = np.asarray(maps)
    return out


def high_frequency_fraction(maps) -> float:
    """Share of the spatial power of ``maps [N, h, w, C]`` (each map's mean removed) at
    frequencies with ``max(|f_y|, |f_x|) >= 1/4`` cycles per pixel, i.e. periods of 2 to 4
    pixels: near 0 for smooth maps, large for a checkerboard / gridding pattern (a 2×2
    checkerboard alone gives 1). Averaged over maps, weighted by their power."""
    a = np.asarray(maps, np.float64)
    a = a - a.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(a, axes=(1, 2))) ** 2
    fy = np.abs(np.fft.fftfreq(a.shape[1]))[:, None]
    fx = np.abs(np.fft.fftfreq(a.shape[2]))[None, :]
    high = (np.maximum(fy, fx) >= 0.25)[None, :, :, None]
    total = power.sum()
    return float((power * high).sum() / total) if total > 0 else 0.0


def plot_gridding(erf, internals, images, truth, num_classes, ignore_label, path):
    """Top: support of one output unit's input gradient after 2 stride-1 ESP blocks, per
    branch, naive vs HFF (``erf`` from :func:`effective_receptive_fields`). Bottom (when
    ``internals`` = {"espnet_nohff": ..., "espnet": ...} from :func:`espnet_internals`): per
    test image, the trained networks' masks, confidence and mean |activation| of the dilated
    branches of the last stride-4 ESP block (each panel scaled to its own range), without and
    with HFF, with their high-frequency power share."""
    k = erf[False].shape[0]
    n = 0 if internals is None else min(3, len(images))
    fig = Figure(figsize=(17, 4.6 + 2.1 * n))
    top, bottom = (fig.subfigures(2, 1, height_ratios=[4.6, 2.1 * n]) if n
                   else (fig.subfigures(1, 1), None))
    axes = top.subplots(2, k, squeeze=False)
    rates = [2 ** i for i in range(k)]
    for r, hff in enumerate((False, True)):
        for j in range(k):
            ax = axes[r, j]
            m = erf[hff][j]
            ax.imshow(m > 1e-6 * m.max(), cmap="gray_r", interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"{'HFF' if hff else 'naive'}: branch {j + 1} (rate {rates[j]})",
                         fontsize=8)
    top.suptitle("Support of d(one output unit)/d(input) after 2 stride-1 ESP blocks, random "
                 "weights (nonzero pixels black): the naive stack reads a sparse lattice, HFF "
                 "fills it", fontsize=10)
    if n:
        colours = _palette(num_classes)
        cols = 8
        ax2 = bottom.subplots(n, cols, squeeze=False)
        hf = {name: (high_frequency_fraction(v["confidence"][..., None]),
                     high_frequency_fraction(v["activation"])) for name, v in internals.items()}
        for i in range(n):
            nh, h = internals["espnet_nohff"], internals["espnet"]
            act = lambda v: np.abs(v["activation"][i]).mean(-1)
            panels = [("image", images[i], {}),
                      ("truth", _colourise(truth[i], colours, ignore_label), {}),
                      ("mask, no HFF", _colourise(nh["pred"][i], colours, ignore_label), {}),
                      ("mask, HFF", _colourise(h["pred"][i], colours, ignore_label), {}),
                      ("confidence, no HFF", nh["confidence"][i],
                       dict(cmap="magma", vmin=0, vmax=1)),
                      ("confidence, HFF", h["confidence"][i], dict(cmap="magma", vmin=0, vmax=1)),
                      (f"|{nh['block']}| dilated, no HFF", act(nh), dict(cmap="viridis")),
                      (f"|{h['block']}| dilated, HFF", act(h), dict(cmap="viridis"))]
            for j, (title, im, kw) in enumerate(panels):
                ax = ax2[i, j]
                ax.imshow(im, interpolation="nearest", **kw)
                ax.set_xticks([]), ax.set_yticks([])
                if i == 0:
                    ax.set_title(title, fontsize=8)
        def verdict(i, what):  # a ratio under 1.5 is not called gridding
            ratio = hf["espnet_nohff"][i] / max(hf["espnet"][i], 1e-9)
            return (f"{what}: {hf['espnet_nohff'][i]:.1%} without vs {hf['espnet'][i]:.1%} "
                    f"with HFF (x{ratio:.2f}: "
                    + ("clearly more gridding without HFF)" if ratio >= 1.5
                       else "no clear gridding difference)"))

        bottom.suptitle(
            "Trained ESPNets (bilinear-initialised kernel-4 decoder), same budget. Power at "
            "periods of 2-4 px (gridding), "
            f"{verdict(0, 'output confidence')};\n"
            f"{verdict(1, 'dilated branches of the last stride-4 ESP block')}", fontsize=9)
    fig.savefig(path, dpi=100)
    return None if internals is None else {
        name: {"confidence_high_freq": v[0], "activation_high_freq": v[1]}
        for name, v in hf.items()}
