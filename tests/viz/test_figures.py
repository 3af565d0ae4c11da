"""viz.figures.save_figure: PNG written into new folders, dpi and tight cropping respected."""
from matplotlib.figure import Figure
from PIL import Image

from vai_jax.viz.figures import save_figure


def _figure():
    fig = Figure(figsize=(2.0, 1.0), dpi=50)
    fig.add_subplot(1, 1, 1).plot([0, 1], [1, 0])
    return fig


def test_png_in_new_folders_at_the_requested_dpi(tmp_path, capsys):
    path = tmp_path / "a" / "b" / "fig.png"
    assert save_figure(_figure(), str(path)) == str(path)
    assert Image.open(path).size == (100, 50)  # the figure's own dpi
    save_figure(_figure(), str(path), dpi=100, announce=True)
    assert Image.open(path).size == (200, 100)
    assert f"wrote {path}" in capsys.readouterr().out


def test_tight_crops_the_empty_margin(tmp_path):
    fig = Figure(figsize=(4.0, 4.0), dpi=50)
    fig.text(0.5, 0.5, "x")
    save_figure(fig, str(tmp_path / "t.png"), tight=True)
    w, h = Image.open(tmp_path / "t.png").size
    assert w < 200 and h < 200
