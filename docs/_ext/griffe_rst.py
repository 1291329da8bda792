"""Griffe extension: render the Sphinx-flavoured numpydoc of fairnoise in MkDocs.

The docstrings follow scikit-learn's numpydoc conventions, with reStructuredText roles
and directives. mkdocstrings renders Markdown, so before rendering this extension turns

* ``:math:`x``` into ``$x$`` and ``.. math::`` blocks into ``$$ ... $$`` (arithmatex);
* ``:class:`~fairnoise.X```, ``:func:``, ``:meth:``, ``:attr:``, ``:mod:``, ... into
  cross-references (``[X][fairnoise.X]``) when the target is a public fairnoise object,
  resolved like Sphinx does (absolute, then relative to the current module, then the
  package), and into inline code otherwise (scikit-learn, pandas, private helpers);
* the body of ``See Also`` sections into a bullet list of cross-references;
* ``text::`` before a literal block into ``text:`` (the indented block is code already).

It also reads the Sphinx-style ``#:`` comment above an attribute that has no docstring
as that attribute's docstring (griffe only knows string literals after the assignment),
so that constants documented that way (``SKOPS_TRUSTED_TYPES``, the ``Encoder``
protocol's attributes) reach the reference: mkdocstrings renders only documented members.

A cross-reference whose target is not documented fails the strict build (mkdocs-autorefs
reports it), which is how broken references in docstrings are caught.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(class|func|meth|attr|mod|data|obj|exc|const):`([^`]+)`")
_MATH = re.compile(r":math:`([^`]+)`")
_SECTION = re.compile(r"^(?P<title>[A-Z][A-Za-z ]+)\n(?P<rule>-{3,})$", re.MULTILINE)


def _split_target(text: str) -> tuple[str, str]:
    """``"Title <target>"`` / ``"~a.b.C"`` / ``"a.b.C"`` → (shown text, target)."""
    explicit = re.fullmatch(r"(.+?)\s*<([^>]+)>", text.strip())
    if explicit:
        return explicit.group(1), explicit.group(2).lstrip("~!")
    target = text.strip().lstrip("!")
    if target.startswith("~"):
        target = target[1:]
        return target.split(".")[-1], target
    return target, target


@cache
def _source_lines(filepath: str) -> list[str]:
    return Path(filepath).read_text(encoding="utf-8").splitlines()


def _comment_above(obj: griffe.Object) -> str | None:
    """The ``#:`` comment lines just above ``obj``'s first line, as one text, or None."""
    if obj.lineno is None or not isinstance(obj.filepath, Path):
        return None
    lines, i, text = _source_lines(str(obj.filepath)), obj.lineno - 2, []
    while i >= 0 and lines[i].strip().startswith("#:"):
        text.insert(0, lines[i].strip()[2:].strip())
        i -= 1
    return " ".join(text) or None


class RstToMarkdown(griffe.Extension):
    """Rewrite reStructuredText roles and directives of docstrings as Markdown."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.name != "fairnoise":
            return
        self._package = pkg
        # first every docstring, so that references to `#:`-documented attributes resolve
        self._attach_comments(pkg, parser=pkg.docstring.parser if pkg.docstring else None)
        self._visit(pkg)

    def _attach_comments(self, obj: griffe.Object, parser: Any) -> None:
        if obj.is_attribute and obj.docstring is None:
            comment = _comment_above(obj)
            if comment is not None:
                obj.docstring = griffe.Docstring(comment, lineno=obj.lineno, parent=obj,
                                                 parser=parser)
        for member in obj.members.values():
            if not member.is_alias:
                self._attach_comments(member, parser)

    def _visit(self, obj: griffe.Object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = self._convert(obj.docstring.value, obj)
        for member in obj.members.values():
            if not member.is_alias:
                self._visit(member)

    # -- resolution --------------------------------------------------------------------
    def _exists(self, path: str) -> bool:
        if not path.startswith("fairnoise") or any(p.startswith("_") for p in path.split(".")
                                                   if p != "__init__"):
            return False
        try:
            target = self._package[path.removeprefix("fairnoise").lstrip(".")]
            if target.is_alias:
                target = target.final_target
        except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            return False
        # mkdocstrings renders (and anchors) only members with a docstring
        return target.is_module or bool(target.docstring and target.docstring.value.strip())

    def _resolve(self, target: str, obj: griffe.Object) -> str | None:
        module = obj if obj.is_module else obj.module
        owner = obj if obj.is_class else (obj.parent if obj.parent is not None else module)
        candidates = [target]
        if not target.startswith("fairnoise"):
            candidates += [f"{owner.path}.{target}", f"{module.path}.{target}",
                           f"fairnoise.{target}"]
        return next((c for c in candidates if self._exists(c)), None)

    # -- conversion --------------------------------------------------------------------
    def _role(self, match: re.Match, obj: griffe.Object) -> str:
        shown, target = _split_target(match.group(2))
        resolved = self._resolve(target, obj)
        if match.group(1) in ("func", "meth") and not shown.endswith(")"):
            shown += "()"
        return f"[`{shown}`][{resolved}]" if resolved else f"`{shown}`"

    def _see_also(self, body: str, obj: griffe.Object) -> str:
        """numpydoc's ``name : description`` lines as a bullet list of references."""
        items: list[str] = []
        for line in body.splitlines():
            if not line.strip():
                continue
            if line.startswith((" ", "\t")) and items:
                items[-1] += " " + line.strip()
                continue
            name, _, text = line.partition(":")
            shown, target = _split_target(name.strip())
            resolved = self._resolve(target, obj)
            ref = f"[`{shown}`][{resolved}]" if resolved else f"`{shown}`"
            items.append(f"- {ref}" + (f": {text.strip()}" if text.strip() else ""))
        return "\n".join(items)

    def _convert(self, text: str, obj: griffe.Object) -> str:
        text = self._math_blocks(text)
        # an RST literal block ("text::" + indented lines) is a Markdown code block already
        text = re.sub(r"(?<=\S)::\n\n(?=[ \t]+\S)", ":\n\n", text)
        text = _MATH.sub(lambda m: f"${m.group(1).strip()}$", text)
        text = _ROLE.sub(lambda m: self._role(m, obj), text)
        return self._sections(text, obj)

    def _sections(self, text: str, obj: griffe.Object) -> str:
        """Rewrite the body of ``See Also`` (griffe shows it as an admonition, body as is)."""
        matches = list(_SECTION.finditer(text))
        for i, match in enumerate(matches):
            if match.group("title").strip() != "See Also":
                continue
            end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
            body = text[match.end():end].strip("\n")
            replacement = f"{self._see_also(body, obj)}\n\n"
            return text[:match.end()] + "\n" + replacement + text[end:]
        return text

    @staticmethod
    def _math_blocks(text: str) -> str:
        lines = text.splitlines()
        out: list[str] = []
        i = 0
        while i < len(lines):
            line = lines[i]
            directive = re.match(r"^(\s*)\.\. math::\s*(.*)$", line)
            if not directive:
                out.append(line)
                i += 1
                continue
            indent, first = directive.groups()
            body = [first] if first else []
            i += 1
            while i < len(lines) and (not lines[i].strip()
                                      or len(lines[i]) - len(lines[i].lstrip())
                                      > len(indent)):
                body.append(lines[i].strip())
                i += 1
            body = [b for b in body if b]
            out += [f"{indent}$$", *(f"{indent}{b}" for b in body), f"{indent}$$", ""]
        return "\n".join(out)
