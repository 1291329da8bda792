"""fairnoise._markdown: tables that render, in the reports, the demo and the committed files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairnoise._markdown import markdown_table

markdown = pytest.importorskip("markdown", reason="python-markdown renders the docs")

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = sorted([*ROOT.glob("docs/**/*.md"), *ROOT.glob("benchmarks/results/*.md"),
                    ROOT / "README.md"])


def _render(text: str) -> str:
    return markdown.markdown(text, extensions=["tables"])


def _cells(html: str) -> list[list[str]]:
    rows = re.findall(r"<tr>(.*?)</tr>", html, re.DOTALL)
    return [re.findall(r"<t[hd]>(.*?)</t[hd]>", row, re.DOTALL) for row in rows]


def _tables(text: str) -> list[str]:
    """Every block of lines starting with ``|`` outside code fences."""
    blocks, current, fenced = [], [], False
    for line in [*text.splitlines(), ""]:
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("|"):
            current.append(line)
        elif current:
            blocks.append("\n".join(current))
            current = []
    return blocks


def test_a_pipe_in_a_header_renders_as_text_in_a_table():
    method = pd.Index(["ERM"], name="method")
    frame = pd.DataFrame({"EO gap": [0.1], "|1-DI|": [0.25]}, index=method)
    html = _render(markdown_table(frame))
    assert "<table>" in html
    assert _cells(html) == [["method", "EO gap", "|1-DI|"], ["ERM", "0.100", "0.250"]]


def test_pipes_backslashes_and_line_breaks_in_cells_stay_in_their_cell():
    frame = pd.DataFrame({"label": ["a|b", "ends in \\", "two\nlines"], "value": [1, 2, 3]})
    assert _cells(_render(markdown_table(frame)))[1:] == [
        ["0", "a|b", "1"], ["1", "ends in \\", "2"], ["2", "two lines", "3"]]


def test_every_index_level_is_a_column_and_numbers_keep_their_kind():
    index = pd.MultiIndex.from_tuples([("F", "<60"), ("M", ">=60")], names=["sex", "age"])
    frame = pd.DataFrame({"n": [3, 4], "auc": [0.5, np.nan]}, index=index)
    assert markdown_table(frame, digits=2, na_rep="-").splitlines() == [
        "| sex | age | n | auc |", "|---|---|---|---|", "| F | <60 | 3 | 0.50 |",
        "| M | >=60 | 4 | - |"]


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_table_in_the_committed_markdown_renders(path):
    for table in _tables(path.read_text(encoding="utf-8")):
        cells = _cells(_render(table))
        assert len(cells) == table.count("\n"), f"not a table: {table.splitlines()[0]}"
        assert len({len(row) for row in cells}) == 1, f"ragged: {table.splitlines()[0]}"
