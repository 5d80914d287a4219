"""Readouts of one metric: :func:`compare` (two arms) and :func:`compare_variants` (every arm).

:func:`compare` turns two arms of sufficient statistics into a :class:`LiftResult`:

1. the difference and its variance (:func:`abkit.stats.estimators.estimate_difference`,
   with CUPED when asked and possible);
2. the fixed-horizon readout of it (:func:`abkit.stats.fixed.compare_difference`: z or
   Welch t test, Fieller's relative interval);
3. the engine registered for ``method`` (:mod:`abkit.stats.engines`), which replaces what it
   computes differently (``"sequential"``: always-valid mSPRT; ``"bayesian"``: posterior).

The pieces live in their own modules: tail functions in :mod:`abkit.stats.tails`, Fieller's
interval in :mod:`abkit.stats.fieller`, the result type in :mod:`abkit.stats.lift`, many
comparisons at once in :mod:`abkit.stats.vectorised`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from abkit.errors import NotEnoughDataError
from abkit.results import ResultTable
from abkit.stats._common import NOT_ENOUGH_DATA, OK, check_alpha_alternative
from abkit.stats.engines import get_engine
from abkit.stats.estimators import estimate_difference
from abkit.stats.family import correct_family
from abkit.stats.fixed import compare_difference
from abkit.stats.lift import LiftResult, not_enough_data
from abkit.stats.outliers import AppliedCap, Cap
from abkit.stats.sufficient import MeanStats, RatioStats
from abkit.stats.vectorised import LiftArrays, compare_many
from abkit.vocabulary import Alternative, MetricType

__all__ = [
    "NOT_ENOUGH_DATA",
    "OK",
    "LiftArrays",
    "LiftResult",
    "compare",
    "compare_many",
    "compare_variants",
    "results_table",
]


def _cuped_skip_reason(
    control: MeanStats | RatioStats, treatment: MeanStats | RatioStats, metric_type: str
) -> str:
    """Why a requested CUPED cannot run ("" when it can).

    ``cuped=True`` is a request, not a demand: without a covariate the readout runs
    unadjusted and says so. A covariate in one arm only is a data bug.
    """
    has = [arm.has_covariate for arm in (control, treatment)]
    if not any(has) and metric_type == "ratio":
        return (
            "CUPED not applied: no pre-period covariate (CUPED is not supported for ratio "
            "metrics without the pre-period numerator and denominator sums)"
        )
    if not any(has):
        return "CUPED not applied: no pre-period covariate"
    if not all(has):
        raise ValueError("CUPED covariate present in one arm only")
    return ""


def _prepend_note(result: LiftResult, note: str) -> LiftResult:
    return replace(result, note="; ".join(x for x in (note, result.note) if x))


def compare(
    control: MeanStats | RatioStats | None,
    treatment: MeanStats | RatioStats | None,
    *,
    metric_type: MetricType,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    cuped: bool = False,
    method: str = "fixed",
    metric: str | None = None,
    variant: str | None = None,
    cap: AppliedCap | Cap | str | None = None,
    **method_options: Any,
) -> LiftResult:
    """Compare a treatment arm with control (the steps are in the module docstring).

    ``control``/``treatment`` are :class:`MeanStats` (proportion, mean) or
    :class:`RatioStats` (ratio); ``None`` or an empty arm gives a ``"not enough data"``
    result, as do fewer than two units, zero variance in both arms or a zero ratio
    denominator. ``method`` names a registered engine (``"fixed"``, ``"sequential"``,
    ``"bayesian"``), which receives ``method_options``. ``metric``/``variant`` label the
    result; ``cap`` records an outlier cap (an :class:`AppliedCap`, a :class:`Cap` or text).
    """
    check_alpha_alternative(alpha, alternative)
    engine = get_engine(method)
    unknown = sorted(set(method_options) - engine.options)
    if unknown:
        raise TypeError(f"unexpected options for method={method!r}: {unknown}")
    cap_text = None if cap is None else (cap if isinstance(cap, str) else cap.describe())
    n_c = 0 if control is None else control.n
    n_t = 0 if treatment is None else treatment.n

    def empty(reason: str, use_cuped: bool) -> LiftResult:
        return not_enough_data(
            metric_type,
            reason,
            n_control=n_c,
            n_treatment=n_t,
            method=method,
            alpha=alpha,
            alternative=alternative,
            cuped=use_cuped,
            metric=metric,
            variant=variant,
            cap=cap_text,
        )

    if control is None or control.n == 0:
        return empty("the control arm has no units", cuped)
    if treatment is None or treatment.n == 0:
        return empty("the treatment arm has no units", cuped)
    skipped = _cuped_skip_reason(control, treatment, metric_type) if cuped else ""
    use_cuped = cuped and not skipped
    try:
        diff = estimate_difference(control, treatment, metric_type=metric_type, cuped=use_cuped)
    except NotEnoughDataError as exc:
        return empty(str(exc), use_cuped)
    base = compare_difference(
        diff, alpha=alpha, alternative=alternative, metric=metric, variant=variant, cap=cap_text
    )
    if skipped:
        base = _prepend_note(base, skipped)
    result = engine.read(diff, base, method_options)
    if skipped and result is not base:
        result = _prepend_note(result, skipped)
    return result


def compare_variants(
    arms: Mapping[str, MeanStats | RatioStats | None],
    *,
    metric_type: MetricType,
    control: str | None = None,
    correction: str | None = "holm",
    metric: str | None = None,
    **options: Any,
) -> ResultTable[LiftResult]:
    """Every treatment arm against control for one metric, corrected for multiplicity.

    ``arms`` maps variant name to :class:`MeanStats`/:class:`RatioStats` (``None`` for a
    variant without data); ``control`` defaults to the first key. ``correction`` is applied
    across the treatment arms (``"holm"``, ``"bh"``, ``"bonferroni"`` or ``None``); to
    correct across metrics and segments as well, collect the results and call
    :func:`abkit.stats.family.correct_family` once on the whole family (it adds the
    intervals that agree with the corrected significance).
    """
    names = list(arms)
    if len(names) < 2:
        raise ValueError("compare_variants needs a control and at least one treatment arm")
    control_name = names[0] if control is None else control
    if control_name not in arms:
        raise ValueError(f"control {control_name!r} is not one of {names}")
    results = [
        compare(
            arms[control_name],
            arms[name],
            metric_type=metric_type,
            metric=metric,
            variant=name,
            **options,
        )
        for name in names
        if name != control_name
    ]
    if correction is not None and len(results) > 1:
        results = correct_family(results, correction)
    caption = f"{metric or 'metric'}: treatment arms vs {control_name}"
    return ResultTable(results, caption=caption)


def results_table(results: list[LiftResult], caption: str | None = None) -> ResultTable[LiftResult]:
    """A :class:`~abkit.results.ResultTable` (tidy frame + HTML) of several readouts."""
    return ResultTable(results, caption=caption)
