"""Run the recipes of the documentation as tests, so a documented recipe cannot rot.

A recipe is a fenced code block of a Markdown file preceded by ``<!-- recipe: NAME -->``.
Its top-level constants (``SPARK = "sc://..."``, ``LAKE = "s3a://..."``) are what a reader
changes for their site; a test gives them its own values with :func:`with_values` and runs
the rest of the block exactly as written.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

_FENCE = re.compile(r"^```(\w*)\s*$")


def recipe(path: str | Path, name: str) -> str:
    """The code of the block marked ``<!-- recipe: name -->`` in ``path`` (exactly one)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    marker = f"<!-- recipe: {name} -->"
    found = [i for i, line in enumerate(lines) if line.strip() == marker]
    if len(found) != 1:
        raise LookupError(f"{path}: {len(found)} blocks marked {marker!r}, expected one")
    start = found[0] + 1
    if start >= len(lines) or not _FENCE.match(lines[start]):
        raise LookupError(f"{path}: {marker!r} is not followed by a code fence")
    end = start + 1
    while end < len(lines) and lines[end].strip() != "```":
        end += 1
    return "\n".join(lines[start + 1 : end]) + "\n"


def _constant(text: str) -> Callable[[re.Match[str]], str]:
    return lambda _: text


def with_values(code: str, **values: str) -> str:
    """``code`` with each top-level ``NAME = ...`` line (one per name) set to
    ``NAME = <expression>``; the trailing comment of the line is dropped."""
    for name, expression in values.items():
        pattern = re.compile(rf"^{re.escape(name)} = .*$", re.MULTILINE)
        if len(pattern.findall(code)) != 1:
            raise LookupError(f"the recipe has no single top-level line '{name} = ...'")
        # a replacement function, so a backslash in the expression stays a backslash
        code = pattern.sub(_constant(f"{name} = {expression}"), code)
    return code
