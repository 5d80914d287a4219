"""The scorecard: every metric, raw arm means, the lift, its interval and the evidence.

* Money metrics carry their currency on every figure; amounts follow the one rule of
  :mod:`abkit.report.format`.
* "Control" and "Treatment" are the raw arm means; the lifts are the analysis' estimate
  (CUPED-adjusted when it was used, which the caption says).
* Intervals agree with the significance shown: an interval that accounts for the
  correction is shown as is; an unadjusted interval that excludes zero on a row that is
  not significant after the correction is marked "†" and greyed, and the caption says
  why (the rule a reader cannot misread).
* Below 600 px each row becomes a card with labelled figures (``data-label``), so the
  scorecard reads at phone width without sideways scrolling.
"""

from __future__ import annotations

from collections.abc import Iterable

from abkit.report import format as F
from abkit.report.blocks import (
    HTMLBlock,
    Section,
    attr,
    chip,
    correction_name,
    e,
    level,
    significance_chip,
)
from abkit.report.model import MetricRow, ReportModel

DAGGER = "†"


def guardrail_chip(row: MetricRow) -> str:
    if row.role != "guardrail" or row.guardrail_status is None:
        return ""
    kind = {"pass": "pass", "fail": "fail"}.get(row.guardrail_status, "inconclusive")
    return chip(row.guardrail_status, kind)


def _is_bayesian(row: MetricRow) -> bool:
    return row.p_value is None and row.prob_beat_control is not None


def _interval_cell(row: MetricRow) -> str:
    lo = row.rel_ci.lower if row.rel_ci else None
    hi = row.rel_ci.upper if row.rel_ci else None
    text = e(F.fmt_interval(lo, hi, F.fmt_pct, digits=1, signed=True))
    if row.interval_consistent:
        return text
    return f'<span class="abkit-unadjusted" title="not adjusted for several metrics">{text}{DAGGER}</span>'


def scorecard(model: ReportModel, rows: Iterable[MetricRow] | None = None) -> HTMLBlock:
    """All metrics: control, treatment, absolute and relative lift, interval, evidence."""
    rows = list(model.metrics if rows is None else rows)
    bayes = any(_is_bayesian(r) for r in rows)
    evidence_head = "P(beat control)" if bayes else "p-value"
    lvl = level(model)
    heads = [
        ("Metric", "text"),
        ("Control", ""),
        ("Treatment", ""),
        ("Absolute lift", ""),
        ("Relative lift", ""),
        (f"{lvl} interval", ""),
        (evidence_head, ""),
        ("Significance", ""),
        ("Guardrail", ""),
    ]
    multi_arm = len({r.variant for r in rows}) > 1
    body = []
    for r in rows:
        unit = f' data-unit="{e(r.unit, quote=True)}"'
        evidence = F.fmt_prob(r.prob_beat_control) if _is_bayesian(r) else F.fmt_pvalue(r.p_value)
        role = {"primary": "primary", "guardrail": "guardrail"}.get(r.role, "secondary")
        name = e(r.display_name) + (f" <small>({e(r.variant)})</small>" if multi_arm else "")
        title = f' title="{e(r.note, quote=True)}"' if r.note else ""
        cells = [
            f'<td class="text" data-label="Metric">{name}<br><small>{role}</small></td>',
            f'<td data-label="Control" data-value="{attr(r.control_mean)}"{unit}>'
            f"{e(F.fmt_metric_value(r.control_mean, r.metric_type, unit=r.unit, currency=r.currency))}</td>",
            f'<td data-label="Treatment" data-value="{attr(r.treatment_mean)}"{unit}>'
            f"{e(F.fmt_metric_value(r.treatment_mean, r.metric_type, unit=r.unit, currency=r.currency))}</td>",
            f'<td data-label="Absolute lift" data-value="{attr(r.abs_lift)}"{unit}>'
            f"{e(F.fmt_abs_lift(r.abs_lift, r.metric_type, unit=r.unit, currency=r.currency))}</td>",
            f'<td data-label="Relative lift" data-value="{attr(r.rel_lift)}">'
            f"{e(F.fmt_pct(r.rel_lift, 1, signed=True))}</td>",
            f'<td data-label="{e(lvl)} interval" data-low="{attr(r.rel_ci.lower if r.rel_ci else None)}" '
            f'data-high="{attr(r.rel_ci.upper if r.rel_ci else None)}">{_interval_cell(r)}</td>',
            f'<td data-label="{e(evidence_head)}" '
            f'data-value="{attr(r.prob_beat_control if _is_bayesian(r) else r.p_value)}">{e(evidence)}</td>',
            f'<td data-label="Significance">{significance_chip(r)}</td>',
            f'<td data-label="Guardrail">{guardrail_chip(r)}</td>',
        ]
        body.append(
            f'<tr data-metric="{e(r.metric, quote=True)}" data-variant="{e(r.variant, quote=True)}" '
            f'data-role="{role}"{title}>' + "".join(cells) + "</tr>"
        )
    adjusted = any(r.interval_adjusted for r in rows)
    notes = [
        f"{lvl} intervals on the relative lift"
        + (
            ", widened for the several metrics tested so they agree with the significance."
            if adjusted
            else "."
        )
    ]
    correction = correction_name(model)
    # the families analyze corrects: the primary metric across its arms, the secondary
    # metrics' comparisons together; guardrails are read each on its own
    families = [
        (count, what)
        for count, what in (
            (sum(r.role == "primary" for r in rows), "the primary metric's arms"),
            (sum(r.role == "secondary" for r in rows), "the secondary metrics' comparisons"),
        )
        if count > 1
    ]
    if correction and families:
        notes.append(
            f"p-values and significance are adjusted ({correction}) within "
            + " and within ".join(f"{what} ({count})" for count, what in families)
            + "; guardrails are not adjusted."
        )
        if any(not r.interval_consistent for r in rows):
            notes.append(
                f"{DAGGER} This interval leaves out that adjustment: it excludes 0, yet the "
                "change is not significant once the several metrics are accounted for."
            )
    if any(r.cuped for r in rows):
        several_arms = len({r.variant for r in rows}) > 1
        reduced = [
            f"{r.display_name}{f' ({r.variant})' if several_arms else ''} "
            f"{F.fmt_pct(r.variance_reduction, 0)}"
            for r in rows
            if r.cuped and r.variance_reduction is not None
        ]
        notes.append(
            "Control and treatment are the groups' plain averages; the lifts use each user's "
            "behaviour before the test to remove noise (CUPED)"
            + (f", which reduced the variance by: {', '.join(reduced)}." if reduced else ".")
        )
    if any(r.unit == "currency" and not r.currency for r in rows):
        notes.append(
            f"{F.UNKNOWN_CURRENCY}: the events carry no currency; pass --currency to name it."
        )
    notes.append(
        "“Better” and “worse” follow each metric's good direction (fewer errors is better)."
    )
    head = "".join(
        f'<th class="{cls}">{e(label)}</th>' if cls else f"<th>{e(label)}</th>"
        for label, cls in heads
    )
    return HTMLBlock(
        '<div class="abkit-table-wrap"><table class="abkit-scorecard abkit-cards">'
        f"<caption>{e(' '.join(notes))}</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>" + "".join(body) + "</tbody></table></div>"
    )


SECTION = Section("scorecard", "Scorecard", scorecard)
