"""Intervals that agree with a multiplicity correction.

A correction adjusts p-values; left alone, the per-comparison intervals can then exclude 0
beside "not significant". :func:`corrected_intervals` returns, for a family of ``m``
comparisons (estimate ``θ̂_i``, standard error ``σ_i``, optional Welch df), intervals whose
exclusion of 0 matches the corrected decision:

* ``"bonferroni"``: simultaneous intervals ``θ̂_i ± c(α/m)·σ_i``; all cover their true
  values with probability ``>= 1 - α`` (Bonferroni inequality). An interval excludes 0
  exactly when the Bonferroni-adjusted p-value is below ``α``.
* ``"holm"``: the intervals compatible with Holm's step-down test (Strassburger & Bretz
  2008, "Compatible simultaneous lower confidence bounds for the Holm procedure and other
  Bonferroni-based closed tests", *Statistics in Medicine* 27). With ``R`` the hypotheses
  Holm rejects:

  - not rejected (``i ∉ R``): ``θ̂_i ± c(α/|I∖R|)·σ_i`` (Bonferroni over the hypotheses
    left), which contains 0 because Holm stopped;
  - rejected while others are not (``i ∈ R ≠ I``): the bound on the side of 0 *is* 0 (the
    sign is established, the size is not: the known price of Holm's extra power);
  - everything rejected (``R = I``): the Bonferroni bound, truncated at 0.

  The bound away from 0 of a rejected comparison is the Bonferroni one (the paper treats
  one-sided bounds; this two-sided completion is abkit's and is checked by simulation).
* ``"bh"``: false-coverage-rate adjusted intervals (Benjamini & Yekutieli 2005, "False
  discovery rate-adjusted multiple confidence intervals for selected parameters", *JASA*
  100): with ``R`` comparisons selected by Benjamini–Hochberg at level ``q = α``, every
  interval is built at level ``1 - R·q/m`` (``1 - q/m`` when none is selected). The
  expected share of selected intervals that miss their parameter is at most ``q`` (for
  independent or positively dependent estimates), and an interval excludes 0 exactly when
  BH selects the comparison.
* ``"none"``: the per-comparison intervals at ``α``.

``c(a)`` is the two-sided ``1 - a/2`` quantile of N(0, 1) (or of Student's t with the
comparison's df); one-sided alternatives use ``1 - a`` and leave the far end unbounded.
Each result carries the per-comparison ``level_alpha`` so a readout can rebuild other
intervals (e.g. Fieller's relative-lift interval) at the same level.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from abkit.results import Interval, ResultMixin
from abkit.stats.multiple import adjust_pvalues
from abkit.stats.tails import critical_value, p_value
from abkit.vocabulary import ALTERNATIVES, CORRECTIONS, Alternative, Correction

__all__ = ["CorrectedInterval", "corrected_intervals"]


@dataclass(frozen=True)
class CorrectedInterval(ResultMixin):
    """One comparison's interval under a correction (see the module docstring).

    ``level_alpha`` is the per-comparison level the interval is built at;
    ``bounded_at_zero`` says the near end was set (Holm) or truncated at 0;
    ``significant`` is the corrected decision the interval agrees with.
    """

    estimate: float
    ci: Interval
    level_alpha: float
    p_value: float
    p_value_adjusted: float
    significant: bool
    bounded_at_zero: bool
    correction: str


def corrected_intervals(
    estimates: Sequence[float],
    ses: Sequence[float],
    *,
    alpha: float = 0.05,
    correction: Correction = "holm",
    dfs: Sequence[float | None] | None = None,
    alternative: Alternative = "two-sided",
) -> list[CorrectedInterval]:
    """Intervals for a family of comparisons that agree with ``correction``'s decisions."""
    m = len(estimates)
    if len(ses) != m or (dfs is not None and len(dfs) != m):
        raise ValueError("estimates, ses and dfs need one entry per comparison")
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if any(not (math.isfinite(s) and s > 0) for s in ses):
        raise ValueError("every standard error must be positive and finite")
    if m == 0:
        return []
    df_list = list(dfs) if dfs is not None else [None] * m
    raw = [
        p_value(est / se, df, alternative)
        for est, se, df in zip(estimates, ses, df_list, strict=True)
    ]
    adjusted = [float(a) for a in adjust_pvalues(raw, correction) if a is not None]
    rejected = [a < alpha for a in adjusted]
    levels, at_zero = _levels(correction, alpha, rejected)
    out = []
    for i in range(m):
        crit = critical_value(levels[i], df_list[i], alternative)
        est, se = estimates[i], ses[i]
        lower = None if alternative == "smaller" else est - crit * se
        upper = None if alternative == "larger" else est + crit * se
        truncated = False
        if rejected[i] and correction == "holm":
            lower, upper, truncated = _holm_near_end(est, lower, upper, at_zero)
        out.append(
            CorrectedInterval(
                estimate=est,
                ci=Interval(lower, upper),
                level_alpha=levels[i],
                p_value=raw[i],
                p_value_adjusted=adjusted[i],
                significant=rejected[i],
                bounded_at_zero=truncated,
                correction=correction,
            )
        )
    return out


def _levels(correction: str, alpha: float, rejected: list[bool]) -> tuple[list[float], bool]:
    """Per-comparison levels, and whether Holm's rejected bounds sit exactly at 0."""
    m = len(rejected)
    n_rejected = sum(rejected)
    if correction == "none":
        return [alpha] * m, False
    if correction == "bonferroni":
        return [alpha / m] * m, False
    if correction == "bh":
        return [max(n_rejected, 1) * alpha / m] * m, False
    remaining = m - n_rejected
    levels = [alpha / m if r else alpha / remaining for r in rejected]
    return levels, remaining > 0


def _holm_near_end(
    est: float, lower: float | None, upper: float | None, exactly_zero: bool
) -> tuple[float | None, float | None, bool]:
    """Set (``R ≠ I``) or truncate (``R = I``) the bound nearer 0 at 0 (Strassburger–Bretz)."""
    if est > 0 and lower is not None and (exactly_zero or lower < 0):
        return 0.0, upper, True
    if est < 0 and upper is not None and (exactly_zero or upper > 0):
        return lower, 0.0, True
    return lower, upper, False
