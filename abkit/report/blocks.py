"""The building blocks every report section shares: trusted HTML, chips, the section type.

A section is a :class:`Section`: a name, a heading (text, or a function of the model),
a ``render`` function from :class:`~abkit.report.model.ReportModel` to an
:class:`HTMLBlock` or a :class:`~abkit.report.plots.Plot`, and an optional ``applies``
predicate (a roll-back's harm section, segments only when asked for). Section modules
import this module and the model; :mod:`abkit.report.sections` lists them in display
order, so adding a section is one module plus one line there.

All text that came from a user (experiment key, description, hypothesis, owner, variant
names and payloads, metric names, notes) goes through :func:`html.escape`; numbers go
through :mod:`abkit.report.format`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from abkit.report.model import MetricRow, ReportModel
from abkit.report.plots import Plot

e = html.escape


@dataclass(frozen=True)
class HTMLBlock:
    """A fragment of trusted HTML (built here, with every user value escaped)."""

    html: str

    def _repr_html_(self) -> str:
        return self.html

    def __str__(self) -> str:
        return self.html

    def __repr__(self) -> str:
        # A notebook's text/plain fallback: the words, shortened, not the markup.
        words = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", self.html)).split())
        return words if len(words) <= 200 else words[:199] + "…"


Rendered = HTMLBlock | Plot


@dataclass(frozen=True)
class Section:
    """One part of a report (see the module docstring)."""

    name: str
    heading: str | Callable[[ReportModel], str]
    render: Callable[[ReportModel], Rendered]
    applies: Callable[[ReportModel], bool] = lambda model: True

    def title(self, model: ReportModel) -> str:
        return self.heading if isinstance(self.heading, str) else self.heading(model)


def attr(value: Any) -> str:
    """A value as an HTML data attribute (repr keeps every bit of a float)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return e(str(value), quote=True)


def chip(word: str, kind: str) -> str:
    """A status as a word and a colour (never colour alone)."""
    return f'<span class="chip chip-{e(kind, quote=True)}">{e(word)}</span>'


def significance_chip(row: MetricRow) -> str:
    """The scorecard's words: better / worse follow the metric's direction, so they agree
    with the forest plot's ▲/▼ markers."""
    if row.status != "ok":
        return chip("not enough data", "neutral")
    if not row.significant:
        return chip("not significant", "not-significant")
    if row.outcome == "better":
        return chip("significant: better", "significant-up")
    return chip("significant: worse", "significant-down")


def level(model: ReportModel) -> str:
    """``"95%"`` for ``alpha = 0.05``."""
    from abkit.report.format import fmt_pct

    return fmt_pct(1 - model.alpha, 0)


CORRECTION_NAMES = {
    "holm": "Holm",
    "bonferroni": "Bonferroni",
    "bh": "Benjamini-Hochberg",
}


def correction_name(model: ReportModel) -> str | None:
    if not model.correction or model.correction == "none":
        return None
    return CORRECTION_NAMES.get(model.correction.lower(), model.correction)
