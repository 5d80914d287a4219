"""Line numbers of field paths in a registry file's text (TOML or JSON), stdlib only.

The parsers (``json``, ``tomllib``) return plain data without positions, so after a file
has parsed, :func:`line_map` scans its text once more and records the line on which each
field path starts: ``("experiments", 0, "variants", 1, "weight")``, array elements by
index, TOML array-of-tables headers counted the way TOML resolves them. The scan only
runs when a located message is needed (an error), so valid files pay nothing for it.

The scanner assumes text that its parser has accepted; on anything else it stops early
and :class:`FieldLocator` falls back to the longest recorded prefix of a path.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from json import JSONDecoder

FieldPath = tuple[str | int, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_JSON_SCALAR = re.compile(r"-?(?:\d+)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null")
_PATH_PART = re.compile(r"\[(\d+)\]|\.?([^.\[\]]+)")
_DECODER = JSONDecoder()


def scanstring(text: str, start: int) -> tuple[str, int]:
    """A double-quoted string whose opening quote is at ``start - 1``: (value, end)."""
    value, end = _DECODER.raw_decode(text, start - 1)
    if not isinstance(value, str):
        raise ValueError("not a string")
    return value, end


def parse_field_path(path: str | Sequence[str | int]) -> FieldPath:
    """``"metrics.guardrails[0].margin"`` -> ``("metrics", "guardrails", 0, "margin")``."""
    if not isinstance(path, str):
        return tuple(path)
    out: list[str | int] = []
    for index, name in _PATH_PART.findall(path):
        out.append(int(index) if index else name)
    return tuple(out)


def format_field_path(path: Sequence[str | int]) -> str:
    """The inverse of :func:`parse_field_path`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class _Lines:
    def __init__(self, text: str) -> None:
        self.starts = [0, *(m.end() for m in re.finditer("\n", text))]

    def __call__(self, offset: int) -> int:
        return bisect_right(self.starts, offset)


def line_map(text: str, fmt: str) -> dict[FieldPath, int]:
    """Path -> 1-based line of every key and array element in ``text``."""
    out: dict[FieldPath, int] = {}
    try:
        if fmt == "json":
            _scan_json(text, out)
        else:
            _TomlScanner(text, out).run()
    except (IndexError, ValueError):
        pass  # text the parser refused: keep what was recorded so far
    return out


def _scan_json(text: str, out: dict[FieldPath, int]) -> None:
    """Iterative (no recursion on deep nesting) walk over JSON text recording positions."""
    line = _Lines(text)
    n = len(text)
    ws = re.compile(r"[ \t\r\n]*")

    def skip(i: int) -> int:
        m = ws.match(text, i)
        return m.end() if m else i

    # frames: [kind, path, next array index]
    stack: list[list] = []
    i = skip(0)
    path: FieldPath = ()
    expect_value = True
    while i < n:
        if expect_value:
            out.setdefault(path, line(i))
            ch = text[i]
            if ch == "{":
                stack.append(["obj", path, 0])
                i = skip(i + 1)
                if text[i] == "}":
                    stack.pop()
                    i = skip(i + 1)
                    expect_value = False
                    continue
                key, i = scanstring(text, i + 1)
                path = (*stack[-1][1], key)
                out.setdefault(path, line(i))
                i = skip(skip(i) + 1)  # past ':'
                continue
            if ch == "[":
                stack.append(["arr", path, 0])
                i = skip(i + 1)
                if text[i] == "]":
                    stack.pop()
                    i = skip(i + 1)
                    expect_value = False
                    continue
                path = (*path, 0)
                continue
            if ch == '"':
                _, i = scanstring(text, i + 1)
            else:
                m = _JSON_SCALAR.match(text, i)
                if m is None:
                    return
                i = m.end()
            i = skip(i)
            expect_value = False
            continue
        if not stack:
            return
        frame = stack[-1]
        ch = text[i]
        if ch == ",":
            i = skip(i + 1)
            if frame[0] == "obj":
                key, i = scanstring(text, i + 1)
                path = (*frame[1], key)
                out.setdefault(path, line(i))
                i = skip(skip(i) + 1)
            else:
                frame[2] += 1
                path = (*frame[1], frame[2])
            expect_value = True
        elif ch in "}]":
            stack.pop()
            i = skip(i + 1)
        else:
            return


class _TomlScanner:
    """Records the line of each key, table header and array element of TOML text."""

    def __init__(self, text: str, out: dict[FieldPath, int]) -> None:
        self.text = text
        self.n = len(text)
        self.out = out
        self.line = _Lines(text)
        self.aot: dict[FieldPath, int] = {}  # array-of-tables path -> elements so far

    def run(self) -> None:
        text, i = self.text, 0
        table: FieldPath = ()
        while True:
            i = self._skip_blank(i, newlines=True)
            if i >= self.n:
                return
            if text[i] == "[":
                is_aot = text.startswith("[[", i)
                parts, i = self._key(i + (2 if is_aot else 1))
                i = text.index("]]" if is_aot else "]", i) + (2 if is_aot else 1)
                table = self._resolve(parts, is_aot)
                self.out.setdefault(table, self.line(i - 1))
                continue
            start = i
            parts, i = self._key(i)
            i = self._skip_blank(i)
            if text[i] != "=":
                return
            path = table
            for part in parts:
                path = (*path, part)
                self.out.setdefault(path, self.line(start))
            i = self._value(self._skip_blank(i + 1), path)

    def _resolve(self, parts: list[str], is_aot: bool) -> FieldPath:
        path: FieldPath = ()
        for pos, part in enumerate(parts):
            path = (*path, part)
            last = pos == len(parts) - 1
            if last and is_aot:
                count = self.aot.get(path, 0)
                self.aot[path] = count + 1
                path = (*path, count)
            elif path in self.aot:
                path = (*path, self.aot[path] - 1)
        return path

    def _skip_blank(self, i: int, newlines: bool = False) -> int:
        text, n = self.text, self.n
        while i < n:
            ch = text[i]
            if ch in " \t" or (newlines and ch in "\r\n"):
                i += 1
            elif ch == "#":
                j = text.find("\n", i)
                i = n if j < 0 else j
            else:
                break
        return i

    def _key(self, i: int) -> tuple[list[str], int]:
        text = self.text
        parts: list[str] = []
        while True:
            i = self._skip_blank(i)
            ch = text[i]
            if ch in "\"'":
                value, i = self._string(i)
                parts.append(value)
            else:
                m = _BARE_KEY.match(text, i)
                if m is None:
                    raise ValueError("not a key")
                parts.append(m.group())
                i = m.end()
            i = self._skip_blank(i)
            if i < self.n and text[i] == ".":
                i += 1
                continue
            return parts, i

    def _string(self, i: int) -> tuple[str, int]:
        text = self.text
        quote = text[i]
        if text.startswith(quote * 3, i):
            end = text.index(quote * 3, i + 3)
            while text.startswith(quote, end + 3):  # up to two quotes may close the string
                end += 1
            return text[i + 3 : end], end + 3
        if quote == "'":
            end = text.index("'", i + 1)
            return text[i + 1 : end], end + 1
        return scanstring(text, i + 1)

    def _value(self, i: int, path: FieldPath) -> int:
        """Scan one value starting at ``i``; record nested paths; return the end offset."""
        text = self.text
        ch = text[i]
        if ch in "\"'":
            return self._string(i)[1]
        if ch == "[":
            i = self._skip_blank(i + 1, newlines=True)
            index = 0
            while text[i] != "]":
                self.out.setdefault((*path, index), self.line(i))
                i = self._skip_blank(self._value(i, (*path, index)), newlines=True)
                if text[i] == ",":
                    i = self._skip_blank(i + 1, newlines=True)
                index += 1
            return i + 1
        if ch == "{":
            i = self._skip_blank(i + 1)
            while text[i] != "}":
                start = i
                parts, i = self._key(i)
                sub = path
                for part in parts:
                    sub = (*sub, part)
                    self.out.setdefault(sub, self.line(start))
                i = self._value(self._skip_blank(self._skip_blank(i) + 1), sub)
                i = self._skip_blank(i)
                if text[i] == ",":
                    i = self._skip_blank(i + 1)
            return i + 1
        m = re.compile(r"[^,\]}\s#]+(?: [0-9:.+Zz-]+)?").match(text, i)  # "1979-05-27 07:32Z"
        if m is None:
            raise ValueError("not a value")
        return m.end()


class FieldLocator:
    """Line of a field path in one file; built on first use (errors only)."""

    def __init__(self, text: str | None, fmt: str) -> None:
        self._text = text
        self._fmt = fmt
        self._map: dict[FieldPath, int] | None = None

    @property
    def lines(self) -> dict[FieldPath, int]:
        if self._map is None:
            self._map = line_map(self._text, self._fmt) if self._text else {}
        return self._map

    def line(self, path: Sequence[str | int]) -> int | None:
        """The line of ``path``, else of its longest recorded prefix (None when none is)."""
        lines = self.lines
        p = tuple(path)
        while p:
            if p in lines:
                return lines[p]
            p = p[:-1]
        return None

    def find(self, prefix: Sequence[str | int], name: str) -> int | None:
        """The first line, under ``prefix``, of a key called ``name`` at any depth (for
        messages that give a field name without its full path)."""
        pre = tuple(prefix)
        k = len(pre)
        hits = [
            line for p, line in self.lines.items() if len(p) > k and p[:k] == pre and p[-1] == name
        ]
        return min(hits) if hits else None
