"""The shared shape of every abkit result: one interval type and one way to display a result.

* :class:`Interval` is the only spelling of an interval in abkit objects: a frozen pair
  ``Interval(lower, upper)`` where ``None`` marks an unbounded end (a one-sided interval,
  a Fieller set that does not close). It unpacks as ``lo, hi = ci``.
* :class:`ResultMixin` gives a frozen result dataclass ``to_dict()`` (JSON-safe),
  ``to_frame()`` (one tidy row) and ``_repr_html_()`` (notebooks). In a frame an interval
  field (named ``ci``, ``<name>_ci`` or ``<name>_ci_adjusted``) becomes two columns,
  ``<field>_lower`` and ``<field>_upper``, so every result's frame has one shape; in
  ``to_dict()`` it is the list ``[lower, upper]``. A field declared with
  ``metadata={"display": False}`` (an object kept for computation) is left out of both.
* :class:`ResultTable` renders an ordered collection of results as one table.

This module imports only the standard library (pandas when a frame is asked for), so every
package may use it without depending on :mod:`abkit.stats`.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import Field, dataclass, fields, is_dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

if TYPE_CHECKING:  # pragma: no cover - pandas is imported only when a frame is asked for
    import pandas as pd

__all__ = ["Interval", "ResultMixin", "ResultTable", "html_table", "json_safe"]


@dataclass(frozen=True)
class Interval:
    """A closed interval ``[lower, upper]``; ``None`` marks an unbounded end.

    Confidence, credible and always-valid intervals, and the ends of a Fieller set, are all
    ``Interval`` objects. ``lo, hi = interval`` unpacks it. Use :meth:`of` to build one from
    numbers that may be infinite (an infinite end becomes ``None``).
    """

    lower: float | None
    upper: float | None

    @classmethod
    def of(cls, lower: float | None, upper: float | None) -> Interval:
        """An interval whose non-finite ends (``±inf``, NaN) become ``None`` (unbounded)."""
        return cls(_finite_or_none(lower), _finite_or_none(upper))

    def __iter__(self) -> Iterator[float | None]:
        yield self.lower
        yield self.upper

    @property
    def bounded(self) -> bool:
        """Both ends are finite numbers."""
        return self.lower is not None and self.upper is not None

    def contains(self, value: float) -> bool:
        """``lower <= value <= upper``, an unbounded end admitting everything on its side."""
        return (self.lower is None or self.lower <= value) and (
            self.upper is None or value <= self.upper
        )

    def intersect(self, other: Interval) -> Interval | None:
        """The common part of two intervals; ``None`` when they do not overlap."""
        lows = [x for x in (self.lower, other.lower) if x is not None]
        highs = [x for x in (self.upper, other.upper) if x is not None]
        lower = max(lows) if lows else None
        upper = min(highs) if highs else None
        if lower is not None and upper is not None and lower > upper:
            return None
        return Interval(lower, upper)

    def shift(self, offset: float) -> Interval:
        """The interval moved by ``offset`` (unbounded ends stay unbounded)."""
        return Interval(
            None if self.lower is None else self.lower + offset,
            None if self.upper is None else self.upper + offset,
        )

    def describe(self, digits: int = 4) -> str:
        """``[lo, hi]`` with ``-∞``/``∞`` for unbounded ends, ``digits`` significant digits."""
        lo = "-∞" if self.lower is None else f"{self.lower:.{digits}g}"
        hi = "∞" if self.upper is None else f"{self.upper:.{digits}g}"
        return f"[{lo}, {hi}]"


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def json_safe(value: Any) -> Any:
    """Convert a value to plain JSON types; non-finite floats become None.

    An :class:`Interval` becomes ``[lower, upper]``; any other dataclass a dict of its fields.
    """
    if isinstance(value, Interval):
        return [json_safe(value.lower), json_safe(value.upper)]
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_safe(getattr(value, f.name)) for f in fields(value) if _displayed(f)}
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
    if isinstance(value, Interval):
        return value.describe()
    if isinstance(value, tuple):
        return "(" + ", ".join(_format_cell(v) for v in value) + ")"
    return str(value)


def html_table(rows: Sequence[dict[str, Any]], caption: str | None = None) -> str:
    """A small, escaped HTML table of flat rows (the columns of the first row)."""
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


def _is_interval_field(name: str) -> bool:
    return re.search(r"(?:^|_)ci(?:_adjusted)?$", name) is not None


def _displayed(f: Field[Any]) -> bool:
    return bool(f.metadata.get("display", True))


class ResultMixin:
    """Display for frozen result dataclasses: ``to_dict``, ``to_frame``, ``_repr_html_``."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-safe (intervals as ``[lower, upper]``, non-finite as None)."""
        out: dict[str, Any] = json_safe(self)
        return out

    def _flat_row(self) -> dict[str, Any]:
        """One flat row: an interval field (``ci`` or ``*_ci``) becomes two columns,
        ``<name>_lower`` and ``<name>_upper``, whether or not it holds a value."""
        row: dict[str, Any] = {}
        for f in fields(self):
            if not _displayed(f):
                continue
            value = getattr(self, f.name)
            if _is_interval_field(f.name):
                lower, upper = value if value is not None else (None, None)
                row[f"{f.name}_lower"] = lower
                row[f"{f.name}_upper"] = upper
            else:
                row[f.name] = value
        return row

    def to_frame(self) -> pd.DataFrame:
        """A one-row frame of :meth:`_flat_row`."""
        import pandas as pd

        return pd.DataFrame([self._flat_row()])

    def _repr_html_(self) -> str:
        return html_table([self._flat_row()], caption=type(self).__name__)


R = TypeVar("R", bound=ResultMixin)


class ResultTable(Generic[R]):
    """An ordered collection of results that renders as one table."""

    def __init__(self, results: Iterable[R], caption: str | None = None) -> None:
        self.results = list(results)
        self.caption = caption

    def __iter__(self) -> Iterator[R]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, index: int) -> R:
        return self.results[index]

    def to_dict(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.results]

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([r._flat_row() for r in self.results])

    def _repr_html_(self) -> str:
        return html_table([r._flat_row() for r in self.results], caption=self.caption)
