"""The executive report's sections as displayable HTML, built from a :class:`ReportModel`.

Each function returns an :class:`HTMLBlock` (or a :class:`~abkit.report.plots.Plot`):
it shows as rich output in Jupyter and becomes part of the exported HTML. All text that
came from a user (experiment key, description, hypothesis, owner, variant names and
payloads, metric names, notes) goes through :func:`html.escape`; numbers go through
:mod:`abkit.report.format`.

Display order (the issue's order): banner, headline, impact, scorecard, forest plot,
cumulative lift, data quality, facts, methodology.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from abkit.report import format as F
from abkit.report.model import Impact, MetricRow, ReportModel
from abkit.report.plots import ForestRow, Plot, cumulative_plot, forest_plot

e = html.escape


@dataclass(frozen=True)
class HTMLBlock:
    """A fragment of trusted HTML (built here, with every user value escaped)."""

    html: str

    def _repr_html_(self) -> str:
        return self.html

    def __str__(self) -> str:
        return self.html


def _attr(value: Any) -> str:
    """A number as an HTML data attribute (repr keeps every bit of a float)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return e(str(value), quote=True)


def _chip(word: str, kind: str) -> str:
    return f'<span class="chip chip-{e(kind, quote=True)}">{e(word)}</span>'


_VERDICT_WORDS = {
    "ship": "Ship it",
    "roll back": "Roll back",
    "keep running": "Keep running",
    "no detectable effect": "No detectable effect",
}


# --------------------------------------------------------------------------- header


def title_block(model: ReportModel, title: str | None = None) -> HTMLBlock:
    facts = model.facts
    heading = title or f"Experiment report: {facts.key}"
    bits = []
    if facts.owner:
        bits.append(f"Owner: {e(facts.owner)}")
    dates = _date_range(facts)
    if dates:
        bits.append(e(dates))
    if model.generated_at:
        bits.append(f"Generated {e(model.generated_at)}")
    subtitle = " · ".join(bits)
    desc = f"<p>{e(facts.description)}</p>" if facts.description else ""
    return HTMLBlock(
        f'<header><h1>{e(heading)}</h1><p class="abkit-subtitle">{subtitle}</p>{desc}</header>'
    )


def _date_range(facts: Any) -> str:
    start = facts.start or facts.first_exposure
    end = facts.end or facts.last_exposure
    if start and end:
        return f"{start[:10]} to {end[:10]}"
    if start:
        return f"since {start[:10]}"
    return ""


# --------------------------------------------------------------------------- banner


def decision_banner(model: ReportModel) -> HTMLBlock:
    """The verdict in words and colour, with a one-line reason and the supporting reasons."""
    decision = model.decision
    verdict = decision.verdict if decision.verdict in _VERDICT_WORDS else "keep running"
    css = "abkit-verdict-" + verdict.replace(" ", "-")
    extra = [r for r in decision.reasons if r and r != decision.reason][:4]
    items = "".join(f"<li>{e(r)}</li>" for r in extra)
    more = f"<ul>{items}</ul>" if items else ""
    return HTMLBlock(
        f'<div class="abkit-banner {css}" role="status" data-verdict="{e(verdict, quote=True)}">'
        f'<div class="verdict">Recommendation: {e(_VERDICT_WORDS[verdict])}</div>'
        f'<div class="reason">{e(decision.reason)}</div>{more}</div>'
    )


# --------------------------------------------------------------------------- headline


def _lift_words(row: MetricRow) -> str:
    if row.status != "ok":
        return row.note or "not enough data yet"
    if model_is_bayesian(row):
        return f"probability to beat control {F.fmt_prob(row.prob_beat_control)}"
    if row.p_value is None:
        return ""
    text = F.fmt_pvalue(row.p_value)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def model_is_bayesian(row: MetricRow) -> bool:
    return row.p_value is None and row.prob_beat_control is not None


def headline(model: ReportModel) -> HTMLBlock:
    """The primary metric's relative lift, its interval, and the absolute change."""
    row = model.primary
    if row is None:
        return HTMLBlock("<p>No metric could be computed.</p>")
    level = F.fmt_pct(1 - model.alpha, 0)
    interval = F.fmt_interval(row.rel_low, row.rel_high, F.fmt_pct, digits=1, signed=True)
    significance = _significance_chip(row)  # the scorecard's words: better / worse
    return HTMLBlock(
        '<div class="abkit-kpis">'
        f'<div class="abkit-kpi" data-metric="{e(row.metric, quote=True)}" '
        f'data-rel-lift="{_attr(row.rel_lift)}" data-rel-low="{_attr(row.rel_low)}" '
        f'data-rel-high="{_attr(row.rel_high)}">'
        f'<div class="label">{e(row.display_name)} ({e(row.variant)} vs control)</div>'
        f'<div class="value">{e(F.fmt_pct(row.rel_lift, 1, signed=True))}</div>'
        f'<div class="interval">{e(level)} interval {e(interval)} {significance}</div>'
        f'<div class="note">{e(F.fmt_metric_value(row.control_mean, row.metric_type))} → '
        f"{e(F.fmt_metric_value(row.treatment_mean, row.metric_type))} "
        f"({e(F.fmt_abs_lift(row.abs_lift, row.metric_type))}); {e(_lift_words(row))}</div>"
        "</div></div>"
    )


def _impact_compact(impact: Impact) -> bool:
    """One style for the estimate and both ends: compact ("$1.2M") when any end is large."""
    ends = [abs(v) for v in (impact.estimate, impact.low, impact.high) if not F.is_missing(v)]
    return bool(ends) and max(ends) >= 1e6


def _fmt_amount(impact: Impact, value: Any, *, signed: bool = True) -> str:
    compact = _impact_compact(impact)
    if impact.is_currency:
        return F.fmt_currency(value, impact.unit, signed=signed, compact=compact)
    text = F.fmt_compact(value, signed=signed) if compact else F.fmt_number(value, 0, signed=signed)
    return f"{text} {impact.unit}".rstrip()


def _impact_kpi(imp: Impact, verdict: str = "ship") -> str:
    # Shipping against the recommendation is still a question people ask; say so plainly.
    when = {
        "roll back": "if shipped anyway (not recommended)",
        "keep running": "if shipped now (not yet conclusive)",
        "no detectable effect": "if shipped (no effect was detected)",
    }.get(verdict, "if shipped")
    interval = F.fmt_interval(imp.low, imp.high, lambda v: _fmt_amount(imp, v))
    return (
        f'<div class="abkit-kpi" data-impact-estimate="{_attr(imp.estimate)}" '
        f'data-impact-low="{_attr(imp.low)}" data-impact-high="{_attr(imp.high)}">'
        f'<div class="label">Projected impact per {e(imp.period)} {e(when)} '
        f"(from {e(imp.metric)})</div>"
        f'<div class="value">{e(_fmt_amount(imp, imp.estimate))}</div>'
        f'<div class="interval">interval {e(interval)}</div>'
        f'<div class="note">{e(imp.assumption)}</div></div>'
    )


def impact(model: ReportModel) -> HTMLBlock:
    """Projected business impact: one card per projection, each with its interval."""
    if not model.impact:
        return HTMLBlock(
            "<p>No business impact was projected: give the analysis the traffic and the "
            "value of a conversion to see one.</p>"
        )
    return HTMLBlock(
        '<div class="abkit-kpis">'
        + "".join(_impact_kpi(imp, model.decision.verdict) for imp in model.impact[:3])
        + "</div>"
    )


# --------------------------------------------------------------------------- scorecard


def _significance_chip(row: MetricRow) -> str:
    if row.status != "ok":
        return _chip("not enough data", "neutral")
    if not row.significant:
        return _chip("not significant", "not-significant")
    # Words, not arrows: a significant rise in errors is "worse", and the forest plot's
    # ▲/▼ markers mean better/worse too, so the two sections never disagree.
    if row.outcome == "better":
        return _chip("significant: better", "significant-up")
    return _chip("significant: worse", "significant-down")


def _guardrail_chip(row: MetricRow) -> str:
    if row.role != "guardrail" or row.guardrail_status is None:
        return ""
    kind = {"pass": "pass", "fail": "fail"}.get(row.guardrail_status, "inconclusive")
    return _chip(row.guardrail_status, kind)


def scorecard(model: ReportModel, rows: Iterable[MetricRow] | None = None) -> HTMLBlock:
    """All metrics: control, treatment, absolute and relative lift, interval, evidence."""
    rows = list(model.metrics if rows is None else rows)
    bayes = any(model_is_bayesian(r) for r in rows)
    evidence_head = "P(beat control)" if bayes else "p-value"
    multi_arm = len({r.variant for r in rows}) > 1
    body = []
    for r in rows:
        evidence = (
            F.fmt_prob(r.prob_beat_control) if model_is_bayesian(r) else F.fmt_pvalue(r.p_value)
        )
        role = {"primary": "primary", "guardrail": "guardrail"}.get(r.role, "secondary")
        name = e(r.display_name) + (f" <small>({e(r.variant)})</small>" if multi_arm else "")
        title = f' title="{e(r.note, quote=True)}"' if r.note else ""
        body.append(
            f'<tr data-metric="{e(r.metric, quote=True)}" data-variant="{e(r.variant, quote=True)}" '
            f'data-role="{role}"{title}>'
            f'<td class="text">{name}<br><small>{role}</small></td>'
            f'<td data-value="{_attr(r.control_mean)}">{e(F.fmt_metric_value(r.control_mean, r.metric_type))}</td>'
            f'<td data-value="{_attr(r.treatment_mean)}">{e(F.fmt_metric_value(r.treatment_mean, r.metric_type))}</td>'
            f'<td data-value="{_attr(r.abs_lift)}">{e(F.fmt_abs_lift(r.abs_lift, r.metric_type))}</td>'
            f'<td data-value="{_attr(r.rel_lift)}">{e(F.fmt_pct(r.rel_lift, 1, signed=True))}</td>'
            f'<td data-low="{_attr(r.rel_low)}" data-high="{_attr(r.rel_high)}">'
            f"{e(F.fmt_interval(r.rel_low, r.rel_high, F.fmt_pct, digits=1, signed=True))}</td>"
            f'<td data-value="{_attr(r.prob_beat_control if model_is_bayesian(r) else r.p_value)}">{e(evidence)}</td>'
            f"<td>{_significance_chip(r)}</td>"
            f"<td>{_guardrail_chip(r)}</td></tr>"
        )
    level = F.fmt_pct(1 - model.alpha, 0)
    correction = (
        f"; p-values and significance are adjusted for {len(rows)} comparisons "
        f"({e(_CORRECTION_NAMES.get(model.correction.lower(), model.correction))}), the intervals are not, so an interval that just "
        "excludes 0 can still be not significant"
        if model.correction and model.correction != "none" and len(rows) > 1
        else ""
    )
    return HTMLBlock(
        '<div class="abkit-table-wrap"><table class="abkit-scorecard">'
        f"<caption>{e(level)} intervals on the relative lift{correction}. "
        "“Better” and “worse” follow each metric's good direction (fewer errors is better)."
        "</caption>"
        '<thead><tr><th class="text">Metric</th><th>Control</th><th>Treatment</th>'
        f"<th>Absolute lift</th><th>Relative lift</th><th>{e(level)} interval</th>"
        f"<th>{e(evidence_head)}</th><th>Significance</th><th>Guardrail</th></tr></thead>"
        "<tbody>" + "".join(body) + "</tbody></table></div>"
    )


# --------------------------------------------------------------------------- plots


def forest(model: ReportModel) -> Plot:
    rows = [
        ForestRow(
            label=r.display_name
            + (f" ({r.variant})" if len({m.variant for m in model.metrics}) > 1 else ""),
            estimate=r.rel_lift,
            low=r.rel_low,
            high=r.rel_high,
            status=r.outcome,
            group=r.role,
        )
        for r in model.metrics
    ]
    level = F.fmt_pct(1 - model.alpha, 0)
    return forest_plot(
        rows,
        title=f"Relative lift with {level} interval, every metric",
        caption="Green ▲: a significant change in the good direction; vermillion ▼: in the "
        "bad direction; blue ●: not significant; an interval crossing zero is inconclusive.",
    )


def cumulative(model: ReportModel) -> Plot | HTMLBlock:
    if not model.daily or not model.daily[0].dates:
        return HTMLBlock("<p>No daily series available.</p>")
    series = model.daily[0]
    import datetime as _dt

    dates = [_dt.date.fromisoformat(d[:10]) for d in series.dates]
    return cumulative_plot(
        dates,
        series.rel_lift,
        series.low,
        series.high,
        title=f"Cumulative relative lift of {series.metric} ({series.variant} vs control)",
        caption="Each point uses all data up to that day. A line that has settled and a band "
        "that no longer shrinks much mean more days will change little.",
    )


# --------------------------------------------------------------------------- quality


def data_quality(model: ReportModel) -> HTMLBlock:
    q = model.quality
    total = sum(q.counts.values()) or 0
    rows = []
    for name, n in q.counts.items():
        share = n / total if total else None
        rows.append(
            f'<tr data-variant="{e(name, quote=True)}"><td class="text">{e(name)}</td>'
            f'<td data-value="{n}">{e(F.fmt_int(n))}</td><td>{e(F.fmt_pct(share, 2))}</td>'
            f"<td>{e(F.fmt_pct(q.expected_shares.get(name), 2))}</td></tr>"
        )
    srm_chip = _chip("pass", "pass") if q.srm_ok else _chip("fail", "fail")
    srm_text = (
        "Units split as configured"
        if q.srm_ok
        else "Units did not split as configured (sample ratio mismatch): results may be biased"
    )
    checks = "".join(
        f"<tr><td class='text'>{e(c.name)}</td><td>{_chip(c.status, {'pass': 'pass', 'fail': 'fail'}.get(c.status, 'warn'))}</td>"
        f"<td class='text'>{e(c.detail)}</td></tr>"
        for c in q.checks
    )
    progress = ""
    if q.sample_needed and q.sample_collected is not None:
        share = min(q.sample_collected / q.sample_needed, 1.0)
        remaining = (
            f"; about {e(F.fmt_days(q.days_remaining))} more at current traffic"
            if q.days_remaining and q.sample_collected < q.sample_needed
            else ""
        )
        target = f" to detect a {q.sample_target}" if q.sample_target else ""
        if q.sample_collected >= q.sample_needed:
            words = (
                f"Sample: {F.fmt_int(q.sample_collected)} units collected, at least the "
                f"{F.fmt_int(q.sample_needed)} planned{target}."
            )
        else:
            words = (
                f"Sample: {F.fmt_int(q.sample_collected)} units collected of the "
                f"{F.fmt_int(q.sample_needed)} planned{target}"
            )
        progress = (
            f'<p data-collected="{q.sample_collected}" data-needed="{q.sample_needed}">{e(words)} '
            f'<span class="abkit-progress" role="img" aria-label="{e(F.fmt_pct(share, 0))} collected">'
            f'<span style="width:{share * 100:.1f}%"></span></span> {e(F.fmt_pct(share, 0))}{remaining}</p>'
        )
    elif q.sample_collected is not None:
        progress = f"<p>Sample: {e(F.fmt_int(q.sample_collected))} units.</p>"
    return HTMLBlock(
        f"<p>{srm_chip} {e(srm_text)} (SRM test p = {e(F.fmt_pvalue(q.srm_p_value))}).</p>"
        f"{progress}"
        '<div class="abkit-table-wrap"><table class="abkit-srm"><thead><tr><th class="text">Variant</th>'
        "<th>Units</th><th>Observed share</th><th>Configured share</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div>"
        + (
            '<div class="abkit-table-wrap"><table class="abkit-checks"><thead><tr><th class="text">Check</th>'
            '<th>Result</th><th class="text">Detail</th></tr></thead><tbody>'
            + checks
            + "</tbody></table></div>"
            if checks
            else ""
        )
    )


# --------------------------------------------------------------------------- facts


def _payload_text(payload: dict[str, Any]) -> str:
    if not payload:
        return ""
    parts = []
    for key, value in payload.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        parts.append(f"{key}: {text}")
    return "; ".join(parts)


def experiment_facts(model: ReportModel) -> HTMLBlock:
    f = model.facts
    variants = "".join(
        f"<li><strong>{e(v.name)}</strong>{' (control)' if v.is_control else ''}, "
        f"{e(F.fmt_pct(v.weight, 0))} of traffic"
        + (f" — {e(_payload_text(v.payload))}" if v.payload else "")
        + "</li>"
        for v in f.variants
    )
    rows = [
        ("Experiment", f.key),
        ("Hypothesis", f.hypothesis or "—"),
        ("Description", f.description or "—"),
        ("Owner", f.owner or "—"),
        ("Planned dates", _planned(f)),
        ("Data from", _observed(f)),
        ("Traffic", f"{F.fmt_pct(f.traffic, 0)} of eligible units"),
        ("Status", f.status or "—"),
        ("Tags", ", ".join(f.tags) or "—"),
    ]
    body = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
    body += f"<tr><th>Variants</th><td><ul>{variants}</ul></td></tr>"
    return HTMLBlock(f'<table class="abkit-facts"><tbody>{body}</tbody></table>')


def _planned(f: Any) -> str:
    if f.start and f.end:
        return f"{f.start} to {f.end}"
    if f.start:
        return f"from {f.start} (no end set)"
    return "—"


def _observed(f: Any) -> str:
    if f.first_exposure and f.last_exposure:
        return f"{f.first_exposure} to {f.last_exposure}"
    return "—"


# --------------------------------------------------------------------------- methodology


_CORRECTION_NAMES = {
    "holm": "Holm",
    "bonferroni": "Bonferroni",
    "bh": "Benjamini-Hochberg",
    "fdr_bh": "Benjamini-Hochberg",
    "benjamini-hochberg": "Benjamini-Hochberg",
    "hochberg": "Hochberg",
}


def methodology(model: ReportModel) -> HTMLBlock:
    level = F.fmt_pct(1 - model.alpha, 0)
    tests = list(dict.fromkeys(r.test for r in model.metrics if r.test))
    method = {
        "fixed": (
            f"Each metric compares the two groups' averages (per user, or a ratio such as "
            f"revenue per order) with a two-sided test at the {F.fmt_pct(model.alpha, 0)} "
            f"level and a {level} confidence interval"
            + (f" ({'; '.join(tests)})" if tests else "")
            + ". Relative-lift intervals (Fieller's method) also account for the uncertainty "
            "of the control's own average. The test is planned for a fixed sample: read "
            "before that sample is reached, a win is only trusted if it clears a stricter "
            "early-look threshold (O'Brien-Fleming), otherwise the advice is to keep running."
        ),
        "sequential": (
            "The test is sequential (always-valid confidence sequences), so the results may be "
            "checked every day without inflating false positives."
        ),
        "bayesian": (
            "The comparison is Bayesian: the report gives the probability that the treatment "
            "beats control and a credible interval."
        ),
    }.get(model.method, f"Method: {model.method}.")
    parts = [
        "Units (users) are split at random by a stable hash of their id; each unit is counted "
        "in its group from its first exposure, and units that saw more than one variant are "
        "left out.",
        method,
    ]
    if model.cuped:
        parts.append(
            "Variance is reduced with CUPED: each user's behaviour before the experiment is "
            "used to remove noise, which narrows intervals without biasing the lift."
        )
    if model.correction and model.correction != "none":
        name = _CORRECTION_NAMES.get(model.correction.lower(), model.correction)
        # Benjamini-Hochberg bounds the share of false discoveries, not the chance of one.
        goal = (
            "the expected share of false alarms among the significant results"
            if name == "Benjamini-Hochberg"
            else "the chance of any false alarm"
        )
        parts.append(
            f"With several metrics, p-values are adjusted ({name}) so {goal} stays at the "
            "stated level."
        )
    parts.append(
        "Guardrails must not get worse: a guardrail passes when its interval rules out a harmful "
        "change beyond its margin, fails when harm is significant (not adjusted for several "
        "metrics: a false alarm is cheaper than a missed harm), and is inconclusive otherwise; "
        "an inconclusive guardrail holds a launch back. The recommendation combines the "
        "primary metric, the guardrails and the data-quality checks: when units did not split "
        "as configured, no ship or roll-back is recommended until the cause is found."
    )
    parts.append(
        "Projected impact multiplies the measured per-user change and its interval by the "
        "traffic the change would reach; it assumes the effect stays the same after launch."
    )
    return HTMLBlock(
        '<div class="abkit-method">' + "".join(f"<p>{e(p)}</p>" for p in parts) + "</div>"
    )


def footer(model: ReportModel) -> HTMLBlock:
    return HTMLBlock(
        f'<div class="abkit-footer">Generated by abkit {e(model.abkit_version)} '
        f"on {e(model.generated_at)}. This file is self-contained and works offline.</div>"
    )


def report_data(model: ReportModel) -> HTMLBlock:
    """The displayed numbers as JSON in a hidden ``<pre>`` (HTML-escaped, never a script)."""
    payload = json.dumps(model.to_dict(), ensure_ascii=False, sort_keys=True, allow_nan=False)
    return HTMLBlock(f'<pre class="abkit-data" id="abkit-report-data" hidden>{e(payload)}</pre>')


def read_report_data(html_text: str) -> dict[str, Any]:
    """Parse the JSON that :func:`report_data` embedded in a report."""
    from html.parser import HTMLParser

    class _Find(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.inside = False
            self.chunks: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "pre" and ("id", "abkit-report-data") in attrs:
                self.inside = True

        def handle_endtag(self, tag: str) -> None:
            if tag == "pre":
                self.inside = False

        def handle_data(self, data: str) -> None:
            if self.inside:
                self.chunks.append(data)

    finder = _Find()
    finder.feed(html_text)
    if not finder.chunks:
        raise ValueError("no abkit report data in this HTML")
    return json.loads("".join(finder.chunks))
