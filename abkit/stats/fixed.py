"""Fixed-horizon readout of an estimated difference: p-value, absolute and relative intervals.

Tests (the estimator and its variance come from :mod:`abkit.stats.estimators`):

* proportion: unpooled two-proportion z-test, ``z = (p_t - p_c) / sqrt(p_c(1-p_c)/n_c +
  p_t(1-p_t)/n_t)``, the statistic of statsmodels' ``test_proportions_2indep(method="wald")``;
* mean: Welch's t-test with Welch–Satterthwaite degrees of freedom (Welch 1947);
* ratio: delta-method z-test (Deng, Knoblich & Lu 2018).

The absolute interval is ``Δ ± q·se`` (one-sided: one end open) with ``q`` the critical
value of the same reference (:mod:`abkit.stats.tails`); the relative interval is Fieller's
at that ``q`` (:mod:`abkit.stats.fieller`), so both exclude 0 exactly when ``p < alpha``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from abkit.results import Interval
from abkit.stats._common import OK, P_FLOOR, check_alpha_alternative
from abkit.stats.estimators import Difference
from abkit.stats.fieller import relative_lift_of
from abkit.stats.lift import TEST_NAMES, LiftResult
from abkit.stats.tails import critical_value, p_value
from abkit.vocabulary import Alternative, Method

__all__ = ["FixedEngine", "compare_difference"]


def compare_difference(
    diff: Difference,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    metric: str | None = None,
    variant: str | None = None,
    cap: str | None = None,
) -> LiftResult:
    """Fixed-horizon readout of an already estimated :class:`Difference` (module docstring)."""
    check_alpha_alternative(alpha, alternative)
    notes: list[str] = []
    se = diff.se_abs
    stat = diff.abs_diff / se
    p = p_value(stat, diff.df, alternative)
    if p == 0.0:
        p = P_FLOOR
        notes.append("p-value below the smallest representable double")
    q = critical_value(alpha, diff.df, alternative)
    d = diff.abs_diff
    if alternative == "two-sided":
        abs_ci = Interval(d - q * se, d + q * se)
    elif alternative == "larger":
        abs_ci = Interval(d - q * se, None)
    else:
        abs_ci = Interval(None, d + q * se)

    m_c, m_t = diff.control_mean, diff.treatment_mean
    rel = relative_lift_of(diff, q, alternative)
    if rel.lift is None:
        notes.append(rel.note)
    else:
        if m_c < 0:
            # ρ - 1 with a negative denominator moves opposite to the absolute lift.
            notes.append(
                "control mean is negative: relative lift is treatment/control - 1, so its sign "
                "is opposite to the absolute lift's"
            )
        if not rel.bounded:
            notes.append(rel.unbounded_note(with_set=True))
    if min(diff.var_control_mean, diff.var_treatment_mean) == 0:
        if diff.metric_type == "proportion":
            notes.append(
                "one arm has 0% or 100% conversion: the Wald variance rests on the other arm"
            )
        else:
            # The zero-variance arm's mean is taken as exact, so intervals (the relative
            # one collapses when that mean is 0) reflect the other arm's noise only.
            notes.append("one arm has zero variance: the standard error rests on the other arm")
    adjusted = diff.cuped and diff.control_mean_raw is not None
    return LiftResult(
        metric_type=diff.metric_type,
        control_mean=diff.control_mean_raw if adjusted else m_c,
        treatment_mean=diff.treatment_mean_raw if adjusted else m_t,
        abs_lift=d,
        abs_ci=abs_ci,
        rel_lift=rel.lift,
        rel_ci=rel.ci,
        rel_ci_bounded=rel.bounded,
        p_value=p,
        significant=p < alpha,
        method="fixed",
        test=TEST_NAMES[diff.metric_type] + (" with CUPED" if diff.cuped else ""),
        n_control=diff.n_control,
        n_treatment=diff.n_treatment,
        variance_reduction=diff.variance_reduction,
        status=OK,
        note="; ".join(notes),
        alpha=alpha,
        alternative=alternative,
        se_abs=se,
        statistic=stat,
        df=diff.df,
        rel_ci_set=rel.ratio_set,
        cuped=diff.cuped,
        theta=diff.theta,
        metric=metric,
        variant=variant,
        cap=cap,
        control_mean_adjusted=m_c if adjusted else None,
        treatment_mean_adjusted=m_t if adjusted else None,
        difference=diff,
    )


class FixedEngine:
    """The fixed-horizon engine: the readout every other engine starts from, unchanged."""

    method: Method = "fixed"
    options: frozenset[str] = frozenset()

    def read(
        self, difference: Difference, base: LiftResult, options: Mapping[str, Any]
    ) -> LiftResult:
        """``base`` is already the fixed-horizon readout of ``difference``."""
        return base
