"""First-layer filter extraction, display normalisation and the image-grid writers."""
import numpy as np
import pytest
from tests.analysis.analysis_testing import random_variables

from vai_jax.analysis.filters import conv_kernels, filter_images, first_layer_kernel
from vai_jax.analysis.plain_cnn import PlainCNN
from vai_jax.viz.grids import save_heatmap_grid, save_image_grid, save_rows_grid
from vai_jax.viz.lines import save_line_plot


def test_first_layer_is_the_image_conv():
    model = PlainCNN(widths=(5, 7), pool_after=(1,), num_classes=3)
    v = random_variables(model, (1, 16, 16, 3))
    kernels = conv_kernels(v)
    assert list(kernels) == ["conv1/conv", "conv2/conv"]
    name, k = first_layer_kernel(v["params"])
    assert name == "conv1/conv" and k.shape == (3, 3, 3, 5)
    assert first_layer_kernel(v, "conv2/conv")[1].shape == (3, 3, 5, 7)
    with pytest.raises(ValueError, match="no convolution named 'fc'.*conv1/conv, conv2/conv"):
        first_layer_kernel(v, "fc")
    # Sorted trees (jit outputs, checkpoints) put "stage1" before "stem": the image conv is
    # still found by its 3 input channels.
    tree = {"stage1": {"conv": {"kernel": np.zeros((3, 3, 8, 8))}},
            "stem": {"conv": {"kernel": np.zeros((7, 7, 3, 8))}}}
    assert first_layer_kernel(tree)[0] == "stem/conv"


def test_filter_images_normalisation():
    k = np.zeros((2, 2, 3, 2))
    k[0, 0, 0, 0] = 2.0   # filter 0: one positive weight
    k[1, 1, 2, 0] = -1.0  #           and a negative one at half the magnitude
    k[0, 1, 1, 1] = 0.5   # filter 1
    img = filter_images(k)
    assert img.shape == (2, 2, 2, 3) and img.dtype == np.float32
    assert img[0, 0, 0, 0] == 1.0 and img[0, 1, 1, 2] == 0.25 and img[0, 0, 1, 0] == 0.5
    assert img[1, 0, 1, 1] == 1.0  # each filter scaled by its own max
    shared = filter_images(k, normalise="all")
    assert shared[1, 0, 1, 1] == pytest.approx(0.5 + 0.5 * 0.5 / 2.0)
    grey = filter_images(np.ones((3, 3, 4, 2)))
    assert grey.shape == (2, 3, 3, 3) and np.all(grey == 1.0)


def test_grids_write_png(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(5, 8, 8, 3)).astype(np.float32)
    for path in (save_image_grid(images, str(tmp_path / "a.png"), titles=list("abcde")),
                 save_rows_grid({"l1": images[:2], "l2": list(images[:3])},
                                str(tmp_path / "b.png")),
                 save_heatmap_grid(images[:2], rng.normal(size=(2, 3, 3)),
                                   str(tmp_path / "c.png")),
                 save_line_plot({"x": ([0, 1], [0.2, 0.4])}, str(tmp_path / "d.png"),
                                xlabel="layer", ylabel="acc", xticklabels=["a", "b"],
                                hline=(0.1, "chance"))):
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="equal lengths"):
        save_heatmap_grid(images[:2], rng.normal(size=(3, 3, 3)), str(tmp_path / "e.png"))
