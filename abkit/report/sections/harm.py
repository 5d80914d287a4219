"""Harm first: what a harmed guardrail costs per period, before anything that was gained.

Shown when a guardrail is significantly harmed (a roll-back's reason): the relative change
with its interval, the change per period in the guardrail's own unit over the users a
launch would reach, and its money value where one is declared (or the metric is money).
"""

from __future__ import annotations

from abkit.report import format as F
from abkit.report.blocks import HTMLBlock, Section, attr, e, level
from abkit.report.model import Harm, ReportModel
from abkit.report.story import total_noun


def _card(h: Harm, lvl: str) -> str:
    rel_ci = F.fmt_interval(
        h.rel_ci.lower if h.rel_ci else None,
        h.rel_ci.upper if h.rel_ci else None,
        F.fmt_pct,
        digits=1,
        signed=True,
    )
    lines = []
    if h.per_period is not None:
        ci = h.per_period_ci
        lines.append(
            f'<div class="note" data-per-period="{attr(h.per_period)}">'
            f"{e(F.fmt_amount(h.per_period, signed=True))} {e(total_noun(h.label, h.metric_type))} "
            f"per {e(h.period)} "
            f"(interval {e(F.fmt_interval(ci.lower if ci else None, ci.upper if ci else None, F.fmt_amount, signed=True))})"
            "</div>"
        )
    if h.users:
        lines.append(
            f'<div class="note" data-users="{attr(h.users)}">about {e(F.fmt_about(h.users))} users '
            f"affected per {e(h.period)} if shipped to everyone</div>"
        )
    if h.money is not None:
        mci = h.money_ci
        lines.append(
            f'<div class="money" data-money="{attr(h.money)}">'
            f'<span data-unit="currency">{e(F.fmt_money(h.money, h.currency, signed=True))}</span> '
            f"per {e(h.period)} (interval "
            f'<span data-unit="currency">{e(F.fmt_interval(mci.lower if mci else None, mci.upper if mci else None, lambda v: F.fmt_money(v, h.currency, signed=True)))}</span>)'
            "</div>"
        )
    return (
        f'<div class="abkit-kpi abkit-harm" data-metric="{e(h.metric, quote=True)}" '
        f'data-rel-lift="{attr(h.rel_lift)}">'
        f'<div class="label">Harm: {e(h.label)} ({e(h.variant)} vs control)</div>'
        f'<div class="value">{e(F.fmt_pct(h.rel_lift, 1, signed=True))}</div>'
        f'<div class="interval">{e(lvl)} interval {e(rel_ci)}</div>' + "".join(lines) + "</div>"
    )


def harm(model: ReportModel) -> HTMLBlock:
    """One card per harmed guardrail."""
    lvl = level(model)
    return HTMLBlock(
        '<div class="abkit-kpis">' + "".join(_card(h, lvl) for h in model.harm) + "</div>"
    )


SECTION = Section("harm", "What it harms", harm, applies=lambda model: bool(model.harm))
