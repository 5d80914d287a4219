"""Every experiment on one page: an offline index of the reports in a folder.

:func:`write_index` reads the numbers each report embedded (``read_report_data``: no
re-analysis, so the index is instant and shows exactly what each report said) and writes
``index.html`` beside them: one row per experiment with its state, stage, verdict,
headline lift, money, last data and generation time, linking to its report. Experiments
registered in the store that have no report yet are listed too when a store is given.
The page meets the reports' standards: one file, no script, nothing fetched, the same
stylesheet and Content-Security-Policy, audited by :func:`abkit.report.render.check_offline`
before it is written, and a card layout below 600 px.

Regenerate it with ``abkit report --index`` (``--reports-dir``, ``--db``).
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from abkit.report import format as F
from abkit.report.output import check_destination, write_atomic
from abkit.report.sections.banner import STATE_WORDS
from abkit.report.sections.data import read_report_data

e = html.escape
INDEX_NAME = "index.html"

_STATE_CHIP = {
    "ship": "pass",
    "roll back": "fail",
    "keep running": "inconclusive",
    "cannot finish": "inconclusive",
    "no detectable effect": "not-significant",
}


@dataclass(frozen=True)
class IndexEntry:
    """One experiment's line on the index page."""

    key: str
    link: str | None  # report file name relative to the index, None: no report yet
    state: str = ""  # the report's state ("" without a report)
    stage: str = ""  # draft | running | paused | stopped
    headline: str = ""  # the banner's sentence
    metric: str = ""
    rel_lift: float | None = None
    significant: bool = False
    money: float | None = None
    money_currency: str = ""
    money_period: str = ""
    last_data: str = ""
    generated_at: str = ""


def entry_from_report(path: Path) -> IndexEntry | None:
    """The entry of one report file, or ``None`` for HTML that is not an abkit report."""
    try:
        data = read_report_data(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    facts: Mapping[str, Any] = data.get("facts", {})
    decision: Mapping[str, Any] = data.get("decision", {})
    rows: Sequence[Mapping[str, Any]] = data.get("metrics", [])
    primary = next((r for r in rows if r.get("role") == "primary"), rows[0] if rows else {})
    impact = next((i for i in data.get("impact", []) if i.get("is_money")), None)
    return IndexEntry(
        key=str(facts.get("key", path.stem)),
        link=path.name,
        state=str(decision.get("state", decision.get("verdict", ""))),
        stage=str(facts.get("status", "")),
        headline=str(decision.get("headline", "")),
        metric=str(primary.get("label", primary.get("metric", ""))),
        rel_lift=primary.get("rel_lift"),
        significant=bool(primary.get("significant", False)),
        money=impact.get("estimate") if impact else None,
        money_currency=str(impact.get("currency", "")) if impact else "",
        money_period=str(impact.get("period", "")) if impact else "",
        last_data=str(facts.get("until") or facts.get("last_exposure") or ""),
        generated_at=str(data.get("generated_at", "")),
    )


def collect(reports_dir: Path, registered: Iterable[tuple[str, str]] = ()) -> list[IndexEntry]:
    """Entries for every report in ``reports_dir``, then every registered ``(key, status)``
    without one; sorted by key."""
    entries: dict[str, IndexEntry] = {}
    for path in sorted(reports_dir.glob("*.html")):
        if path.name == INDEX_NAME:
            continue
        entry = entry_from_report(path)
        if entry is not None and entry.key not in entries:
            entries[entry.key] = entry
    for key, status in registered:
        entries.setdefault(key, IndexEntry(key=key, link=None, stage=status))
    return sorted(entries.values(), key=lambda x: x.key)


def _row(x: IndexEntry) -> str:
    if x.link is not None:
        name = f'<a href="{e(x.link, quote=True)}">{e(x.key)}</a>'
        state = (
            f'<span class="chip chip-{_STATE_CHIP.get(x.state, "neutral")}">'
            f"{e(STATE_WORDS.get(x.state, x.state) or '—')}</span>"
        )
    else:
        name = e(x.key)
        state = '<span class="chip chip-neutral">no report yet</span>'
    lift = F.fmt_pct(x.rel_lift, 1, signed=True)
    lift_text = f"{e(x.metric)} {e(lift)}" if x.metric else "—"
    money = (
        f"{e(F.fmt_money(x.money, x.money_currency, signed=True))} per {e(x.money_period)}"
        if x.money is not None
        else "—"
    )
    return (
        f'<tr data-experiment="{e(x.key, quote=True)}" data-state="{e(x.state, quote=True)}">'
        f'<td class="text" data-label="Experiment">{name}</td>'
        f'<td class="chip-cell" data-label="Recommendation">{state}</td>'
        f'<td class="chip-cell" data-label="Stage">{e(x.stage or "—")}</td>'
        f'<td class="text" data-label="Why">{e(x.headline or "—")}</td>'
        f'<td data-label="Headline lift">{lift_text}</td>'
        f'<td data-label="Money" data-unit="currency">{money}</td>'
        f'<td data-label="Data up to">{e(x.last_data[:16] or "—")}</td>'
        f'<td data-label="Report generated">{e(x.generated_at or "—")}</td></tr>'
    )


def index_html(
    entries: Sequence[IndexEntry], *, title: str = "Experiments", now: datetime | None = None
) -> str:
    """The index page (one self-contained HTML document)."""
    from abkit import __version__
    from abkit.report.render import stylesheet

    moment = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    counts: dict[str, int] = {}
    for x in entries:
        counts[x.state or "no report yet"] = counts.get(x.state or "no report yet", 0) + 1
    summary = ", ".join(
        f"{n} {STATE_WORDS.get(state, state).lower()}" for state, n in sorted(counts.items())
    )
    rows = "".join(_row(x) for x in entries) or '<tr><td colspan="8">No reports yet.</td></tr>'
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="generator" content="abkit">\n'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">\n"
        f"<title>{e(title)}</title>\n<style>\n{stylesheet()}\n</style>\n</head>\n<body>\n"
        '<main class="abkit-report abkit-index">'
        f'<header><h1>{e(title)}</h1><p class="abkit-subtitle">{len(entries)} experiments'
        f"{': ' + e(summary) if summary else ''} · Generated {e(moment)}</p></header>"
        '<div class="abkit-table-wrap"><table class="abkit-index-table abkit-cards">'
        "<caption>Each row links to the experiment's report. Headline lift: the primary "
        "metric, new version against control; money: the projected change if shipped.</caption>"
        '<thead><tr><th class="text">Experiment</th><th class="chip-cell">Recommendation</th><th class="chip-cell">Stage</th>'
        '<th class="text">Why</th><th>Headline lift</th><th>Money</th><th>Data up to</th>'
        "<th>Report generated</th></tr></thead><tbody>" + rows + "</tbody></table></div>"
        f'<div class="abkit-footer">Generated by abkit {e(__version__)} on {e(moment)}. '
        "This file is self-contained and works offline; regenerate it with "
        "<code>abkit report --index</code>.</div></main>\n</body>\n</html>\n"
    )


def write_index(
    reports_dir: str | os.PathLike[str] = "reports",
    *,
    registered: Iterable[tuple[str, str]] = (),
    out: str | os.PathLike[str] | None = None,
    force: bool = False,
    now: datetime | None = None,
) -> Path:
    """Write the index page of ``reports_dir`` (default ``reports/index.html``)."""
    from abkit.errors import ConfigError
    from abkit.report.render import ReportError, check_offline

    folder = Path(reports_dir)
    if not folder.is_dir():
        raise ConfigError("is not a folder of reports", file=str(folder), field="reports_dir")
    path = check_destination(
        Path(out) if out is not None else folder / INDEX_NAME,
        kind="html",
        store=None,
        force=force,
        option="out",
    )
    entries = [
        replace(x, link=os.path.relpath(folder / x.link, path.parent)) if x.link else x
        for x in collect(folder, registered)
    ]
    text = index_html(entries, now=now)
    problems = check_offline(text)
    if problems:  # pragma: no cover - every value above is escaped; the audit is the proof
        raise ReportError("index page is not self-contained: " + "; ".join(problems[:3]))
    write_atomic(path, text.encode("utf-8"))
    return path
