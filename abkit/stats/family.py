"""A family of readouts corrected together: adjusted p-values and intervals that agree.

:func:`correct_family` applies :func:`abkit.stats.multiple.apply_correction` (adjusted
p-values, ``significant`` re-decided on them) and adds the intervals consistent with that
decision (:func:`abkit.stats.simultaneous.corrected_intervals`: Bonferroni simultaneous,
Holm-compatible (Strassburger & Bretz 2008) or Benjamini–Yekutieli false-coverage-rate
adjusted intervals for BH):

* ``abs_ci_adjusted`` is that interval on the absolute difference;
* ``rel_ci_adjusted`` is Fieller's relative-lift interval (:mod:`abkit.stats.fieller`) at the
  same per-comparison level, so it excludes 0 exactly when the absolute one does; where Holm
  sets (or truncates) the near end at 0, the relative near end is 0 too. ``None`` when the
  Fieller set is unbounded at that level.

Intervals are added to fixed-horizon readouts only (a sequential or Bayesian readout has
no z/t statistic at a chosen level), and only when the family shares one ``alpha`` and one
alternative; otherwise the results are those of ``apply_correction`` alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from abkit.results import Interval
from abkit.stats.fieller import relative_lift_of
from abkit.stats.lift import LiftResult
from abkit.stats.multiple import (
    CORRECTION_NAMES,
    apply_correction,
    correction_note,
    normalise_method,
)
from abkit.stats.simultaneous import CorrectedInterval, corrected_intervals
from abkit.stats.tails import critical_value

__all__ = ["correct_family"]


def _relative_interval(result: LiftResult, item: CorrectedInterval) -> Interval | None:
    """Fieller's relative interval at the item's per-comparison level (module docstring)."""
    diff = result.difference
    if diff is None or result.rel_lift is None:
        return None
    q = critical_value(item.level_alpha, diff.df, result.alternative)
    rel = relative_lift_of(diff, q, result.alternative)
    if not rel.bounded or rel.ci is None:
        return None
    if not item.bounded_at_zero:
        return rel.ci
    if result.rel_lift > 0:
        return Interval(0.0, rel.ci.upper)
    return Interval(rel.ci.lower, 0.0)


def correct_family(
    results: Sequence[LiftResult], correction: str | None = "holm"
) -> list[LiftResult]:
    """Correct ``results`` as one family; add intervals that agree (module docstring)."""
    canon = normalise_method(correction)
    corrected = apply_correction(results, canon)
    members = [i for i, r in enumerate(corrected) if r.p_value is not None]
    readouts = [corrected[i] for i in members]
    eligible = (
        bool(readouts)
        and all(
            r.method == "fixed" and r.se_abs is not None and r.abs_lift is not None
            for r in readouts
        )
        and len({r.alpha for r in readouts}) == 1
        and len({r.alternative for r in readouts}) == 1
    )
    if not eligible:
        return corrected
    first = readouts[0]
    intervals = corrected_intervals(
        [r.abs_lift for r in readouts if r.abs_lift is not None],
        [r.se_abs for r in readouts if r.se_abs is not None],
        alpha=first.alpha,
        correction=canon,
        dfs=[r.df for r in readouts],
        alternative=first.alternative,
    )
    out = list(corrected)
    for i, item in zip(members, intervals, strict=True):
        r = corrected[i]
        note = results[i].note
        if canon != "none":
            extra = correction_note(CORRECTION_NAMES[canon], len(members), intervals_adjusted=True)
            note = f"{note}; {extra}" if note else extra
        out[i] = replace(
            r,
            abs_ci_adjusted=item.ci,
            rel_ci_adjusted=_relative_interval(r, item),
            note=note,
        )
    return out
