"""Sample-size planner helpers for the ``planner`` notebook template.

They wrap :mod:`abkit.stats.planning` (which does the statistics) with people-friendly
tables and curves: how many units and days a minimum detectable effect (MDE) needs, and
what effect a given number of days can detect.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from abkit.report import format as F
from abkit.report.blocks import HTMLBlock
from abkit.report.plots import Plot, line_plot

e = html.escape


def make_plan(
    metric_type: str,
    baseline: float,
    *,
    baseline_sd: float | None = None,
    mde: float | None = None,
    relative: bool = True,
    power: float | None = 0.8,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    n_variants: int = 2,
    daily_traffic: float | None = None,
    traffic_fraction: float = 1.0,
    days: float | None = None,
) -> Any:
    """One :class:`abkit.stats.planning.PowerPlan` for a proportion or a mean metric."""
    from abkit.errors import ConfigError
    from abkit.stats.planning import plan_mean, plan_proportion

    common: dict[str, Any] = {
        "mde": mde,
        "relative": relative,
        "power": power,
        "alpha": alpha,
        "alternative": alternative,
        "n_variants": n_variants,
        "daily_traffic": daily_traffic,
        "traffic_fraction": traffic_fraction,
        "days": days,
    }
    if metric_type == "proportion":
        return plan_proportion(baseline, **common)
    if metric_type == "mean":
        if baseline_sd is None:
            raise ConfigError("a mean metric needs baseline_sd", field="baseline_sd")
        return plan_mean(baseline, baseline_sd, **common)
    raise ConfigError(
        f"metric_type must be 'proportion' or 'mean', got {metric_type!r}", field="metric_type"
    )


def _value(plan: Any, value: float | None) -> str:
    return F.fmt_metric_value(value, plan.metric_type)


def plan_summary(plan: Any) -> HTMLBlock:
    """The plan in words and a table: units per arm, total, days, MDE, power."""
    mde_rel = F.fmt_pct(plan.mde_rel, 1, signed=True) if plan.mde_rel is not None else F.MISSING
    rows = [
        ("Metric type", plan.metric_type),
        ("Baseline (control)", _value(plan, plan.baseline)),
        (
            "Minimum detectable effect",
            f"{F.fmt_abs_lift(plan.mde_abs, plan.metric_type)} ({mde_rel})",
        ),
        ("Treatment value at the MDE", _value(plan, plan.treatment_mean)),
        ("Significance level", f"{F.fmt_pct(plan.alpha, 1)} ({plan.alternative})"),
        ("Per comparison", F.fmt_pct(plan.alpha_per_comparison, 2) + f" ({plan.correction})"),
        ("Power", F.fmt_pct(plan.achieved_power, 1)),
        ("Variants", f"{plan.n_variants} (control + {plan.n_variants - 1})"),
        ("Units per arm", ", ".join(F.fmt_int(n) for n in plan.n_per_arm)),
        ("Units in total", F.fmt_int(plan.n_total)),
        (
            "Daily eligible traffic",
            F.fmt_int(plan.daily_traffic) if plan.daily_traffic else F.MISSING,
        ),
        ("Share of traffic in the experiment", F.fmt_pct(plan.traffic_fraction, 0)),
        ("Duration", F.fmt_days(plan.duration_days) if plan.duration_days else F.MISSING),
    ]
    body = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in rows)
    sentence = (
        f"To detect a change of {mde_rel} in a baseline of {_value(plan, plan.baseline)} with "
        f"{F.fmt_pct(plan.achieved_power, 0)} power, the experiment needs "
        f"{F.fmt_int(plan.n_total)} units"
        + (
            f", about {F.fmt_days(plan.duration_days)} at the given traffic."
            if plan.duration_days
            else "."
        )
    )
    note = f"<p class='abkit-method'>{e(plan.note)}</p>" if getattr(plan, "note", "") else ""
    return HTMLBlock(
        f"<p><strong>{e(sentence)}</strong></p>"
        f'<table class="abkit-facts" data-n-total="{plan.n_total}"><tbody>{body}</tbody></table>{note}'
    )


def mde_table(
    metric_type: str,
    baseline: float,
    mdes: Sequence[float],
    *,
    baseline_sd: float | None = None,
    daily_traffic: float | None = None,
    **kwargs: Any,
) -> tuple[HTMLBlock, list[Any]]:
    """Units and days needed for each relative MDE in ``mdes``."""
    plans = [
        make_plan(
            metric_type,
            baseline,
            baseline_sd=baseline_sd,
            mde=m,
            relative=True,
            daily_traffic=daily_traffic,
            **kwargs,
        )
        for m in mdes
    ]
    rows = "".join(
        f"<tr><td>{e(F.fmt_pct(m, 1, signed=True))}</td><td>{e(F.fmt_int(p.n_control))}</td>"
        f"<td>{e(F.fmt_int(p.n_total))}</td>"
        f"<td>{e(F.fmt_days(p.duration_days) if p.duration_days else F.MISSING)}</td></tr>"
        for m, p in zip(mdes, plans, strict=False)
    )
    table = HTMLBlock(
        '<table class="abkit-mde"><thead><tr><th>Relative MDE</th><th>Units per arm</th>'
        "<th>Units in total</th><th>Duration</th></tr></thead><tbody>" + rows + "</tbody></table>"
    )
    return table, plans


def mde_curve(mdes: Sequence[float], plans: Sequence[Any]) -> Plot:
    """Total sample size against relative MDE (log scale: halving the MDE quadruples n)."""
    return line_plot(
        list(mdes),
        {"units in total": [p.n_total for p in plans]},
        title="Sample size needed against the smallest effect to detect",
        xlabel="Relative minimum detectable effect",
        ylabel="Units (log scale)",
        x_percent=True,
        logy=True,
        caption="Halving the effect you want to detect roughly quadruples the sample.",
    )


def detectable_by_day(
    metric_type: str,
    baseline: float,
    *,
    daily_traffic: float,
    max_days: int = 42,
    baseline_sd: float | None = None,
    **kwargs: Any,
) -> Plot:
    """The relative MDE reachable after each number of days at the given traffic."""
    day_list = [d for d in (3, 7, 10, 14, 21, 28, 35, 42, 56) if d <= max_days] or [max_days]
    mdes: list[float] = []
    for d in day_list:
        plan = make_plan(
            metric_type,
            baseline,
            baseline_sd=baseline_sd,
            mde=None,
            relative=True,
            daily_traffic=daily_traffic,
            days=d,
            **kwargs,
        )
        mdes.append(plan.mde_rel if plan.mde_rel is not None else math.nan)
    return line_plot(
        day_list,
        {"detectable relative effect": mdes},
        title="Smallest detectable effect by experiment length",
        xlabel="Days running",
        ylabel="Relative MDE",
        y_percent=True,
        caption="Effects smaller than the curve at a given day cannot be told apart from noise.",
    )
