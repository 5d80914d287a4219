"""Guardrail metrics: non-inferiority tests with a margin, aware of the good direction.

A guardrail asks "is the treatment *not worse* than control by more than a margin?"
rather than "is it different?". With ``s = +1`` when higher is better and ``-1`` when lower
is better, the harmful direction is ``-s``. For a margin ``M > 0``:

* absolute margin, on ``δ = μ_t - μ_c``:
  ``H0: s·δ <= -M`` (inferior) vs ``H1: s·δ > -M`` (non-inferior), statistic
  ``T = (s·δ̂ + M) / se``;
* relative margin, on ``μ_t/μ_c`` with ``ρ₀ = 1 - s·M``:
  ``H0: s·(μ_t - ρ₀·μ_c) <= 0`` vs ``H1: > 0``, statistic
  ``T = s·(m_t - ρ₀·m_c) / √(v_t - 2ρ₀·c + ρ₀²·v_c)``, the Fieller form (Fieller 1954), so the
  test needs no delta-method approximation of the ratio and agrees with the relative
  bound reported (the bound is the inversion of the same statistic).

``T`` is referred to N(0, 1), or to Welch's t for means (same df as the readout).
``q = z₁₋α`` (or the t quantile). Outcomes, each a one-sided level-α test:

* **pass**: ``T > q``: non-inferiority shown; the one-sided ``1-α`` bound in the harmful
  direction lies inside the margin (``p_value`` < α).
* **fail**: ``T < -q``: *inferiority* shown; the one-sided ``1-α`` bound in the good
  direction lies beyond the margin, i.e. the whole interval is past the margin on the
  harmful side (``p_value_inferiority`` < α). A significant harm smaller than the margin
  is **not** a fail (the margin is the harm the team agreed to tolerate); it is flagged
  with ``harmful=True``.
* **inconclusive**: neither; more data are needed to decide.
* **not enough data**: the difference cannot be estimated (or a relative margin meets a
  control mean that is not positive).

``ci`` is the two-sided ``1-2α`` interval whose ends are those two one-sided bounds, on
the margin's scale (absolute difference or relative lift). With the true effect exactly
at the margin, ``P(pass) = α`` asymptotically: this is what the simulation tests check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from abkit.errors import NotEnoughDataError
from abkit.results import Interval, ResultMixin
from abkit.stats._common import NOT_ENOUGH_DATA, P_FLOOR
from abkit.stats.estimators import Difference, estimate_difference
from abkit.stats.fieller import relative_lift_of
from abkit.stats.sufficient import MeanStats, RatioStats
from abkit.stats.tails import isf, sf
from abkit.vocabulary import GuardrailStatus, MetricType

MarginType = Literal["relative", "absolute"]
MARGIN_TYPES: tuple[MarginType, ...] = ("relative", "absolute")


__all__ = ["GuardrailResult", "guardrail", "noninferiority"]


@dataclass(frozen=True)
class GuardrailResult(ResultMixin):
    """The verdict of a non-inferiority test and its evidence (see the module docstring).

    ``estimate``, ``ci`` and ``bound`` are on the margin's scale (the absolute difference
    for an absolute margin, the relative lift for a relative one). ``bound`` is the
    one-sided ``1-α`` bound in the harmful direction (the lower bound when higher is
    better); ``margin_boundary`` the value it is compared with (``-M`` or ``+M``).
    ``margin_abs`` expresses the margin in the metric's units at the control mean.
    ``control_mean``/``treatment_mean`` are the estimates tested (CUPED-adjusted with
    ``cuped=True``).
    """

    metric: str | None
    metric_type: str
    status: GuardrailStatus | Literal["not enough data"]
    higher_is_better: bool
    margin: float
    margin_type: str
    margin_boundary: float
    margin_abs: float | None
    alpha: float
    estimate: float | None
    ci: Interval | None
    bound: float | None
    statistic: float | None
    p_value: float | None
    p_value_inferiority: float | None
    harmful: bool
    control_mean: float | None
    treatment_mean: float | None
    n_control: int
    n_treatment: int
    note: str

    @property
    def passed(self) -> bool:
        return self.status == "pass"


def _not_enough(
    reason: str,
    *,
    metric: str | None,
    metric_type: str,
    margin: float,
    margin_type: str,
    higher_is_better: bool,
    alpha: float,
    n_c: int,
    n_t: int,
) -> GuardrailResult:
    s = 1.0 if higher_is_better else -1.0
    return GuardrailResult(
        metric=metric,
        metric_type=metric_type,
        status=NOT_ENOUGH_DATA,
        higher_is_better=higher_is_better,
        margin=margin,
        margin_type=margin_type,
        margin_boundary=-s * margin,
        margin_abs=None,
        alpha=alpha,
        estimate=None,
        ci=None,
        bound=None,
        statistic=None,
        p_value=None,
        p_value_inferiority=None,
        harmful=False,
        control_mean=None,
        treatment_mean=None,
        n_control=n_c,
        n_treatment=n_t,
        note=reason,
    )


def noninferiority(
    difference: Difference,
    *,
    margin: float,
    margin_type: str = "relative",
    higher_is_better: bool = True,
    alpha: float = 0.05,
    metric: str | None = None,
) -> GuardrailResult:
    """Non-inferiority test of one treatment against control (module docstring).

    ``margin`` is a positive number: a fraction of the control mean (``"relative"``, e.g.
    0.02 for 2%) or metric units (``"absolute"``). ``alpha`` is one-sided.
    """
    if not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"margin must be a positive number, got {margin!r}")
    if margin_type not in MARGIN_TYPES:
        raise ValueError(f"margin_type must be one of {MARGIN_TYPES}, got {margin_type!r}")
    if not (0.0 < alpha < 0.5):
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha!r}")

    def empty(reason: str) -> GuardrailResult:
        return _not_enough(
            reason,
            metric=metric,
            metric_type=difference.metric_type,
            margin=margin,
            margin_type=margin_type,
            higher_is_better=higher_is_better,
            alpha=alpha,
            n_c=difference.n_control,
            n_t=difference.n_treatment,
        )

    if not (math.isfinite(difference.se_abs) and difference.se_abs > 0):
        return empty("zero standard error")
    s = 1.0 if higher_is_better else -1.0
    q = float(isf(alpha, difference.df))
    m_c, m_t = difference.control_mean, difference.treatment_mean
    notes: list[str] = []
    if margin_type == "absolute":
        d, se = difference.abs_diff, difference.se_abs
        stat = (s * d + margin) / se
        estimate: float | None = d
        ci: Interval | None = Interval(d - q * se, d + q * se)
        margin_abs: float | None = margin
    else:
        if not m_c > 0:
            return empty("a relative margin needs a positive control mean; use an absolute margin")
        rho0 = 1.0 - s * margin
        var = (
            difference.var_treatment_mean
            - 2.0 * rho0 * difference.cov_means
            + rho0 * rho0 * difference.var_control_mean
        )
        if not var > 0:
            return empty("zero variance at the margin")
        stat = s * (m_t - rho0 * m_c) / math.sqrt(var)
        # The one-sided Fieller bounds: inversions of this same statistic.
        above = relative_lift_of(difference, q, "larger")
        below = relative_lift_of(difference, q, "smaller")
        lower = None if above.ci is None else above.ci.lower
        upper = None if below.ci is None else below.ci.upper
        estimate = above.lift
        ci = Interval(lower, upper)
        margin_abs = margin * m_c
        if lower is None or upper is None:
            notes.append(above.note or below.note or "relative bound unbounded")
    p_value = float(sf(stat, difference.df))
    p_inferior = float(sf(-stat, difference.df))  # P(T <= stat)
    status: GuardrailStatus
    if stat > q:
        status = "pass"
    elif stat < -q:
        status = "fail"
    else:
        status = "inconclusive"
    # Significantly harmful at all (even within the margin)?
    d = difference.abs_diff
    harmful = bool(s * d + q * difference.se_abs < 0)
    if harmful and status != "fail":
        notes.append("significantly harmful, but within the margin")
    bound = None if ci is None else (ci.lower if higher_is_better else ci.upper)
    return GuardrailResult(
        metric=metric,
        metric_type=difference.metric_type,
        status=status,
        higher_is_better=higher_is_better,
        margin=margin,
        margin_type=margin_type,
        margin_boundary=-s * margin,
        margin_abs=margin_abs,
        alpha=alpha,
        estimate=estimate,
        ci=ci,
        bound=bound,
        statistic=stat,
        p_value=max(p_value, P_FLOOR),
        p_value_inferiority=max(p_inferior, P_FLOOR),
        harmful=harmful,
        control_mean=m_c,
        treatment_mean=m_t,
        n_control=difference.n_control,
        n_treatment=difference.n_treatment,
        note="; ".join(notes),
    )


def guardrail(
    control: MeanStats | RatioStats | None,
    treatment: MeanStats | RatioStats | None,
    *,
    metric_type: MetricType,
    margin: float,
    margin_type: str = "relative",
    higher_is_better: bool = True,
    alpha: float = 0.05,
    cuped: bool = False,
    metric: str | None = None,
) -> GuardrailResult:
    """:func:`noninferiority` from two arms of sufficient statistics.

    A missing or too small arm gives ``status="not enough data"`` instead of an error.
    """
    n_c = 0 if control is None else control.n
    n_t = 0 if treatment is None else treatment.n
    try:
        if control is None or treatment is None:
            raise NotEnoughDataError("an arm has no data")
        diff = estimate_difference(control, treatment, metric_type=metric_type, cuped=cuped)
    except NotEnoughDataError as exc:
        return _not_enough(
            str(exc),
            metric=metric,
            metric_type=metric_type,
            margin=margin,
            margin_type=margin_type,
            higher_is_better=higher_is_better,
            alpha=alpha,
            n_c=n_c,
            n_t=n_t,
        )
    return noninferiority(
        diff,
        margin=margin,
        margin_type=margin_type,
        higher_is_better=higher_is_better,
        alpha=alpha,
        metric=metric,
    )
