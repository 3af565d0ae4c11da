"""Every ```python block of README.md runs as written (in a fresh interpreter, as a reader would
paste it), so the documented library examples cannot break silently. ```py blocks need files
the reader downloads first (pretrained checkpoints): they are compiled, and every name they use
from ``weights`` must exist."""
import os
import re
import subprocess
import sys

import pytest

from tests.subprocess_env import subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _blocks(language: str) -> list[str]:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def _python_blocks() -> list[str]:
    return _blocks("python")


def test_readme_has_python_examples():
    assert len(_python_blocks()) >= 1


@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_readme_python_block_runs(index, tmp_path):
    code = _python_blocks()[index]
    # One device, as a reader has; the test run's compile-time flags kept (tests/conftest.py).
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"README block {index} failed:\n{code}\n{done.stderr[-3000:]}"


def test_readme_download_blocks_compile_and_name_real_functions():
    from vai_jax import weights

    blocks = _blocks("py")
    assert blocks
    for code in blocks:
        compile(code, "<README>", "exec")
        for name in re.findall(r"weights\.(\w+)", code):
            assert hasattr(weights, name), name
