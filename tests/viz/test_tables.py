"""markdown_table: the exact text, alignment rules and the errors naming the argument."""
import pytest

from vai_jax.viz.tables import markdown_table


def test_markdown_table_text():
    got = markdown_table(["model", "params"], [["a", 1], ("b", 2.5)])
    assert got == "| model | params |\n|---|---|\n| a | 1 |\n| b | 2.5 |"


def test_markdown_table_align_and_empty_body():
    assert markdown_table(["x", "y", "z"], [], align="lrc") == "| x | y | z |\n|---|---:|:---:|"


def test_markdown_table_errors():
    with pytest.raises(ValueError, match=r"rows\[1\] has 1 cells"):
        markdown_table(["a", "b"], [[1, 2], [3]])
    with pytest.raises(ValueError, match="align"):
        markdown_table(["a", "b"], [], align="l")
    with pytest.raises(ValueError, match="align"):
        markdown_table(["a"], [], align="x")
