"""The experiment's facts: hypothesis, owner, dates, traffic, variants with their payloads."""

from __future__ import annotations

import json
from typing import Any

from abkit.report import format as F
from abkit.report.blocks import HTMLBlock, Section, e
from abkit.report.model import Facts, ReportModel


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
        ("Readout", readout_window(f)),
        ("Traffic", f"{F.fmt_pct(f.traffic, 0)} of eligible units"),
        ("Status", f.status or "—"),
        ("Tags", ", ".join(f.tags) or "—"),
    ]
    body = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
    body += f"<tr><th>Variants</th><td><ul>{variants}</ul></td></tr>"
    return HTMLBlock(f'<table class="abkit-facts"><tbody>{body}</tbody></table>')


def readout_window(f: Facts) -> str:
    """What data the readout used: all of it, or a window (an as-of readout)."""
    if f.since and f.until:
        return f"data from {f.since} until {f.until} (as of {f.until})"
    if f.until:
        return f"as of {f.until}: data after it is left out"
    if f.since:
        return f"data since {f.since}"
    return "all data collected so far"


def _planned(f: Facts) -> str:
    if f.start and f.end:
        return f"{f.start} to {f.end}"
    if f.start:
        return f"from {f.start} (no end set)"
    return "—"


def _observed(f: Facts) -> str:
    if f.first_exposure and f.last_exposure:
        return f"{f.first_exposure} to {f.last_exposure}"
    return "—"


SECTION = Section("facts", "About this experiment", experiment_facts)
