"""Plot and table helpers for analysts: segments, every metric over time, sample ratio.

Used by the ``deep-dive`` template and handy in any notebook::

    from abkit.report import analyst
    analyst.segment_forest(result, "conversion_rate")
    analyst.cumulative_plots(result)
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from abkit.report import format as F
from abkit.report.blocks import HTMLBlock

if TYPE_CHECKING:
    from abkit.analysis.result import AnalysisResult
from abkit.report.model import ReportModel
from abkit.report.plots import ForestRow, Plot, bar_plot, cumulative_plot, forest_plot


def _outcome(r: Any, higher_is_better: bool = True) -> str:
    if getattr(r, "status", "ok") != "ok" or r.rel_lift is None:
        return "unknown"
    if not r.significant:
        return "neutral"
    lift = r.abs_lift if r.abs_lift is not None else r.rel_lift
    return "better" if (lift > 0) == higher_is_better else "worse"


def _direction(model: ReportModel | None, metric: str) -> bool:
    if model is not None:
        for row in model.metrics:
            if row.metric == metric:
                return row.higher_is_better
    return True


def segment_forest(
    result: AnalysisResult, metric: str | None = None, model: ReportModel | None = None
) -> list[Plot]:
    """A forest plot per (metric, segment dimension); ``metric=None``: every segmented metric."""
    metrics = [metric] if metric else list(dict.fromkeys(s.result.metric for s in result.segments))
    dims = sorted({s.segment for s in result.segments})
    plots = []
    for name in metrics:
        higher = _direction(model, name)
        for dim in dims:
            rows = [
                ForestRow(
                    label=f"{s.value} ({s.result.variant}, n="
                    f"{F.fmt_amount(s.result.n_control + s.result.n_treatment)})",
                    estimate=s.result.rel_lift,
                    low=s.result.rel_ci.lower if s.result.rel_ci else None,
                    high=s.result.rel_ci.upper if s.result.rel_ci else None,
                    status=_outcome(s.result, higher),
                )
                for s in result.segments
                if s.segment == dim and s.result.metric == name
            ]
            if rows:
                plots.append(
                    forest_plot(
                        rows,
                        title=f"{name.replace('_', ' ')} by {dim}",
                        caption="Segment p-values and colours are adjusted for the number of "
                        "segment values; treat segment differences as hypotheses to confirm.",
                    )
                )
    return plots


def segment_table(result: AnalysisResult) -> HTMLBlock:
    """Every segment readout, formatted."""
    if not result.segments:
        return HTMLBlock("<p>No segments were requested (parameter <code>segments</code>).</p>")
    e = html.escape
    body = []
    for s in result.segments:
        r = s.result
        lo = r.rel_ci.lower if r.rel_ci else None
        hi = r.rel_ci.upper if r.rel_ci else None
        p = r.p_value_adjusted if r.p_value_adjusted is not None else r.p_value
        body.append(
            f"<tr><td class='text'>{e(s.segment)}</td><td class='text'>{e(s.value)}</td>"
            f"<td class='text'>{e(r.metric or '')}</td><td class='text'>{e(r.variant or '')}</td>"
            f"<td>{e(F.fmt_int(r.n_control))}</td><td>{e(F.fmt_int(r.n_treatment))}</td>"
            f"<td>{e(F.fmt_pct(r.rel_lift, 1, signed=True))}</td>"
            f"<td>{e(F.fmt_interval(lo, hi, F.fmt_pct, digits=1, signed=True))}</td>"
            f"<td>{e(F.fmt_pvalue(p))}</td><td>{'yes' if r.significant else 'no'}</td></tr>"
        )
    return HTMLBlock(
        '<div class="abkit-table-wrap"><table><thead><tr><th class="text">Segment</th>'
        '<th class="text">Value</th><th class="text">Metric</th><th class="text">Variant</th>'
        "<th>Control units</th><th>Treatment units</th><th>Relative lift</th><th>Interval</th>"
        "<th>p (adjusted)</th><th>Significant</th></tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table></div>"
    )


def cumulative_plots(result: AnalysisResult) -> list[Plot]:
    """Cumulative relative lift over time for every metric and treatment arm."""
    import datetime as _dt

    plots = []
    control = result.experiment.control
    seen: list[tuple[str, str]] = []
    for row in result.daily:
        key = (row.metric, row.variant)
        if row.variant != control and key not in seen:
            seen.append(key)
    for metric, variant in seen:
        points = [p for p in result.daily if p.metric == metric and p.variant == variant]
        plots.append(
            cumulative_plot(
                [_dt.date.fromisoformat(p.date) for p in points],
                [p.rel_lift for p in points],
                [p.rel_ci_lower for p in points],
                [p.rel_ci_upper for p in points],
                title=f"{metric.replace('_', ' ')}: cumulative relative lift ({variant} vs control)",
            )
        )
    return plots


def srm_plot(model: ReportModel) -> Plot:
    """Observed share of units per variant against the configured share."""
    q = model.quality
    total = sum(q.counts.values()) or 1
    names = list(q.counts)
    return bar_plot(
        names,
        [q.counts[n] / total for n in names],
        expected=[q.expected_shares.get(n, 0.0) for n in names],
        title=f"Share of units per variant (SRM p = {F.fmt_pvalue(q.srm_p_value)})",
        ylabel="Share of units",
        percent=True,
    )
