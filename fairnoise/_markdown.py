"""DataFrames as Markdown tables that render: the one writer the reports and the demo share.

GitHub-flavoured Markdown and python-markdown's ``tables`` extension split a row at every
unescaped ``|`` and end it at a line break, so a header such as ``|1-DI|`` or a label
with a pipe or a newline breaks the table into a paragraph of pipes. Every header and
cell is escaped here: ``|`` as ``\\|`` (shown as ``|``), ``\\`` as ``\\\\`` (so that a
label ending in a backslash does not escape the next delimiter), line breaks as spaces.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import pandas as pd

__all__ = ["markdown_table"]


def _escape(text: str) -> str:
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    return " ".join(text.splitlines())


def _cell(value: Any, digits: int, na_rep: str) -> str:
    if isinstance(value, numbers.Integral):  # counts (and booleans) as they are
        return str(value)
    if isinstance(value, numbers.Real):
        return na_rep if math.isnan(value) else f"{value:.{digits}f}"
    return na_rep if value is None else str(value)


def markdown_table(frame: pd.DataFrame, digits: int = 3, na_rep: str = "nan") -> str:
    """``frame`` as a Markdown table: one column per index level, then its columns.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table; a MultiIndex gives one leading column per level.
    digits : int, default=3
        Decimals shown for real numbers; integers are shown as they are.
    na_rep : str, default="nan"
        Text of a missing value.

    Returns
    -------
    str
        Header, delimiter row and one row per row of ``frame``, without a final newline.
    """
    header = ["" if name is None else str(name) for name in frame.index.names]
    header += [str(column) for column in frame.columns]
    rows = []
    for label, row in zip(frame.index, frame.itertuples(index=False), strict=True):
        label = label if isinstance(label, tuple) else (label,)
        rows.append([*map(str, label), *(_cell(v, digits, na_rep) for v in row)])
    lines = ["| " + " | ".join(map(_escape, header)) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(_escape, row)) + " |" for row in rows]
    return "\n".join(lines)
