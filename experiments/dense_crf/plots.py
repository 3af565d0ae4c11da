"""Figures of the dense-CRF experiment: test images with their true masks and the masks before
and after the CRF (post-processing and CRF-as-RNN); trimap accuracy against the band width and
the validation search."""
from __future__ import annotations

import matplotlib
from matplotlib.figure import Figure

from experiments.segmentation.plots import _colourise, _palette

_SHORT = {"network": "network", "post": "+ CRF (post)", "post_grid": "+ CRF (post, grid)",
          "tuned": "fine-tuned",
          "tuned_post": "fine-tuned + CRF", "rnn": "CRF-as-RNN",
          "rnn_unary": "CRF-as-RNN unary"}
_SHOWN = ("network", "post", "rnn")


def plot_examples(images, truth, preds: dict, num_classes, ignore_label, path):
    """One row per test image: the image, the true mask, then per model its mask before the
    CRF, after the post-processing CRF and from CRF-as-RNN (``preds[(model, variant)]``,
    those present); pixels that change from the network's mask are outlined in white."""
    colours = _palette(num_classes)
    models = list(dict.fromkeys(m for m, _ in preds))
    cols = [(m, v) for m in models for v in _SHOWN if (m, v) in preds]
    n = len(images)
    fig = Figure(figsize=(1.75 * (2 + len(cols)), 1.8 * n + 0.3))
    axes = fig.subplots(n, 2 + len(cols), squeeze=False)
    for i in range(n):
        panels = [("image", images[i], None), ("truth", _colourise(truth[i], colours,
                                                                 ignore_label), None)]
        for m, v in cols:
            changed = None if v == "network" else preds[(m, v)][i] != preds[(m, "network")][i]
            panels.append((f"{m}\n{_SHORT[v]}", _colourise(preds[(m, v)][i], colours,
                                                           ignore_label), changed))
        for j, (title, im, changed) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(im, interpolation="nearest")
            if changed is not None and changed.any():
                ax.contour(changed.astype(float), levels=[0.5], colors="white", linewidths=0.4)
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=7)
    fig.suptitle("Test images: true masks, network masks before and after the dense CRF "
                 "(white outline: pixels the CRF changed)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_trimap(rows, widths, searches: dict, path):
    """Per model: trimap pixel accuracy against the band half-width, one line per variant, and
    the whole-image pixel accuracy as the right-most point; then the validation mIoU of every
    CRF setting the search evaluated (``searches[model]["grid"]``, in evaluation order)."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig = Figure(figsize=(5.2 * len(models) * 2, 3.8))
    both = fig.subplots(1, 2 * len(models), squeeze=False)[0]
    axes, search_axes = both[0::2], both[1::2]
    cmap = matplotlib.colormaps["tab10"]
    kinds = list(_SHORT)
    for ax, m in zip(axes, models):
        for r in (r for r in rows if r["model"] == m):
            ys = [r["trimap_accuracy"][str(w)] for w in widths] + [r["pixel_accuracy"]]
            ax.plot(range(len(ys)), ys, marker="o", ms=3, label=_SHORT[r["variant"]],
                    color=cmap(kinds.index(r["variant"])),
                    ls="--" if r["variant"].startswith("tuned") else "-")
        ax.set_xticks(range(len(widths) + 1), [str(w) for w in widths] + ["all"])
        ax.set_xlabel("trimap band half-width (pixels)")
        ax.set_ylabel("pixel accuracy in the band")
        ax.set_title(m, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax, m in zip(search_axes, models):
        grid = searches[m]["grid"]
        best = searches[m]["best"]
        labels = [f"w={g['bilateral_weight']:g} α={g['position_sigma']:g} "
                  f"β={g['colour_sigma']:g}" for g in grid]
        colours = ["tab:red" if all(g[k] == best[k] for k in best) else "tab:blue"
                   for g in grid]
        ax.barh(range(len(grid)), [g["val_miou"] for g in grid], color=colours)
        ax.axvline(searches[m]["val_miou_without_crf"], color="k", ls="--", lw=1,
                   label="no CRF")
        ax.set_yticks(range(len(grid)), labels, fontsize=6)
        ax.invert_yaxis()
        ax.set_xlabel("validation mIoU")
        ax.set_title(f"{m}: CRF settings in search order (red: chosen)", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
