"""The headline: the relative lift of the metric the decision rests on, with its interval.

Its chip agrees with the recommendation: a "significant" primary metric in a test that
must keep running (read too early, or cannot finish) says "not yet conclusive", never
"significant: better" under a keep-running banner.
"""

from __future__ import annotations

from abkit.report import format as F
from abkit.report.blocks import HTMLBlock, Section, attr, chip, e, level, significance_chip
from abkit.report.model import MetricRow, ReportModel


def headline_chip(model: ReportModel, row: MetricRow) -> str:
    """The scorecard's chip, unless the state says the evidence is not yet enough."""
    if model.decision.state in ("keep running", "cannot finish") and row.significant:
        return chip("not yet conclusive", "inconclusive")
    return significance_chip(row)


def evidence_words(row: MetricRow) -> str:
    if row.status != "ok":
        return row.note or "not enough data yet"
    if row.p_value is None and row.prob_beat_control is not None:
        return f"probability to beat control {F.fmt_prob(row.prob_beat_control)}"
    return ""


def _heading(model: ReportModel) -> str:
    if model.decision.state == "roll back" and model.harm:
        return "What it would have brought"
    return "Headline"


def headline(model: ReportModel) -> HTMLBlock:
    """The primary metric's relative lift, its interval, and the change in its own unit."""
    row = model.primary
    if row is None:
        return HTMLBlock("<p>No metric could be computed.</p>")
    interval = F.fmt_interval(
        row.rel_ci.lower if row.rel_ci else None,
        row.rel_ci.upper if row.rel_ci else None,
        F.fmt_pct,
        digits=1,
        signed=True,
    )
    extra = evidence_words(row)
    return HTMLBlock(
        '<div class="abkit-kpis">'
        f'<div class="abkit-kpi abkit-headline" data-metric="{e(row.metric, quote=True)}" '
        f'data-rel-lift="{attr(row.rel_lift)}" '
        f'data-rel-low="{attr(row.rel_ci.lower if row.rel_ci else None)}" '
        f'data-rel-high="{attr(row.rel_ci.upper if row.rel_ci else None)}">'
        f'<div class="label">{e(row.display_name)} ({e(row.variant)} vs control)</div>'
        f'<div class="value">{e(F.fmt_pct(row.rel_lift, 1, signed=True))}</div>'
        f'<div class="interval">{e(level(model))} interval {e(interval)} {headline_chip(model, row)}</div>'
        f'<div class="note"><span data-unit="{e(row.unit, quote=True)}">'
        f"{e(F.fmt_metric_value(row.control_mean, row.metric_type, unit=row.unit, currency=row.currency))} → "
        f"{e(F.fmt_metric_value(row.treatment_mean, row.metric_type, unit=row.unit, currency=row.currency))} "
        f"({e(F.fmt_abs_lift(row.abs_lift, row.metric_type, unit=row.unit, currency=row.currency))})</span>"
        + (f"; {e(extra)}" if extra else "")
        + "</div></div></div>"
    )


SECTION = Section("headline", _heading, headline)
