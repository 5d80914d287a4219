"""The report's two charts: every metric's lift (forest plot), and the cumulative lift of
the metric that decided (the harmed guardrail in a roll-back, else the primary metric)."""

from __future__ import annotations

import datetime as dt

from abkit.report.blocks import HTMLBlock, Rendered, Section, level
from abkit.report.model import ReportModel
from abkit.report.plots import ForestRow, cumulative_plot, forest_plot


def forest(model: ReportModel) -> Rendered:
    multi_arm = len({m.variant for m in model.metrics}) > 1
    rows = [
        ForestRow(
            label=r.display_name + (f" ({r.variant})" if multi_arm else ""),
            estimate=r.rel_lift,
            low=r.rel_ci.lower if r.rel_ci else None,
            high=r.rel_ci.upper if r.rel_ci else None,
            status=r.outcome,
            group=r.role,
        )
        for r in model.metrics
    ]
    return forest_plot(
        rows,
        title=f"Relative lift with {level(model)} interval, every metric",
        caption="Green ▲: a significant change in the good direction; vermillion ▼: in the "
        "bad direction; blue ●: not significant; an interval crossing zero is inconclusive.",
    )


def cumulative(model: ReportModel) -> Rendered:
    if not model.daily or not model.daily[0].dates:
        return HTMLBlock("<p>No daily series available.</p>")
    series = model.daily[0]
    dates = [dt.date.fromisoformat(d[:10]) for d in series.dates]
    return cumulative_plot(
        dates,
        series.rel_lift,
        series.low,
        series.high,
        title=f"Cumulative relative lift of {series.metric} ({series.variant} vs control)",
        caption="Each point uses all data up to that day. A line that has settled and a band "
        "that no longer shrinks much mean more days will change little.",
    )


def _cumulative_heading(model: ReportModel) -> str:
    metric = model.daily[0].metric if model.daily else "the primary metric"
    return f"Over time: {metric}"


FOREST = Section("forest", "", forest)
CUMULATIVE = Section("cumulative", _cumulative_heading, cumulative)
