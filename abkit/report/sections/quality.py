"""Data quality: did users split as configured, were the groups alike before the test,
how many users saw several variants, and how much of the planned sample is in."""

from __future__ import annotations

from abkit.report import format as F
from abkit.report.blocks import HTMLBlock, Section, chip, e
from abkit.report.model import Quality, ReportModel


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
    srm_chip = chip("pass", "pass") if q.srm_ok else chip("fail", "fail")
    srm_text = (
        "Units split as configured"
        if q.srm_ok
        else "Units did not split as configured (sample ratio mismatch): results may be biased"
    )
    checks = "".join(
        f"<tr><td class='text'>{e(c.name)}</td><td>{chip(c.status, {'pass': 'pass', 'fail': 'fail'}.get(c.status, 'warn'))}</td>"
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
        if q.r_squared is not None and q.sample_needed_without_cuped:
            progress += f'<p data-r-squared="{q.r_squared:.6g}">{e(_adjustment_words(q))}</p>'
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


def _adjustment_words(q: Quality) -> str:
    """The plan with and without the variance reduction (CUPED, regression adjustment)."""
    assert q.r_squared is not None and q.sample_needed_without_cuped is not None
    days = (
        f" (about {F.fmt_days(q.days_remaining_without_cuped)} more)"
        if q.days_remaining_without_cuped
        else ""
    )
    return (
        f"Adjusting for behaviour before the test (CUPED) removes {F.fmt_pct(q.r_squared, 0)} "
        f"of the variance: without it the plan would need "
        f"{F.fmt_int(q.sample_needed_without_cuped)} units{days}."
    )


SECTION = Section("quality", "Data quality", data_quality)
