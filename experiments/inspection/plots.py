"""The inspection experiment's figures (PNG files in the workdir), drawn with vai_jax.viz."""
from __future__ import annotations

import os

from vai_jax.analysis.filters import filter_images
from vai_jax.data.shapes import CLASS_NAMES, NUM_CLASSES
from vai_jax.viz.grids import save_heatmap_grid, save_image_grid, save_rows_grid
from vai_jax.viz.lines import save_line_plot


def patches_name(layer: str) -> str:
    return f"patches_{layer.replace('/', '_')}.png"


def filters(kernel, name: str, workdir: str) -> str:
    """First-layer kernels ``[kh, kw, 3, C]`` as RGB tiles: ``filters.png``."""
    return save_image_grid(filter_images(kernel), os.path.join(workdir, "filters.png"),
                           title=f"{name} filters {kernel.shape[0]}x{kernel.shape[1]}",
                           cell_inches=0.8)


def activation_max(rows: dict, workdir: str) -> str:
    """``rows = {layer: images, ..., "classes": images}``: ``activation_max.png``."""
    return save_rows_grid(
        rows, os.path.join(workdir, "activation_max.png"),
        col_titles={"classes": list(CLASS_NAMES)},
        title="activation maximisation (centre unit per channel; classes: logits)")


def top_patches(result, layer: str, k: int, workdir: str) -> str:
    """The top-``k`` test patches of each channel of ``layer``: ``patches_<layer>.png``."""
    rows = {f"ch {c}": list(result.crops[i]) for i, c in enumerate(result.channels)}
    return save_rows_grid(rows, os.path.join(workdir, patches_name(layer)),
                          title=f"{layer}: top-{k} test patches "
                                f"({result.field.size[0]} px receptive field)")


def probe(probes: dict, layers: list, workdir: str) -> str:
    """Linear-probe test accuracy against depth, one line per network: ``probe.png``."""
    return save_line_plot({k: (range(len(layers)), [100 * v[l].test_accuracy for l in layers])
                           for k, v in probes.items()}, os.path.join(workdir, "probe.png"),
                          xlabel="layer", ylabel="linear probe test accuracy (%)",
                          xticklabels=layers, hline=(100.0 / NUM_CLASSES, "chance"),
                          title="linear probes: accuracy vs depth")


def pruning(curve: dict, what: str, finetune_steps: int, workdir: str) -> str:
    """``curve = {label: [(params, accuracy %), ...]}`` on a log axis: ``pruning.png``."""
    return save_line_plot({k: tuple(zip(*v)) for k, v in curve.items()},
                          os.path.join(workdir, "pruning.png"), xlabel="parameters",
                          ylabel="test accuracy (%)", logx=True,
                          title=f"channel pruning of {what} ({finetune_steps} fine-tune steps)")


def evidence(images, maps, predicted, labels, workdir: str) -> str:
    """Images with the predicted class's evidence map over them: ``evidence.png``."""
    return save_heatmap_grid(images, maps, os.path.join(workdir, "evidence.png"),
                             titles=[f"{CLASS_NAMES[p]} (true {CLASS_NAMES[t]})"
                                     for p, t in zip(predicted, labels)])
