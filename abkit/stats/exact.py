"""Small samples for proportions: exact tests and score intervals, with a switching rule.

The unpooled Wald z-test (:mod:`abkit.stats.estimators`) is anti-conservative when counts
are small: with 0 conversions in one arm its variance for that arm is 0 and the p-value
can be half the exact one. For small counts abkit uses instead:

* **Boschloo's exact unconditional test** (Boschloo 1970): the p-value of Fisher's test
  used as the statistic, maximised over the nuisance common rate; exact (size <= α) and
  uniformly more powerful than Fisher's test. Computed by ``scipy.stats.boschloo_exact``;
  it costs ``O(n_c·n_t)`` per grid point, so it is used while ``n_c·n_t <= 40,000``.
* **Fisher's exact conditional test** above that size: conditional on the total number of
  conversions ``s``, the treatment count is hypergeometric,
  ``P(X_t = k) = C(n_t, k)·C(n_c, s - k) / C(n_c + n_t, s)``; one-sided p-values are the
  tail sums, the two-sided one sums the probabilities of tables no more likely than the
  observed one (the convention of ``scipy.stats.fisher_exact``). The **mid-p** variant
  (Lancaster 1961) counts half the observed table's probability; it is not exact but its
  size is close to α, and is offered as ``test="fisher-midp"``.
* **Newcombe's hybrid score interval** for ``p_t - p_c`` (Newcombe 1998, method 10) from
  the Wilson (1927) intervals ``[l, u]`` of each arm:

      L = Δ - √((p_t - l_t)² + (u_c - p_c)²),   U = Δ + √((u_t - p_t)² + (p_c - l_c)²)

  which never degenerates at 0 or n conversions (the Wald interval has zero width there).

Switching rule (:func:`needs_exact`): use the exact readout when an arm has 0 conversions
or all units converted, or any expected cell count under the pooled null,
``n_arm·p̄`` or ``n_arm·(1 - p̄)`` with ``p̄ = (x_c + x_t)/(n_c + n_t)``, is below 5 (the
classical validity condition of the chi-square/z approximation, Cochran 1954).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import special
from scipy import stats as sps

from abkit.errors import ConfigError, DataError, NotEnoughDataError
from abkit.results import Interval, ResultMixin
from abkit.stats._common import OK
from abkit.stats.estimators import Difference
from abkit.stats.lift import LiftResult
from abkit.stats.sufficient import MeanStats
from abkit.vocabulary import ALTERNATIVES, Alternative, Method

__all__ = [
    "BOSCHLOO_MAX_CELLS",
    "MIN_EXPECTED_COUNT",
    "ExactEngine",
    "ExactResult",
    "ExactTest",
    "compare_exact",
    "fisher_pvalue",
    "needs_exact",
    "newcombe_interval",
    "wilson_interval",
]

ExactTest = Literal["auto", "boschloo", "fisher", "fisher-midp"]
MIN_EXPECTED_COUNT = 5.0
BOSCHLOO_MAX_CELLS = 40_000
# Relative tolerance when comparing table probabilities (two-sided Fisher), as scipy does.
_TIE = 1.0 + 1e-7


def _check_counts(x: int, n: int, label: str) -> None:
    if n < 1 or not 0 <= x <= n:
        raise DataError(f"{label}: need 0 <= conversions <= units and units >= 1, got {x}/{n}")


def wilson_interval(x: int, n: int, alpha: float = 0.05) -> Interval:
    """Wilson score interval for ``x/n``: ``(p̂ + z²/2n ± z√(p̂q̂/n + z²/4n²)) / (1 + z²/n)``."""
    _check_counts(x, n, "wilson_interval")
    z = float(-special.ndtri(alpha / 2.0))
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def newcombe_interval(
    x_c: int, n_c: int, x_t: int, n_t: int, alpha: float = 0.05, alternative: str = "two-sided"
) -> Interval:
    """Newcombe's hybrid score interval for ``p_t - p_c`` (module docstring).

    One-sided alternatives give a one-sided bound at level ``1 - α`` (the two-sided
    construction at ``2α``) and leave the other end unbounded.
    """
    level = alpha if alternative == "two-sided" else 2.0 * alpha
    l_c, u_c = wilson_interval(x_c, n_c, level)
    l_t, u_t = wilson_interval(x_t, n_t, level)
    assert l_c is not None and u_c is not None and l_t is not None and u_t is not None
    p_c, p_t = x_c / n_c, x_t / n_t
    diff = p_t - p_c
    # Clipped to [-1, 1]: at 0/n against n/n rounding can step past the bound by 1 ulp.
    lower = max(-1.0, diff - math.hypot(p_t - l_t, u_c - p_c))
    upper = min(1.0, diff + math.hypot(u_t - p_t, p_c - l_c))
    return Interval(
        None if alternative == "smaller" else lower, None if alternative == "larger" else upper
    )


def fisher_pvalue(
    x_c: int, n_c: int, x_t: int, n_t: int, alternative: str = "two-sided", mid_p: bool = False
) -> float:
    """Fisher's exact conditional p-value for ``p_t`` against ``p_c`` (module docstring)."""
    _check_counts(x_c, n_c, "control")
    _check_counts(x_t, n_t, "treatment")
    total = x_c + x_t
    support = np.arange(max(0, total - n_c), min(total, n_t) + 1)
    pmf = sps.hypergeom.pmf(support, n_c + n_t, total, n_t)
    observed = pmf[support == x_t][0]
    half = 0.5 * observed if mid_p else 0.0
    if alternative == "larger":
        p = pmf[support >= x_t].sum() - half
    elif alternative == "smaller":
        p = pmf[support <= x_t].sum() - half
    elif alternative == "two-sided":
        p = pmf[pmf <= observed * _TIE].sum()
        if mid_p:
            # Mid-p halves the probability of every table as likely as the observed one.
            p -= 0.5 * pmf[np.abs(pmf - observed) <= observed * (_TIE - 1.0)].sum()
    else:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    return float(min(max(p, 0.0), 1.0))


def _boschloo_pvalue(x_c: int, n_c: int, x_t: int, n_t: int, alternative: str) -> float:
    # scipy's columns are the samples; "greater" is H1: first column's rate > second's.
    table = [[x_t, x_c], [n_t - x_t, n_c - x_c]]
    side = {"two-sided": "two-sided", "larger": "greater", "smaller": "less"}[alternative]
    return float(min(sps.boschloo_exact(table, alternative=side).pvalue, 1.0))


def needs_exact(control: MeanStats, treatment: MeanStats) -> bool:
    """The switching rule of the module docstring (0 or all conversions, or an expected
    cell count below :data:`MIN_EXPECTED_COUNT`)."""
    x_c, n_c = _counts(control, "control")
    x_t, n_t = _counts(treatment, "treatment")
    if x_c in (0, n_c) or x_t in (0, n_t):
        return True
    pooled = (x_c + x_t) / (n_c + n_t)
    return min(n_c, n_t) * min(pooled, 1.0 - pooled) < MIN_EXPECTED_COUNT


def _counts(stats: MeanStats, label: str) -> tuple[int, int]:
    x = round(stats.sum)
    if abs(stats.sum - x) > 1e-6 or abs(stats.sum_sq - stats.sum) > 1e-6:
        raise DataError(f"{label}: an exact test needs 0/1 values (integer sum == sum_sq)")
    _check_counts(x, stats.n, label)
    return x, stats.n


@dataclass(frozen=True)
class ExactResult(ResultMixin):
    """A small-sample proportion readout: exact p-value and Newcombe interval.

    ``test`` names the exact test used (``method`` its short name); the interval is a
    score interval, so in borderline cases it may exclude 0 while the exact p-value is just
    above ``alpha`` (the test is the decision; ``note`` says so when it happens). There is
    no relative-lift interval (``rel_ci`` is ``None``): the score construction is for the
    difference only.
    """

    method: str
    status: str
    control_rate: float
    treatment_rate: float
    abs_diff: float
    abs_ci: Interval
    rel_lift: float | None
    p_value: float
    significant: bool
    alpha: float
    alternative: str
    test: str
    n_control: int
    n_treatment: int
    conversions_control: int
    conversions_treatment: int
    note: str
    rel_ci: Interval | None = None
    rel_ci_bounded: bool = False


def compare_exact(
    control: MeanStats,
    treatment: MeanStats,
    *,
    alpha: float = 0.05,
    alternative: Alternative | str = "two-sided",
    test: ExactTest = "auto",
) -> ExactResult:
    """Exact readout of a proportion metric from the arms' ``MeanStats``.

    ``test="auto"`` is Boschloo while ``n_c·n_t <= BOSCHLOO_MAX_CELLS`` and Fisher's
    exact test beyond; ``"boschloo"``, ``"fisher"`` and ``"fisher-midp"`` force one.
    """
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    x_c, n_c = _counts(control, "control")
    x_t, n_t = _counts(treatment, "treatment")
    if n_c < 1 or n_t < 1:
        raise NotEnoughDataError("an exact test needs at least one unit per arm")
    if test == "auto":
        test = "boschloo" if n_c * n_t <= BOSCHLOO_MAX_CELLS else "fisher"
    if test == "boschloo":
        p = _boschloo_pvalue(x_c, n_c, x_t, n_t, alternative)
        name = "Boschloo exact unconditional test"
    elif test in ("fisher", "fisher-midp"):
        p = fisher_pvalue(x_c, n_c, x_t, n_t, alternative, mid_p=test == "fisher-midp")
        name = "Fisher exact test" + (" (mid-p)" if test == "fisher-midp" else "")
    else:
        raise ValueError(f"unknown exact test {test!r}")
    p_c, p_t = x_c / n_c, x_t / n_t
    ci = newcombe_interval(x_c, n_c, x_t, n_t, alpha, alternative)
    note = f"{name}; Newcombe score interval"
    if (p < alpha) != (not ci.contains(0.0)):
        note += "; the score interval and the exact test disagree at this borderline"
    return ExactResult(
        method=test,
        status=OK,
        control_rate=p_c,
        treatment_rate=p_t,
        abs_diff=p_t - p_c,
        abs_ci=ci,
        rel_lift=(p_t - p_c) / p_c if p_c > 0 else None,
        p_value=p,
        significant=p < alpha,
        alpha=alpha,
        alternative=alternative,
        test=name,
        n_control=n_c,
        n_treatment=n_t,
        conversions_control=x_c,
        conversions_treatment=x_t,
        note=note,
    )


class ExactEngine:
    """The ``"exact"`` readout engine for proportion metrics (:func:`compare_exact`).

    Counts are recovered from the unadjusted arm rates (``rate·n``; CUPED does not apply
    to an exact test). Option: ``test`` (``"auto"``, ``"boschloo"``, ``"fisher"``,
    ``"fisher-midp"``).
    """

    method: Method = "exact"
    options: frozenset[str] = frozenset({"test"})

    def read(
        self, difference: Difference, base: LiftResult, options: Mapping[str, Any]
    ) -> LiftResult:
        if difference.metric_type != "proportion":
            raise ConfigError("method 'exact' applies to proportion metrics only", field="method")
        arms = []
        for rate, raw, n in (
            (difference.control_mean, difference.control_mean_raw, difference.n_control),
            (difference.treatment_mean, difference.treatment_mean_raw, difference.n_treatment),
        ):
            x = float(round((rate if raw is None else raw) * n))
            arms.append(MeanStats(n=n, sum=x, sum_sq=x))
        result = compare_exact(
            arms[0],
            arms[1],
            alpha=base.alpha,
            alternative=base.alternative,
            test=options.get("test", "auto"),
        )
        return base.with_engine(result, method=self.method, label="exact")
