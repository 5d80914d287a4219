"""What the controller did: the experiment's audit trail as a timeline.

Shown when the experiment ran under the controller (or a person acted through it): each
ramp advance, rollback, ship, stop, pause or resume, when, by whom, the traffic or status
it set, and the reason in the controller's own words (its evidence: metric, estimate,
always-valid bound, e-value, units). A PM reads here that a harmful model was pulled and
when; the evidence sits beside the decision it led to.
"""

from __future__ import annotations

from abkit.report import format as F
from abkit.report.blocks import HTMLBlock, Section, chip, e
from abkit.report.model import ControllerAction, ReportModel

# The words and colours of each action (the vocabulary is abkit.lifecycle.actions.Action).
_WORDS: dict[str, tuple[str, str]] = {
    "advance": ("ramp advanced", "pass"),
    "rollback": ("rolled back", "fail"),
    "ship": ("shipped", "pass"),
    "stop": ("stopped", "neutral"),
    "pause": ("paused", "warn"),
    "resume": ("resumed", "neutral"),
    "propose-rollback": ("rollback proposed", "warn"),
    "propose-ship": ("ship proposed", "warn"),
    "propose-stop": ("stop proposed", "warn"),
}


def _what(a: ControllerAction) -> str:
    parts = []
    if a.traffic is not None:
        parts.append(f"traffic {F.fmt_pct(a.traffic, 0)}")
    if a.status is not None:
        parts.append(f"status {a.status}")
    if a.winner is not None:
        parts.append(f"serving {a.winner}")
    return ", ".join(parts) or "—"


def timeline(model: ReportModel) -> HTMLBlock:
    """One row per action, oldest first."""
    rows = []
    for a in model.actions:
        word, kind = _WORDS.get(a.action, (a.action, "neutral"))
        who = "automatic" if a.actor == "controller" else a.actor
        rows.append(
            f'<tr data-action="{e(a.action, quote=True)}"><td class="text">{e(a.at)}</td>'
            f"<td>{chip(word, kind)}</td><td class='text'>{e(_what(a))}</td>"
            f"<td class='text'>{e(who)}</td><td class='text'>{e(a.reason)}</td></tr>"
        )
    head = (
        "<thead><tr><th class='text'>When</th><th>Action</th><th class='text'>Set</th>"
        "<th class='text'>By</th><th class='text'>Why</th></tr></thead>"
    )
    return HTMLBlock(
        '<div class="abkit-table-wrap"><table class="abkit-actions">'
        f"{head}<tbody>{''.join(rows)}</tbody></table></div>"
    )


SECTION = Section(
    "actions", "What the controller did", timeline, applies=lambda model: bool(model.actions)
)
