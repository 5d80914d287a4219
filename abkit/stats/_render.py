"""One way to show a result: ``to_dict`` (JSON-safe), ``to_frame`` and ``_repr_html_``.

Result dataclasses inherit :class:`ResultMixin`; lists of results render through
:class:`ResultTable`. pandas is imported only when a frame is asked for.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import fields, is_dataclass
from typing import Any


def json_safe(value: Any) -> Any:
    """Convert a value to plain JSON types; non-finite floats become None."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_safe(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):  # numpy scalar
        return json_safe(value.item())
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _format_cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:.4g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_format_cell(v) for v in value) + ")"
    return str(value)


def html_table(rows: Sequence[dict[str, Any]], caption: str | None = None) -> str:
    """A small, escaped HTML table of flat rows."""
    if not rows:
        return "<p><em>no results</em></p>"
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(_format_cell(r.get(c)))}</td>" for c in columns)
        + "</tr>"
        for r in rows
    )
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f'<table class="abkit-result">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


class ResultMixin:
    """Mixin for frozen result dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        return json_safe(self)

    def _flat_row(self) -> dict[str, Any]:
        """One flat row: an interval field (``ci`` or ``*_ci``) becomes two columns,
        ``<name>_lower`` and ``<name>_upper``, so every result's frame has one shape."""
        row: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name == "ci" or f.name.endswith("_ci"):
                lower, upper = value if value is not None else (None, None)
                row[f"{f.name}_lower"] = lower
                row[f"{f.name}_upper"] = upper
            else:
                row[f.name] = value
        return row

    def to_frame(self):  # type: ignore[no-untyped-def]
        import pandas as pd

        return pd.DataFrame([self._flat_row()])

    def _repr_html_(self) -> str:
        return html_table([self._flat_row()], caption=type(self).__name__)


class ResultTable:
    """An ordered collection of results that renders as one table."""

    def __init__(self, results: Iterable[ResultMixin], caption: str | None = None) -> None:
        self.results = list(results)
        self.caption = caption

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, index: int) -> ResultMixin:
        return self.results[index]

    def to_dict(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.results]

    def to_frame(self):  # type: ignore[no-untyped-def]
        import pandas as pd

        return pd.DataFrame([r._flat_row() for r in self.results])

    def _repr_html_(self) -> str:
        return html_table([r._flat_row() for r in self.results], caption=self.caption)
