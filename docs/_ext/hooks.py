"""MkDocs hooks: pull result files into the documentation at build time.

* A page line ``<!-- include-results: benchmarks/results/*.md -->`` is replaced by every
  matching file (sorted by name), each heading demoted one level so that the files nest
  under the page's own sections, followed by the path it came from. The tables in the
  docs are then always the ones the benchmark scripts last wrote.
* A line ``<!-- include-file: docs/demo/table.txt -->`` is replaced by that file as it
  is (e.g. inside a code fence), each line indented like the marker.

Paths are relative to the folder of ``mkdocs.yml``; a missing file fails the build.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_MARKER = re.compile(r"^<!-- include-results: (?P<pattern>\S+) -->$", re.MULTILINE)
_FILE = re.compile(r"^(?P<indent>[ \t]*)<!-- include-file: (?P<path>\S+) -->$", re.MULTILINE)


def _demote(markdown: str) -> str:
    out, fenced = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        out.append("#" + line if not fenced and re.match(r"#{1,5} ", line) else line)
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    root = Path(config["config_file_path"]).parent

    def include(match: re.Match) -> str:
        paths = sorted(root.glob(match.group("pattern")))
        if not paths:
            return f"*No result files match `{match.group('pattern')}` yet.*"
        parts = []
        for path in paths:
            relative = path.relative_to(root).as_posix()
            parts.append(_demote(path.read_text(encoding="utf-8").strip())
                         + f"\n\n<small>From `{relative}`.</small>")
        return "\n\n".join(parts)

    def include_file(match: re.Match) -> str:
        path = root / match.group("path")
        if not path.is_file():
            raise FileNotFoundError(f"{page.file.src_uri} includes {path}, which does not exist")
        indent = match.group("indent")  # keeps an include inside a list item in the item
        return "\n".join(indent + line for line in
                         path.read_text(encoding="utf-8").rstrip("\n").splitlines())

    return _FILE.sub(include_file, _MARKER.sub(include, markdown))
