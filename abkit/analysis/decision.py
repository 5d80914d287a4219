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
   An always-valid readout (``sequential``, ``confseq``) needs more units for that power
   (:func:`power_needed`).

When the primary readout was adjusted (CUPED or regression adjustment: ``LiftResult.cuped``),
the planned sample of rules 3 and 5 uses the residual variance ``σ²(1 - R²)`` with ``R²``
measured on the control arm (:func:`variance_reduction_r_squared`,
:func:`abkit.stats.planning.plan_from_stats_cuped`; Deng et al. 2013): the sample still
needed shrinks by ``1 - R²``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from abkit.metrics.definitions import Metric
from abkit.results import Interval, ResultMixin, html_table
from abkit.stats.guardrails import GuardrailResult
from abkit.stats.lift import LiftResult
from abkit.stats.planning import PowerPlan
from abkit.stats.sufficient import MeanStats, RatioStats
from abkit.vocabulary import GuardrailStatus, Verdict

DEFAULT_MDE = 0.05
DEFAULT_POWER = 0.8

# Which rule of the module docstring gave the verdict (for plain-words reports).
DecisionBasis = Literal[
    "srm",
    "inconclusive_guardrail",
    "early_look",
    "primary_better",
    "guardrail_breach",
    "primary_worse",
    "no_data",
    "underpowered",
    "powered_null",
]
DECISION_BASES: tuple[DecisionBasis, ...] = get_args(DecisionBasis)


@dataclass(frozen=True)
class GuardrailCheck(ResultMixin):
    """One guardrail metric for one treatment arm.

    ``status`` (one rule, :func:`guardrail_check` and :func:`noninferiority_check`):
    ``fail`` when harm is shown (the interval wholly on the harmful side, or with a
    ``margin`` declared, harm beyond it shown); ``pass`` when harm beyond ``margin`` is ruled
    out at ``alpha`` (the metric's margin, else its mde, else 5%); ``inconclusive``
    otherwise, or when the readout had too little data (``evaluated`` is then False). Only a
    non-inferiority test (a declared margin) holds back a ship while inconclusive.
    """

    metric: str
    variant: str
    status: GuardrailStatus
    rel_lift: float | None
    rel_ci: Interval | None
    p_value: float | None
    direction: str
    reason: str
    margin: float | None = None
    test: str = "two-sided interval"
    evaluated: bool = True

    @property
    def holds_ship(self) -> bool:
        """An evaluated non-inferiority test that has not yet shown safety."""
        return self.evaluated and self.status == "inconclusive" and self.test == "non-inferiority"


@dataclass(frozen=True)
class Decision(ResultMixin):
    """The verdict and why; ``sample_needed`` is in units (all arms) when keep running."""

    verdict: Verdict
    winner: str | None
    reasons: tuple[str, ...]
    sample_needed: int | None = None
    days_needed: float | None = None
    trustworthy: bool = True
    power_plan: PowerPlan | None = None
    # share of the planned fixed-horizon sample collected (None when not computed)
    information_fraction: float | None = None
    basis: DecisionBasis = "underpowered"
    decided_by: tuple[str, str] | None = None  # (metric, variant) that decided

    def _flat_row(self) -> dict[str, object]:
        return {
            "verdict": self.verdict,
            "winner": self.winner,
            "reasons": " ".join(self.reasons),
            "sample_needed": self.sample_needed,
            "days_needed": self.days_needed,
            "trustworthy": self.trustworthy,
            "information_fraction": self.information_fraction,
            "basis": self.basis,
        }

    def to_dict(self) -> dict[str, object]:
        from abkit.results import json_safe

        return json_safe(
            {
                "verdict": self.verdict,
                "winner": self.winner,
                "reasons": list(self.reasons),
                "sample_needed": self.sample_needed,
                "days_needed": self.days_needed,
                "trustworthy": self.trustworthy,
                "information_fraction": self.information_fraction,
                "basis": self.basis,
                "decided_by": self.decided_by,
            }
        )

    def _repr_html_(self) -> str:
        return html_table([self._flat_row()], caption="Decision")


def _is_better(result: LiftResult, metric: Metric) -> bool | None:
    """True/False when significant in the good/bad direction; None when not significant."""
    if result.status != "ok" or not result.significant:
        return None
    lift = result.abs_lift
    if lift is None or lift == 0:
        return None
    return (lift > 0) == metric.higher_is_better


def guardrail_check(
    result: LiftResult, metric: Metric, variant: str, alpha: float
) -> GuardrailCheck:
    """``fail`` when the whole ``1 - alpha`` interval of the lift is on the harmful side;
    ``pass`` when the harmful end of the relative interval is within the metric's mde (5% by
    default); ``inconclusive`` otherwise (:class:`GuardrailCheck`)."""
    margin = metric.mde or DEFAULT_MDE

    def check(status: GuardrailStatus, reason: str, *, evaluated: bool = True) -> GuardrailCheck:
        return GuardrailCheck(
            metric=metric.name,
            variant=variant,
            status=status,
            rel_lift=result.rel_lift,
            rel_ci=result.rel_ci,
            p_value=result.p_value,
            direction=metric.direction,
            reason=reason,
            margin=margin,
            evaluated=evaluated,
        )

    if result.status != "ok" or result.abs_ci is None:
        return check("inconclusive", result.note, evaluated=False)
    lo, hi = result.abs_ci
    harmful = (
        (lo is not None and lo > 0) if not metric.higher_is_better else (hi is not None and hi < 0)
    )
    rel_text = "" if result.rel_lift is None else f" ({result.rel_lift:+.1%})"
    if harmful:
        # A Bayesian readout has no p-value: its evidence is the credible interval.
        evidence = (
            f"p = {result.p_value:.2g}"
            if result.p_value is not None
            else f"{1 - alpha:.0%} interval {_fmt_ci(result.rel_ci)} excludes 0"
            if result.rel_ci
            else f"{1 - alpha:.0%} interval {_fmt_ci(result.abs_ci, percent=False)} excludes 0"
        )
        return check(
            "fail",
            f"guardrail {metric.name} is significantly worse in {variant}{rel_text}, {evidence}",
        )
    return check(
        "pass"
        if _harm_ruled_out(result.rel_ci, metric.higher_is_better, margin)
        else "inconclusive",
        f"guardrail {metric.name} shows no significant harm in {variant}{rel_text}",
    )


def _harm_ruled_out(rel_ci: Interval | None, higher_is_better: bool, margin: float) -> bool:
    """Whether the harmful end of the relative interval is within ``margin``."""
    if rel_ci is None:
        return False
    lo, hi = rel_ci
    if higher_is_better:
        return lo is not None and -lo <= margin
    return hi is not None and hi <= margin


def noninferiority_check(result: GuardrailResult, metric: Metric, variant: str) -> GuardrailCheck:
    """Map :class:`abkit.stats.guardrails.GuardrailResult` onto a :class:`GuardrailCheck`."""
    status = result.status
    est = result.estimate
    margin = result.margin
    est_text = "" if est is None else f" ({est:+.1%})"
    evaluated = status in ("fail", "pass", "inconclusive")
    if status == "fail":
        reason = (
            f"guardrail {metric.name} is worse in {variant}{est_text} by more than the "
            f"{margin:.1%} margin"
        )
    elif status == "pass":
        reason = f"guardrail {metric.name} is shown within the {margin:.1%} margin in {variant}"
        if result.harmful:
            reason += f"{est_text}, although significantly worse"
    elif status == "inconclusive":
        reason = (
            f"guardrail {metric.name} in {variant}{est_text} is not yet shown to be within "
            f"the {margin:.1%} margin"
        )
    else:
        reason = f"guardrail {metric.name}: {result.note}"
        status = "inconclusive"
    return GuardrailCheck(
        metric=metric.name,
        variant=variant,
        status=status,
        evaluated=evaluated,
        rel_lift=est,
        rel_ci=result.ci,
        p_value=result.p_value,
        direction=metric.direction,
        reason=reason,
        margin=margin,
        test="non-inferiority",
    )


def _fmt_ci(ci: Interval | None, *, percent: bool = True) -> str:
    if ci is None:
        return "n/a"
    lo, hi = ci

    def f(x: float | None) -> str:
        if x is None:
            return "-∞"
        return f"{x:+.1%}" if percent else f"{x:+.3g}"

    return f"[{f(lo)}, {f(hi)}]"


def variance_reduction_r_squared(control: object) -> float | None:
    """The share of the metric's variance its covariates explain in the control arm (the
    multiple ``R²``, :func:`abkit.stats.planning.pre_period_r_squared`: ``ρ²`` of the own
    pre-period for CUPED, every declared covariate for regression adjustment); ``None``
    when the arm has no varying covariate (or is a ratio metric: planned unadjusted)."""
    from abkit.errors import AbkitError
    from abkit.stats.planning import pre_period_r_squared

    stats = getattr(control, "regression", None) or control
    if isinstance(stats, RatioStats) or not getattr(stats, "n", 0) >= 3:
        return None
    if isinstance(stats, MeanStats) and not (stats.has_covariate and stats.cov_var > 0):
        return None
    try:
        r2 = pre_period_r_squared(stats)  # type: ignore[arg-type]
    except (AbkitError, ValueError, ZeroDivisionError):
        return None
    return r2 if 0 < r2 < 1 else None


# Confidence sequences are calibrated to stop by this multiple of the planned sample.
CONFSEQ_HORIZON = 2.0


def power_needed(
    metric: Metric,
    control: MeanStats | RatioStats,
    *,
    current_units: int,
    weights: Sequence[float],
    alpha: float,
    traffic_per_day: float | None,
    cuped: bool = False,
    method: str = "fixed",
) -> tuple[int | None, float | None, PowerPlan | None, str]:
    """Units still needed (all arms) to detect ``metric.mde``; days at current traffic.

    ``cuped``: the readout adjusts for covariates, so the plan uses the residual variance
    ``σ²(1 - R²)`` with ``R²`` measured on the control arm (:func:`variance_reduction_r_
    squared`; :func:`abkit.stats.planning.plan_cuped`): the sample shrinks by ``1 - R²``.

    ``method``: an always-valid readout rejects only past a wider boundary than the fixed
    test's (``|z| >= ~3`` instead of 1.96 at the planned sample), so it needs more units for
    the same power: ``"sequential"`` (mSPRT) the fixed plan inflated by
    :func:`abkit.stats.sequential.plan_sequential` (power of 14 equally spaced looks, by
    simulation); ``"confseq"`` :data:`CONFSEQ_HORIZON` times the planned sample, where the
    confidence sequence tuned to that plan (valid up to that horizon: level 0.087 for
    ``alpha = 0.05``) rejects past ``|z| >= 2.86`` while the mde stands at
    ``√2 × 2.80 = 3.96`` standard errors: 86% power at that look alone (at the planned
    sample itself: ``|z| >= 2.82`` against 2.80, 49%).
    """
    from abkit.errors import AbkitError
    from abkit.stats.planning import plan_from_stats, plan_from_stats_cuped

    mde = metric.mde or DEFAULT_MDE
    options = dict(
        mde=mde,  # two-sided: the size of a change either way
        relative=True,
        power=DEFAULT_POWER,
        alpha=alpha,
        weights=list(weights),
        n_variants=len(weights),
    )
    r2 = variance_reduction_r_squared(control) if cuped else None
    try:
        if r2 is not None:
            stats = getattr(control, "regression", None) or control
            plan = plan_from_stats_cuped(stats, metric.type, **options).with_cuped  # type: ignore[arg-type]
        else:
            plan = plan_from_stats(control, metric.type, **options)
    except (AbkitError, ValueError, ZeroDivisionError) as exc:
        return None, None, None, f"the sample needed could not be planned ({exc})"
    valid = ""
    if method == "sequential":
        from abkit.stats.sequential import plan_sequential

        try:
            # 4,000 paths: the power to within ~0.006, at a fifth of the default's time
            sequential = plan_sequential(plan, sims=4_000)
        except (ValueError, ZeroDivisionError) as exc:
            return None, None, None, f"the sample needed could not be planned ({exc})"
        plan = _scaled(plan, sequential.n_per_arm, sequential.note)
        valid = " by the always-valid test"
    elif method == "confseq":
        n_per_arm = tuple(math.ceil(CONFSEQ_HORIZON * n) for n in plan.n_per_arm)
        plan = _scaled(plan, n_per_arm, f"confidence sequence: {CONFSEQ_HORIZON:g} x the plan")
        valid = " by the confidence sequence"
    total = int(plan.n_total)
    needed = max(total - current_units, 0)
    days = None
    if traffic_per_day and traffic_per_day > 0 and needed > 0:
        days = math.ceil(needed / traffic_per_day * 10) / 10
    target = f"{mde:.1%} relative change with {DEFAULT_POWER:.0%} power{valid}"
    if r2 is not None:
        target += f" (variance reduced by R² = {r2:.2f})"
    return needed, days, plan, target


def _scaled(plan: PowerPlan, n_per_arm: tuple[int, ...], note: str) -> PowerPlan:
    """``plan`` with the arm sizes an always-valid readout needs for the same power. The
    achieved power is stated as the target: mSPRT's inflation is solved for it (to Monte
    Carlo error), and the confidence sequence's horizon gives at least it (86% at
    ``alpha = 0.05``, :func:`power_needed`)."""
    from dataclasses import replace

    return replace(
        plan,
        n_per_arm=tuple(n_per_arm),
        n_control=n_per_arm[0],
        n_total=int(sum(n_per_arm)),
        achieved_power=plan.power,
        duration_days=None,
        note=note,
    )


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
    primary_results: Mapping[str, LiftResult],  # variant -> its readout (adjusted)
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
            basis="srm",
        )
    breached = {g.variant for g in guardrails if g.status == "fail"}
    for g in guardrails:
        if g.status == "fail":
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
            f"({_fmt_rel(r)}, {1 - alpha:.0%} CI {_fmt_ci(r.rel_ci)}{p_text})."
        )
    shippable = {v: r for v, r in better.items() if v not in breached}
    pending = {g.variant for g in guardrails if g.holds_ship}
    if shippable and all(v in pending for v in shippable):
        holding = [g for g in guardrails if g.holds_ship and g.variant in shippable]
        for g in holding:
            reasons.append(g.reason[0].upper() + g.reason[1:] + ".")
        reasons.insert(
            0,
            "Keep running: the primary metric improves, but a guardrail is not yet shown to "
            "stay within its margin.",
        )
        return Decision(
            verdict="keep running",
            winner=None,
            reasons=tuple(reasons),
            basis="inconclusive_guardrail",
            decided_by=(holding[0].metric, holding[0].variant),
        )
    shippable = {v: r for v, r in shippable.items() if v not in pending}
    # the sample is planned with the variance the readout actually had: adjusted when
    # CUPED or regression adjustment was applied to the primary metric
    adjusted = any(r.cuped for r in primary_results.values())
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
            cuped=adjusted,
        )
        if plan is not None and needed:
            n_planned = int(plan.n_total)
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
                    basis="early_look",
                    decided_by=(primary.name, _best(shippable, primary)),
                )
            reasons.append(
                f"Stopped early at {fraction:.0%} of the planned {n_planned:,} units: the "
                f"evidence clears the O'Brien-Fleming boundary p < {bound:.2g} for this "
                "fraction."
            )
            shippable = early
        elif plan is not None:
            fraction = current_units / max(int(plan.n_total), 1)
    if shippable:
        winner = _best(shippable, primary)
        reasons.insert(
            0, f"Ship {winner}: it improves the primary metric and no guardrail is breached."
        )
        # a guardrail that could not be evaluated is not evidence of safety: say so
        for g in guardrails:
            if g.variant == winner and not g.evaluated:
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
            basis="primary_better",
            decided_by=(primary.name, winner),
        )
    if breached:
        reasons.insert(0, "Roll back: a guardrail is significantly harmed.")
        first = next(g for g in guardrails if g.status == "fail")
        return Decision(
            verdict="roll back",
            winner=None,
            reasons=tuple(reasons),
            basis="guardrail_breach",
            decided_by=(first.metric, first.variant),
        )
    if worse:
        reasons.insert(0, "Roll back: the primary metric is significantly worse.")
        return Decision(
            verdict="roll back",
            winner=None,
            reasons=tuple(reasons),
            basis="primary_worse",
            decided_by=(primary.name, next(iter(worse))),
        )
    if control_stats is None:
        reasons.insert(0, "No conclusion: the control arm has no data.")
        return Decision(
            verdict="keep running", winner=None, reasons=tuple(reasons), basis="no_data"
        )
    needed, days, plan, target = power_needed(
        primary,
        control_stats,
        current_units=current_units,
        weights=weights,
        alpha=alpha,
        traffic_per_day=traffic_per_day,
        cuped=adjusted,
        method=method,
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
        basis="powered_null",
    )


def _best(candidates: Mapping[str, LiftResult], primary: Metric) -> str:
    """The arm with the largest relative lift in the primary metric's good direction."""
    sign = 1 if primary.higher_is_better else -1
    return max(candidates, key=lambda v: (candidates[v].rel_lift or 0.0) * sign)


def _p_adj(result: LiftResult) -> float | None:
    """The multiplicity-adjusted p-value when there is one, else the raw one."""
    p = result.p_value_adjusted
    return p if p is not None else result.p_value


def _below(p: float | None, bound: float) -> bool:
    return p is not None and p < bound


def _fmt_rel(result: LiftResult) -> str:
    rel = result.rel_lift
    return "n/a" if rel is None else f"{rel:+.2%}"
