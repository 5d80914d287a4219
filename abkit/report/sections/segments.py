"""Segments, when the report was asked for them (``--segment``): each segment value's lift
of the decisive metric, with a warning that segment differences are hypotheses."""

from __future__ import annotations

from abkit.report import format as F
from abkit.report.blocks import HTMLBlock, Rendered, Section, e
from abkit.report.model import ReportModel, SegmentRow
from abkit.report.plots import ForestRow, forest_plot


def _rows(model: ReportModel) -> list[SegmentRow]:
    decisive = model.decisive
    metric = decisive.metric if decisive is not None else None
    return [s for s in model.segments if metric is None or s.metric == metric]


def segment_table(model: ReportModel) -> HTMLBlock:
    rows = _rows(model)
    if not rows:
        asked = ", ".join(model.segments_requested) or "none"
        return HTMLBlock(f"<p>No segment readout is available (asked for: {e(asked)}).</p>")
    body = "".join(
        f'<tr data-segment="{e(s.segment, quote=True)}" data-value="{e(s.value, quote=True)}">'
        f'<td class="text" data-label="Segment">{e(s.segment)}: {e(s.value)}</td>'
        f'<td data-label="Variant">{e(s.variant)}</td>'
        f'<td data-label="Users">{e(F.fmt_int(s.n_control + s.n_treatment))}</td>'
        f'<td data-label="Relative lift">{e(F.fmt_pct(s.rel_lift, 1, signed=True))}</td>'
        f'<td data-label="Interval">{e(F.fmt_interval(s.rel_ci.lower if s.rel_ci else None, s.rel_ci.upper if s.rel_ci else None, F.fmt_pct, digits=1, signed=True))}</td>'
        f'<td data-label="Significant">{"yes" if s.significant else "no"}</td></tr>'
        for s in rows
    )
    label = rows[0].label
    return HTMLBlock(
        '<div class="abkit-table-wrap"><table class="abkit-segments abkit-cards">'
        f"<caption>{e(label)} by segment. Segment results are adjusted for the number of "
        "segment values; treat differences between segments as ideas to test, not findings."
        "</caption><thead><tr><th class='text'>Segment</th><th>Variant</th><th>Users</th>"
        "<th>Relative lift</th><th>Interval</th><th>Significant</th></tr></thead><tbody>"
        + body
        + "</tbody></table></div>"
    )


def segment_plot(model: ReportModel) -> Rendered:
    rows = _rows(model)
    if not rows:
        return HTMLBlock("")
    return forest_plot(
        [
            ForestRow(
                label=f"{s.segment}: {s.value} ({s.variant})",
                estimate=s.rel_lift,
                low=s.rel_ci.lower if s.rel_ci else None,
                high=s.rel_ci.upper if s.rel_ci else None,
                status=s.outcome,
            )
            for s in rows
        ],
        title=f"{rows[0].label} by segment",
    )


def _asked(model: ReportModel) -> bool:
    return bool(model.segments_requested)


TABLE = Section("segments", "Segments", segment_table, applies=_asked)
PLOT = Section("segment-plot", "", segment_plot, applies=lambda m: _asked(m) and bool(_rows(m)))
