"""The decision banner: what to do, in a product manager's words (no code, no test names).

The sentences come from :mod:`abkit.report.story`; the analysis' technical reasons are in
the methodology section. A test that cannot finish lists its options here.
"""

from __future__ import annotations

from abkit.report.blocks import HTMLBlock, Section, e
from abkit.report.model import ReportModel

STATE_WORDS = {
    "ship": "Ship it",
    "roll back": "Roll back",
    "keep running": "Keep running",
    "no detectable effect": "No detectable effect",
    "cannot finish": "Cannot finish",
}


def decision_banner(model: ReportModel) -> HTMLBlock:
    """The state in words and colour, the one-sentence reason, then why and the options."""
    d = model.decision
    state = d.state if d.state in STATE_WORDS else "keep running"
    css = "abkit-verdict-" + state.replace(" ", "-")
    why = "".join(f"<li>{e(line)}</li>" for line in d.why)
    options = "".join(f"<li>{e(line)}</li>" for line in d.options)
    return HTMLBlock(
        f'<div class="abkit-banner {css}" role="status" data-verdict="{e(d.verdict, quote=True)}" '
        f'data-state="{e(state, quote=True)}">'
        f'<div class="verdict">Recommendation: {e(STATE_WORDS[state])}</div>'
        f'<div class="reason">{e(d.headline)}</div>'
        + (f'<ul class="why">{why}</ul>' if why else "")
        + (
            f'<div class="options-head">Options</div><ol class="options">{options}</ol>'
            if options
            else ""
        )
        + "</div>"
    )


SECTION = Section("banner", "", decision_banner)
