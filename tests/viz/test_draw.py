"""Drawing of boxes, masks and keypoints: PNGs are written and pixels change where things are drawn."""
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imread

from vai_jax.data.shapes import ShapesDataset
from vai_jax.viz.draw import draw_boxes, draw_image, draw_keypoints, draw_masks, draw_record, save_grid

H = W = 32
SCALE = 8  # PNG pixels per image pixel


def _render(tmp_path, name, draw):
    """Axes filling a figure of exactly (H*SCALE, W*SCALE) PNG pixels; data units = image pixels."""
    dpi = 100
    fig = Figure(figsize=(W * SCALE / dpi, H * SCALE / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes([0, 0, 1, 1])
    draw_image(ax, np.full((H, W, 3), 128, np.uint8))
    draw(ax)
    path = tmp_path / f"{name}.png"
    fig.savefig(path, dpi=dpi)
    assert path.exists()
    png = imread(path)[..., :3]
    assert png.shape == (H * SCALE, W * SCALE, 3)
    return png


def test_boxes_change_pixels_on_their_edges_only(tmp_path):
    base = _render(tmp_path, "base", lambda ax: None)
    x1, y1, x2, y2 = 8.0, 10.0, 20.0, 24.0
    boxed = _render(tmp_path, "boxed", lambda ax: draw_boxes(ax, [[x1, y1, x2, y2]], classes=[1]))
    diff = np.abs(boxed - base).sum(-1) > 0.1
    rows = slice(int(y1 * SCALE) + 12, int(y2 * SCALE) - 12)  # away from the corners and the label
    for x in (x1, x2):  # the vertical edges are drawn where the box says
        assert diff[rows, int(x * SCALE) - 1: int(x * SCALE) + 2].any(axis=1).all()
    assert diff[int(y2 * SCALE) - 1: int(y2 * SCALE) + 2, int(x1 * SCALE) + 12: int(x2 * SCALE) - 12].any(0).all()
    # Inside the box and far outside it nothing changes.
    assert not diff[int(y1 * SCALE) + 24: int(y2 * SCALE) - 8, int(x1 * SCALE) + 8: int(x2 * SCALE) - 8].any()
    assert not diff[int(y2 * SCALE) + 8:, :].any()
    assert not diff[:, int(x2 * SCALE) + 8:].any()


def test_masks_and_keypoints_change_pixels_where_drawn(tmp_path):
    base = _render(tmp_path, "base", lambda ax: None)
    mask = np.zeros((1, H, W), bool)
    mask[0, 4:12, 20:28] = True
    masked = _render(tmp_path, "masked", lambda ax: draw_masks(ax, mask, classes=[2]))
    diff = np.abs(masked - base).sum(-1) > 0.05
    inside = diff[4 * SCALE + 2:12 * SCALE - 2, 20 * SCALE + 2:28 * SCALE - 2]
    outside = np.ones_like(diff)
    outside[4 * SCALE - 2:12 * SCALE + 2, 20 * SCALE - 2:28 * SCALE + 2] = False
    assert inside.all() and not diff[outside].any()

    kps = np.zeros((1, 6, 3), np.float32)
    kps[0, 0] = (5.5, 25.25, 2)   # visible
    kps[0, 1] = (25.0, 6.0, 1)    # occluded (hollow marker)
    kps[0, 2] = (16.0, 16.0, 0)   # not drawn
    drawn = _render(tmp_path, "kps", lambda ax: draw_keypoints(ax, kps, classes=[1]))
    diff = np.abs(drawn - base).sum(-1) > 0.1
    for x, y in ((5.5, 25.25), (25.0, 6.0)):
        r, c = int(y * SCALE), int(x * SCALE)
        assert diff[r - 3:r + 4, c - 3:c + 4].any()
    assert not diff[16 * SCALE - 4:16 * SCALE + 4, 16 * SCALE - 4:16 * SCALE + 4].any()


@pytest.mark.parametrize("task", ["classification", "detection"])
def test_save_grid_writes_png(tmp_path, task):
    ds = ShapesDataset(task, num_examples=5, image_size=32)
    records = [ds[i] for i in range(5)]
    path = save_grid(records, str(tmp_path / "sub" / "grid.png"), ncols=3, show_semantic=True)
    png = imread(path)
    assert png.shape[0] > 100 and png.shape[1] > 150
    assert png[..., :3].std() > 0.05  # not a blank canvas


def test_draw_record_with_scores_and_bad_input(tmp_path):
    rec = ShapesDataset("detection", num_examples=1, image_size=32)[0]
    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    draw_record(ax, rec, scores=np.linspace(0.9, 0.4, len(rec["valid"])))
    texts = [t.get_text() for t in ax.texts]
    assert any("0.90" in t for t in texts)
    with pytest.raises(ValueError, match="image"):
        draw_record(ax, {"label": np.int32(0)})
    with pytest.raises(ValueError, match="records"):
        save_grid([], str(tmp_path / "x.png"))
