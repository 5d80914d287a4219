"""Projected business impact of shipping: a change per period with its interval.

Money is money: every amount carries its currency (the one asked for, else the events'
stored currency, else ``¤`` for "not recorded") and follows the one formatting rule of
:mod:`abkit.report.format` (three significant digits, K/M/B from 10,000).
"""

from __future__ import annotations

from typing import Any

from abkit.report import format as F
from abkit.report.blocks import HTMLBlock, Section, attr, e
from abkit.report.model import Impact, ReportModel


def fmt_impact(imp: Impact, value: Any) -> str:
    if imp.is_money:
        return F.fmt_money(value, imp.currency, signed=True)
    return f"{F.fmt_amount(value, signed=True)} {imp.unit}".rstrip()


_WHEN = {
    "roll back": "if shipped anyway (not recommended)",
    "keep running": "if shipped now (not yet conclusive)",
    "cannot finish": "if shipped now (not conclusive)",
    "no detectable effect": "if shipped (no effect was detected)",
}


def _card(imp: Impact, state: str) -> str:
    # Shipping against the recommendation is still a question people ask; say so plainly.
    when = _WHEN.get(state, "if shipped")
    lo = imp.interval.lower if imp.interval else None
    hi = imp.interval.upper if imp.interval else None
    interval = F.fmt_interval(lo, hi, lambda v: fmt_impact(imp, v))
    unit = "currency" if imp.is_money else "number"
    return (
        f'<div class="abkit-kpi" data-impact-estimate="{attr(imp.estimate)}" '
        f'data-impact-low="{attr(lo)}" data-impact-high="{attr(hi)}">'
        f'<div class="label">Projected change per {e(imp.period)} {e(when)} '
        f"(from {e(imp.metric)})</div>"
        f'<div class="value" data-unit="{unit}">{e(fmt_impact(imp, imp.estimate))}</div>'
        f'<div class="interval">interval <span data-unit="{unit}">{e(interval)}</span></div>'
        f'<div class="note">{e(imp.assumption)}</div></div>'
    )


def impact(model: ReportModel) -> HTMLBlock:
    """One card per projection, each with its interval."""
    if not model.impact:
        return HTMLBlock(
            "<p>No business impact was projected: give the analysis the traffic and the "
            "value of a conversion to see one.</p>"
        )
    state = model.decision.state
    return HTMLBlock(
        '<div class="abkit-kpis">'
        + "".join(_card(imp, state) for imp in model.impact[:3])
        + "</div>"
    )


def _heading(model: ReportModel) -> str:
    if model.decision.state == "roll back":
        change = model.impact[0].estimate if model.impact else None
        if change is not None and change < 0:  # shipping would have cost money
            return "What rolling back avoided: projected impact if shipped anyway"
        return "What was given up: projected impact if shipped anyway"
    return "Projected business impact"


SECTION = Section("impact", _heading, impact)
