"""The readout of one metric for one treatment arm: :class:`LiftResult`.

Every readout engine (fixed-horizon, sequential, Bayesian, and any registered later; see
:mod:`abkit.stats.engines`) returns a :class:`LiftResult`. An engine other than the
fixed-horizon one keeps its own typed result in :attr:`LiftResult.details`; the fields it
reports under the names of :class:`EngineResult` replace the fixed-horizon ones
(:meth:`LiftResult.with_engine`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from abkit.results import Interval, ResultMixin, html_table
from abkit.stats._common import NOT_ENOUGH_DATA, OK
from abkit.stats.estimators import Difference
from abkit.stats.fieller import describe_set
from abkit.vocabulary import Alternative

__all__ = ["TEST_NAMES", "EngineResult", "LiftResult", "not_enough_data"]

TEST_NAMES = {
    "proportion": "two-proportion z-test (unpooled)",
    "mean": "Welch t-test",
    "ratio": "delta-method z-test",
}


class EngineResult(Protocol):
    """What a readout engine's own result reports, read by :meth:`LiftResult.with_engine`.

    ``method`` names the engine's variant (e.g. ``"msprt"``, ``"normal"``); ``p_value`` is
    ``None`` for an engine without p-values (Bayesian). Intervals have ``None`` ends when
    unbounded.
    """

    @property
    def method(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def p_value(self) -> float | None: ...
    @property
    def abs_ci(self) -> Interval | None: ...
    @property
    def rel_ci(self) -> Interval | None: ...
    @property
    def rel_ci_bounded(self) -> bool: ...
    @property
    def significant(self) -> bool: ...
    @property
    def note(self) -> str: ...
    def to_dict(self) -> dict[str, Any]: ...


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


@dataclass(frozen=True)
class LiftResult(ResultMixin):
    """One metric, one treatment arm against control.

    ``control_mean``/``treatment_mean`` are the raw arm estimates (``Σy/n``, or ``Σy/Σd`` for
    a ratio). With CUPED (``cuped=True``) the effect fields (``abs_lift``, intervals,
    p-value) are computed on the adjusted means, reported as ``control_mean_adjusted`` and
    ``treatment_mean_adjusted`` (``None`` without CUPED), so ``abs_lift`` equals
    ``treatment_mean_adjusted - control_mean_adjusted``, not the difference of raw means.

    Intervals are :class:`~abkit.results.Interval` objects; ``None`` for an end means
    unbounded (one-sided intervals, or a Fieller set that does not close). ``rel_ci_set``
    lists the exact Fieller set (a union of intervals) on the relative-lift scale.
    ``status`` is ``"ok"`` or ``"not enough data"`` (then every number is ``None`` and
    ``note`` says why). No field is ever NaN or infinite.

    After a multiplicity correction (:func:`abkit.stats.family.correct_family`),
    ``abs_ci_adjusted``/``rel_ci_adjusted`` are the intervals that agree with the corrected
    significance (``None`` otherwise). ``difference`` keeps the estimated
    :class:`~abkit.stats.estimators.Difference` the readout came from (not displayed), so a
    family correction can rebuild the relative interval at another level.
    """

    metric_type: str
    control_mean: float | None
    treatment_mean: float | None
    abs_lift: float | None
    abs_ci: Interval | None
    rel_lift: float | None
    rel_ci: Interval | None
    rel_ci_bounded: bool
    p_value: float | None
    significant: bool
    method: str
    test: str
    n_control: int
    n_treatment: int
    variance_reduction: float | None
    status: str
    note: str
    alpha: float = 0.05
    alternative: Alternative = "two-sided"
    se_abs: float | None = None
    statistic: float | None = None
    df: float | None = None
    rel_ci_set: tuple[Interval, ...] | None = None
    cuped: bool = False
    theta: float | None = None
    metric: str | None = None
    variant: str | None = None
    cap: str | None = None
    correction: str | None = None
    p_value_adjusted: float | None = None
    details: EngineResult | None = None
    control_mean_adjusted: float | None = None
    treatment_mean_adjusted: float | None = None
    abs_ci_adjusted: Interval | None = None
    rel_ci_adjusted: Interval | None = None
    difference: Difference | None = field(
        default=None, repr=False, compare=False, metadata={"display": False}
    )

    @property
    def ok(self) -> bool:
        return self.status == OK

    def summary(self) -> str:
        """One line for logs and the CLI, e.g. ``B vs control: +12.3% [+0.2%, +24.5%] …``."""
        label = f"{self.variant or 'treatment'} vs control"
        if self.metric:
            label = f"{self.metric}: {label}"
        if self.status != OK:
            return f"{label}: {self.status} ({self.note})"

        def pct(x: float | None) -> str:
            return "∞" if x is None else f"{x:+.2%}"

        if self.rel_lift is None:
            lift = f"{self.abs_lift:+.4g} (absolute)"
        elif self.rel_ci_bounded and self.rel_ci is not None:
            lo, hi = self.rel_ci
            lift = f"{pct(self.rel_lift)} [{'-∞' if lo is None else pct(lo)}, {pct(hi)}]"
        else:
            lift = f"{pct(self.rel_lift)} [interval unbounded]"
        p = "n/a" if self.p_value is None else f"{self.p_value:.3g}"
        if self.p_value_adjusted is not None:
            p += f" ({self.correction}-adjusted {self.p_value_adjusted:.3g})"
        verdict = "significant" if self.significant else "not significant"
        return f"{label}: {lift}, p = {p}, {verdict} at alpha {self.alpha:g} ({self.test})"

    def with_engine(self, result: EngineResult, *, method: str, label: str) -> LiftResult:
        """This fixed-horizon readout with an engine's numbers in place of its own.

        The engine's ``p_value``, intervals, ``significant``, ``status`` and ``note`` replace
        the fixed-horizon ones (its note replaces the fixed one, whose interval remarks refer
        to the fixed critical value); nothing the engine does not report is carried over
        from the fixed readout under the engine's name. ``label`` names the engine in
        ``test``, e.g. ``"always-valid (msprt) on Welch t-test"``.
        """

        def finite(ci: Interval | None) -> Interval | None:
            return None if ci is None else Interval.of(ci.lower, ci.upper)

        kind = result.method
        return replace(
            self,
            method=method,
            test=f"{label} ({kind}) on {self.test}" if kind else f"{label} on {self.test}",
            p_value=_finite(result.p_value),
            abs_ci=finite(result.abs_ci),
            rel_ci=finite(result.rel_ci),
            rel_ci_bounded=bool(result.rel_ci_bounded),
            rel_ci_set=None,
            significant=bool(result.significant),
            note=result.note,
            status=result.status or self.status,
            details=result,
        )

    def _flat_row(self) -> dict[str, Any]:
        row = super()._flat_row()
        del row["details"]  # a nested result: see .details itself
        if self.rel_ci_set is not None:
            row["rel_ci_set"] = describe_set(self.rel_ci_set)
        return row

    def _repr_html_(self) -> str:
        keep = (
            "metric",
            "variant",
            "control_mean",
            "treatment_mean",
            "abs_lift",
            "abs_ci_lower",
            "abs_ci_upper",
            "rel_lift",
            "rel_ci_lower",
            "rel_ci_upper",
            "p_value",
            "p_value_adjusted",
            "significant",
            "test",
            "status",
            "note",
        )
        row = self._flat_row()
        flat = {k: ("" if row.get(k) is None else row[k]) for k in keep}
        return html_table([flat], caption=f"LiftResult ({self.method})")


def not_enough_data(
    metric_type: str,
    reason: str,
    *,
    n_control: int,
    n_treatment: int,
    method: str,
    alpha: float,
    alternative: Alternative,
    cuped: bool,
    metric: str | None,
    variant: str | None,
    cap: str | None,
) -> LiftResult:
    """A :class:`LiftResult` with ``status="not enough data"``: no numbers, ``note=reason``."""
    return LiftResult(
        metric_type=metric_type,
        control_mean=None,
        treatment_mean=None,
        abs_lift=None,
        abs_ci=None,
        rel_lift=None,
        rel_ci=None,
        rel_ci_bounded=False,
        p_value=None,
        significant=False,
        method=method,
        test=TEST_NAMES.get(metric_type, metric_type),
        n_control=n_control,
        n_treatment=n_treatment,
        variance_reduction=None,
        status=NOT_ENOUGH_DATA,
        note=reason,
        alpha=alpha,
        alternative=alternative,
        cuped=cuped,
        metric=metric,
        variant=variant,
        cap=cap,
    )
