"""experiments/show_data: the grid PNG, through run() and through main.py's flags."""
import os
import subprocess
import sys

import pytest

from experiments.show_data import run as show_data
from experiments.show_data.configs import default
from tests.subprocess_env import subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("task,semantic", [("detection", False), ("multi_keypoints", True)])
def test_run_writes_the_grid(tmp_path, task, semantic):
    cfg = default.get_config()
    cfg.data.task, cfg.data.num_examples, cfg.data.image_size = task, 2, 32
    cfg.semantic = semantic
    path = show_data.run(cfg, str(tmp_path / "out"))
    assert path == str(tmp_path / "out" / "shapes_grid.png")
    with open(path, "rb") as f:
        assert f.read(8) == PNG
    cfg.data.num_examples = 0
    with pytest.raises(ValueError, match="config.data.num_examples"):
        show_data.run(cfg, str(tmp_path))


def test_main_flags(tmp_path):
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "experiments", "show_data", "main.py"),
         f"--workdir={tmp_path}", "--config.data.task=keypoints", "--config.data.num_examples=2",
         "--config.data.image_size=32"],
        env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "wrote" in done.stdout and "2 keypoints images of 32x32" in done.stdout
    assert (tmp_path / "shapes_grid.png").read_bytes()[:8] == PNG
