"""The decision: ship, roll back, keep running, or no detectable effect, with reasons.

Rules, applied in order (``alpha`` is the analysis level; "better"/"worse" follow each
metric's direction):

1. **Sample ratio mismatch** -> ``keep running`` with ``trustworthy = False``: the lifts
   cannot be trusted, and no lift-based verdict is given until the cause is fixed
   (Kohavi, Tang & Xu 2020, ch. 21).
2. **Guardrail breach**. Without a margin, a guardrail is breached when its interval lies
   entirely on the harmful side (significantly worse at ``alpha``, uncorrected: for safety
   a false alarm is cheaper than a missed harm). With a relative ``margin`` it is a
   non-inferiority test (:func:`abkit.stats.guardrails.guardrail`, one-sided ``alpha``):
   *breached* when the harm is shown to exceed the margin, *ok* when non-inferiority is
   shown, *inconclusive* otherwise. An arm with a breach cannot ship; if no arm can ship
   because of a breach, the verdict is ``roll back``. An arm that wins on the primary
   metric but has an inconclusive guardrail is not shipped yet: ``keep running``. A
   guardrail without enough data to be evaluated does not block, but is named in the
   reasons of a ``ship``.
3. **Primary metric better** for at least one arm (multiplicity-adjusted p-value below
   ``alpha``) and no breach for that arm -> ``ship`` the arm with the largest relative lift,
   **unless a fixed-horizon test is read early**. With ``method="fixed"`` the test's error
   rates hold only at its planned sample ``N`` (the planner's units for the primary
   metric's ``mde``, as in rule 5). Read at an information fraction ``t = n / N < 1`` a
   "significant" result is a peek, and repeated peeks inflate false positives several-fold
   (Johari et al. 2017). The arm ships early only when its adjusted p-value also clears the
   Lan-DeMets O'Brien-Fleming spending boundary
   ``alpha(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t))`` (Lan & DeMets 1983; Jennison &
   Turnbull 2000, ch. 7), i.e. the evidence a group-sequential design would have demanded
   at this point (``alpha(0.25) ~ 9e-5``, ``alpha(0.5) ~ 0.006`` for ``alpha = 0.05``);
   otherwise ``keep running`` with the units and days still needed to reach ``N``.
   ``method="sequential"`` (always-valid) and ``"bayesian"`` readouts are not gated.
4. **Primary metric worse** for every arm that is significant -> ``roll back``.
5. Otherwise the test is not conclusive. The planner (:func:`abkit.stats.planning.
   plan_from_stats` on the control arm's statistics) gives the units per arm needed to
   detect the metric's ``mde`` (default 5% relative) with 80% power at ``alpha``. If the
   arms are still smaller -> ``keep running`` with ``sample_needed`` (more units in total)
   and ``days_needed`` at the current traffic; if they are already that large ->
   ``no detectable effect`` (an effect as large as the MDE would very likely have shown).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from abkit.metrics.definitions import Metric
from abkit.stats._render import ResultMixin, html_table
from abkit.stats.sufficient import MeanStats, RatioStats

DEFAULT_MDE = 0.05
DEFAULT_POWER = 0.8


@dataclass(frozen=True)
class GuardrailCheck(ResultMixin):
    """One guardrail metric for one treatment arm."""

    metric: str
    variant: str
    status: str  # "breached" | "ok" | "inconclusive" | "not enough data"
    rel_lift: float | None
    rel_ci: tuple[float | None, float | None] | None
    p_value: float | None
    direction: str
    reason: str
    margin: float | None = None
    test: str = "two-sided interval"


@dataclass(frozen=True)
class Decision(ResultMixin):
    """The verdict and why; ``sample_needed`` is in units (all arms) when keep running."""

    verdict: str  # "ship" | "roll back" | "keep running" | "no detectable effect"
    winner: str | None
    reasons: tuple[str, ...]
    sample_needed: int | None = None
    days_needed: float | None = None
    trustworthy: bool = True
    power_plan: object | None = None  # abkit.stats.planning.PowerPlan
    # share of the planned fixed-horizon sample collected (None when not computed)
    information_fraction: float | None = None

    def _flat_row(self) -> dict[str, object]:
        return {
            "verdict": self.verdict,
            "winner": self.winner,
            "reasons": " ".join(self.reasons),
            "sample_needed": self.sample_needed,
            "days_needed": self.days_needed,
            "trustworthy": self.trustworthy,
            "information_fraction": self.information_fraction,
        }

    def to_dict(self) -> dict[str, object]:
        from abkit.stats._render import json_safe

        return json_safe(
            {
                "verdict": self.verdict,
                "winner": self.winner,
                "reasons": list(self.reasons),
                "sample_needed": self.sample_needed,
                "days_needed": self.days_needed,
                "trustworthy": self.trustworthy,
                "information_fraction": self.information_fraction,
            }
        )

    def _repr_html_(self) -> str:
        return html_table([self._flat_row()], caption="Decision")


def _is_better(result: object, metric: Metric) -> bool | None:
    """True/False when significant in the good/bad direction; None when not significant."""
    if getattr(result, "status", "ok") != "ok" or not result.significant:  # type: ignore[attr-defined]
        return None
    lift = result.abs_lift  # type: ignore[attr-defined]
    if lift is None or lift == 0:
        return None
    return (lift > 0) == metric.higher_is_better


def guardrail_check(result: object, metric: Metric, variant: str, alpha: float) -> GuardrailCheck:
    """Breached when the whole ``1 - alpha`` interval of the lift is on the harmful side."""
    status = getattr(result, "status", "ok")
    rel_ci = getattr(result, "rel_ci", None)
    abs_ci = getattr(result, "abs_ci", None)
    common = dict(
        metric=metric.name,
        variant=variant,
        rel_lift=getattr(result, "rel_lift", None),
        rel_ci=rel_ci,
        p_value=getattr(result, "p_value", None),
        direction=metric.direction,
    )
    if status != "ok" or abs_ci is None:
        return GuardrailCheck(
            status="not enough data", reason=getattr(result, "note", ""), **common
        )
    lo, hi = abs_ci
    harmful = (
        (lo is not None and lo > 0) if not metric.higher_is_better else (hi is not None and hi < 0)
    )
    rel = common["rel_lift"]
    rel_text = "" if rel is None else f" ({rel:+.1%})"
    if harmful:
        # A Bayesian readout has no p-value: its evidence is the credible interval.
        p_value = common["p_value"]
        evidence = (
            f"p = {p_value:.2g}"
            if p_value is not None
            else f"{1 - alpha:.0%} interval {_fmt_ci(rel_ci)} excludes 0"
            if rel_ci
            else f"{1 - alpha:.0%} interval [{lo:+.3g}, {hi:+.3g}] excludes 0"
        )
        reason = (
            f"guardrail {metric.name} is significantly worse in {variant}{rel_text}, {evidence}"
        )
        return GuardrailCheck(status="breached", reason=reason, **common)
    return GuardrailCheck(
        status="ok",
        reason=f"guardrail {metric.name} shows no significant harm in {variant}{rel_text}",
        **common,
    )


def noninferiority_check(result: object, metric: Metric, variant: str) -> GuardrailCheck:
    """Map :class:`abkit.stats.guardrails.GuardrailResult` onto a :class:`GuardrailCheck`."""
    status = {"fail": "breached", "pass": "ok"}.get(result.status, result.status)  # type: ignore[attr-defined]
    est = result.estimate  # type: ignore[attr-defined]
    margin = result.margin  # type: ignore[attr-defined]
    est_text = "" if est is None else f" ({est:+.1%})"
    if status == "breached":
        reason = (
            f"guardrail {metric.name} is worse in {variant}{est_text} by more than the "
            f"{margin:.1%} margin"
        )
    elif status == "ok":
        reason = f"guardrail {metric.name} is shown within the {margin:.1%} margin in {variant}"
        if result.harmful:  # type: ignore[attr-defined]
            reason += f"{est_text}, although significantly worse"
    elif status == "inconclusive":
        reason = (
            f"guardrail {metric.name} in {variant}{est_text} is not yet shown to be within "
            f"the {margin:.1%} margin"
        )
    else:
        reason = f"guardrail {metric.name}: {result.note}"  # type: ignore[attr-defined]
    return GuardrailCheck(
        metric=metric.name,
        variant=variant,
        status=status,
        rel_lift=est,
        rel_ci=result.ci,  # type: ignore[attr-defined]
        p_value=result.p_value,  # type: ignore[attr-defined]
        direction=metric.direction,
        reason=reason,
        margin=margin,
        test="non-inferiority",
    )


def _fmt_ci(ci: object) -> str:
    if not ci:
        return "n/a"
    lo, hi = ci  # type: ignore[misc]
    f = lambda x: "-∞" if x is None else f"{x:+.1%}"  # noqa: E731
    return f"[{f(lo)}, {f(hi)}]"


def power_needed(
    metric: Metric,
    control: MeanStats | RatioStats,
    *,
    current_units: int,
    weights: Sequence[float],
    alpha: float,
    traffic_per_day: float | None,
) -> tuple[int | None, float | None, object | None, str]:
    """Units still needed (all arms) to detect ``metric.mde``; days at current traffic."""
    from abkit.errors import AbkitError
    from abkit.stats.planning import plan_from_stats

    mde = metric.mde or DEFAULT_MDE
    try:
        plan = plan_from_stats(
            control,
            metric.kind,
            mde=mde,  # two-sided: the size of a change either way
            relative=True,
            power=DEFAULT_POWER,
            alpha=alpha,
            weights=list(weights),
            n_variants=len(weights),
        )
    except (AbkitError, ValueError, ZeroDivisionError) as exc:
        return None, None, None, f"the sample needed could not be planned ({exc})"
    total = int(plan.n_total)  # type: ignore[attr-defined]
    needed = max(total - current_units, 0)
    days = None
    if traffic_per_day and traffic_per_day > 0 and needed > 0:
        days = math.ceil(needed / traffic_per_day * 10) / 10
    return needed, days, plan, f"{mde:.1%} relative change with {DEFAULT_POWER:.0%} power"


def early_stopping_alpha(information_fraction: float, alpha: float) -> float:
    """Lan-DeMets O'Brien-Fleming spending ``alpha(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t))``.

    The two-sided level an analysis at information fraction ``t`` (``0 < t``) must clear to
    stop a fixed-horizon test early; ``alpha`` itself at ``t >= 1`` (Lan & DeMets 1983).
    """
    from scipy.stats import norm

    if information_fraction >= 1:
        return alpha
    if information_fraction <= 0:
        return 0.0
    z = norm.isf(alpha / 2) / math.sqrt(information_fraction)
    return float(2 * norm.sf(z))


def decide(
    *,
    primary: Metric,
    primary_results: Mapping[str, object],  # variant -> LiftResult (adjusted)
    guardrails: Sequence[GuardrailCheck],
    srm_detected: bool,
    srm_note: str,
    control_stats: MeanStats | RatioStats | None,
    current_units: int,
    weights: Sequence[float],
    alpha: float,
    traffic_per_day: float | None,
    method: str = "fixed",
) -> Decision:
    """Apply the module's rules; every reason is a full sentence a reader can act on.

    ``method`` is the readout method: only a ``"fixed"``-horizon readout is gated against
    early stopping (rule 3).
    """
    reasons: list[str] = []
    if srm_detected:
        return Decision(
            verdict="keep running",
            winner=None,
            reasons=(
                f"Do not act on these lifts: {srm_note}.",
                "Find and fix the cause (assignment, redirects, logging, bot filtering), "
                "then restart or re-analyse.",
            ),
            trustworthy=False,
        )
    breached = {g.variant for g in guardrails if g.status == "breached"}
    for g in guardrails:
        if g.status == "breached":
            reasons.append(g.reason[0].upper() + g.reason[1:] + ".")
    better = {v: r for v, r in primary_results.items() if _is_better(r, primary) is True}
    worse = {v: r for v, r in primary_results.items() if _is_better(r, primary) is False}
    for v, r in primary_results.items():
        verdict_word = (
            "better" if v in better else "worse" if v in worse else "not significantly different"
        )
        p = _p_adj(r)
        p_text = "" if p is None else f", p = {p:.2g}"
        reasons.append(
            f"{primary.name}: {v} is {verdict_word} than control "
            f"({_fmt_rel(r)}, {1 - alpha:.0%} CI {_fmt_ci(getattr(r, 'rel_ci', None))}{p_text})."
        )
    shippable = {v: r for v, r in better.items() if v not in breached}
    pending = {g.variant for g in guardrails if g.status == "inconclusive"}
    if shippable and all(v in pending for v in shippable):
        for g in guardrails:
            if g.status == "inconclusive" and g.variant in shippable:
                reasons.append(g.reason[0].upper() + g.reason[1:] + ".")
        reasons.insert(
            0,
            "Keep running: the primary metric improves, but a guardrail is not yet shown to "
            "stay within its margin.",
        )
        return Decision(verdict="keep running", winner=None, reasons=tuple(reasons))
    shippable = {v: r for v, r in shippable.items() if v not in pending}
    fraction: float | None = None
    plan = None
    if shippable and method == "fixed" and control_stats is not None:
        needed, days, plan, target = power_needed(
            primary,
            control_stats,
            current_units=current_units,
            weights=weights,
            alpha=alpha,
            traffic_per_day=traffic_per_day,
        )
        if plan is not None and needed:
            n_planned = int(plan.n_total)  # type: ignore[attr-defined]
            fraction = current_units / n_planned if n_planned > 0 else 1.0
            bound = early_stopping_alpha(fraction, alpha)
            early = {v: r for v, r in shippable.items() if _below(_p_adj(r), bound)}
            if not early:
                when = "" if days is None else f" (about {days:g} more days at the current traffic)"
                reasons.insert(
                    0,
                    f"Keep running: the primary metric looks better, but this fixed-horizon "
                    f"test has only {fraction:.0%} of the {n_planned:,} units planned to "
                    f"detect a {target} (set the metric's mde to the effect the test was "
                    "sized for). Stopping at an early look inflates false positives: "
                    f"stopping now needs p < {bound:.2g} (O'Brien-Fleming boundary at this "
                    f"fraction); otherwise collect {needed:,} more units{when}, or analyse "
                    "with method='sequential'.",
                )
                return Decision(
                    verdict="keep running",
                    winner=None,
                    reasons=tuple(reasons),
                    sample_needed=needed,
                    days_needed=days,
                    power_plan=plan,
                    information_fraction=fraction,
                )
            reasons.append(
                f"Stopped early at {fraction:.0%} of the planned {n_planned:,} units: the "
                f"evidence clears the O'Brien-Fleming boundary p < {bound:.2g} for this "
                "fraction."
            )
            shippable = early
        elif plan is not None:
            fraction = current_units / max(int(plan.n_total), 1)  # type: ignore[attr-defined]
    if shippable:
        winner = max(
            shippable,
            key=lambda v: (shippable[v].rel_lift or 0.0) * (1 if primary.higher_is_better else -1),  # type: ignore[attr-defined]
        )
        reasons.insert(
            0, f"Ship {winner}: it improves the primary metric and no guardrail is breached."
        )
        # a guardrail that could not be evaluated is not evidence of safety: say so
        for g in guardrails:
            if g.variant == winner and g.status == "not enough data":
                note = f" ({g.reason})" if g.reason else ""
                reasons.append(
                    f"Guardrail {g.metric} could not be evaluated in {winner}{note}; "
                    "check it by other means before shipping."
                )
        return Decision(
            verdict="ship",
            winner=winner,
            reasons=tuple(reasons),
            power_plan=plan,
            information_fraction=fraction,
        )
    if breached:
        reasons.insert(0, "Roll back: a guardrail is significantly harmed.")
        return Decision(verdict="roll back", winner=None, reasons=tuple(reasons))
    if worse:
        reasons.insert(0, "Roll back: the primary metric is significantly worse.")
        return Decision(verdict="roll back", winner=None, reasons=tuple(reasons))
    if control_stats is None:
        reasons.insert(0, "No conclusion: the control arm has no data.")
        return Decision(verdict="keep running", winner=None, reasons=tuple(reasons))
    needed, days, plan, target = power_needed(
        primary,
        control_stats,
        current_units=current_units,
        weights=weights,
        alpha=alpha,
        traffic_per_day=traffic_per_day,
    )
    if needed is None:
        reasons.insert(0, f"Keep running: no significant difference yet; {target}.")
        return Decision(verdict="keep running", winner=None, reasons=tuple(reasons))
    if needed > 0:
        when = "" if days is None else f" (about {days:g} more days at the current traffic)"
        reasons.insert(
            0,
            f"Keep running: no significant difference yet, and detecting a {target} needs "
            f"{needed:,} more units{when}.",
        )
        return Decision(
            verdict="keep running",
            winner=None,
            reasons=tuple(reasons),
            sample_needed=needed,
            days_needed=days,
            power_plan=plan,
        )
    reasons.insert(
        0,
        f"No detectable effect: the experiment has enough units to detect a {target}, "
        "and found no significant difference.",
    )
    return Decision(
        verdict="no detectable effect",
        winner=None,
        reasons=tuple(reasons),
        sample_needed=0,
        power_plan=plan,
    )


def _p_adj(result: object) -> float | None:
    """The multiplicity-adjusted p-value when there is one, else the raw one."""
    p = getattr(result, "p_value_adjusted", None)
    return p if p is not None else getattr(result, "p_value", None)


def _below(p: float | None, bound: float) -> bool:
    return p is not None and p < bound


def _fmt_rel(result: object) -> str:
    rel = getattr(result, "rel_lift", None)
    return "n/a" if rel is None else f"{rel:+.2%}"
