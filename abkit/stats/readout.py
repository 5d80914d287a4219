"""Fixed-horizon readouts: absolute and relative lift, confidence intervals, p-values.

:func:`compare` turns two arms of sufficient statistics into a :class:`LiftResult`.

Tests (the estimator and its variance come from :mod:`abkit.stats.estimators`):

* proportion: unpooled two-proportion z-test, ``z = (p_t - p_c) / sqrt(p_c(1-p_c)/n_c +
  p_t(1-p_t)/n_t)``, the statistic of statsmodels' ``test_proportions_2indep(method="wald")``;
* mean: Welch's t-test with Welch–Satterthwaite degrees of freedom (Welch 1947);
* ratio: delta-method z-test (Deng, Knoblich & Lu 2018).

Tail probabilities use survival functions (``norm.sf``, ``t.sf``), never ``1 - cdf``, so a
p-value of 1e-300 is reported as such instead of 0.

Relative lift and Fieller's interval
------------------------------------
The relative lift is ``ρ - 1`` with ``ρ = μ_t / μ_c``. Its interval is Fieller's (Fieller
1954; see also von Luxburg & Franz 2009 for a modern account): the set of ratios ``ρ`` that
the *same* test used for the p-value does not reject. For a candidate ``ρ`` the statistic

    T(ρ) = (m_t - ρ·m_c) / sqrt(v_t - 2ρ·c + ρ²·v_c)

is z- or t-distributed under ``μ_t = ρ·μ_c`` (``m`` the arm estimates, ``v`` their
variances, ``c = Cov(m_c, m_t)``: zero for independent arms, non-zero for CUPED-adjusted
means because the adjustment centres both arms on the pooled covariate mean). At ``ρ = 1``
``T(1) = Δ / se(Δ)`` is exactly the statistic behind the p-value, so the interval excludes a
relative lift of 0 exactly when ``p < alpha``. Squaring ``|T(ρ)| <= q`` gives the quadratic

    Q(ρ) = a·ρ² - 2b·ρ + k <= 0,   a = m_c² - q²·v_c,   b = m_t·m_c - q²·c,   k = m_t² - q²·v_t,

with ``q`` the two-sided critical value (``z_{1-α/2}``, or the Welch t quantile with the
same df as the p-value). With discriminant ``D = b² - a·k``:

* ``a > 0`` (the control mean is significantly away from 0: ``|m_c|/sqrt(v_c) > q``):
  ``D >= 0`` and the set is the bounded interval ``[(b - √D)/a, (b + √D)/a]``;
* ``a < 0`` and ``D > 0``: the set is the complement ``(-∞, r₁] ∪ [r₂, ∞)``;
* ``a < 0`` and ``D <= 0``: every ratio is compatible with the data (the whole line).

In the last two cases no finite interval is honest: :attr:`LiftResult.rel_ci_bounded` is
``False``, ``rel_ci`` is ``None`` (or half-open) and the note says why. One-sided
alternatives invert the one-sided test: for ``"larger"`` the set is ``{ρ: T(ρ) <= q}``
(``q = z_{1-α}``), which is the union of the quadratic's set with the half-line
``{ρ: m_t - ρ·m_c <= 0}``; ``"smaller"`` mirrors it.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, replace
from typing import Any, Literal

from abkit.errors import NotEnoughDataError
from abkit.stats._common import ALTERNATIVES, NOT_ENOUGH_DATA, OK, Interval
from abkit.stats._common import P_FLOOR as _P_FLOOR
from abkit.stats._render import ResultMixin, ResultTable, html_table
from abkit.stats.estimators import Difference, MetricType, estimate_difference
from abkit.stats.sufficient import MeanStats, RatioStats

Alternative = Literal["two-sided", "larger", "smaller"]
METHODS: tuple[str, ...] = ("fixed", "sequential", "bayesian")


__all__ = [
    "ALTERNATIVES",
    "NOT_ENOUGH_DATA",
    "OK",
    "LiftArrays",
    "LiftResult",
    "compare",
    "compare_difference",
    "compare_many",
    "compare_variants",
    "critical_value",
    "fieller_ratio_set",
    "p_value",
    "results_table",
]

_TEST_NAMES = {
    "proportion": "two-proportion z-test (unpooled)",
    "mean": "Welch t-test",
    "ratio": "delta-method z-test",
}


def _sf(x: Any, df: Any) -> Any:
    """Upper tail ``P(T > x)`` of N(0, 1) (``df`` None) or Student t(df).

    ``scipy.special.ndtr(-x)`` / ``stdtr(df, -x)`` are what ``scipy.stats.norm.sf`` and
    ``t.sf`` evaluate, minus the per-call distribution-object overhead (and they
    vectorise): the upper tail is computed directly, never as ``1 - cdf``, so it keeps
    full relative precision down to about 1e-308.
    """
    from scipy import special

    if df is None:
        return special.ndtr(-x)
    return special.stdtr(df, -x)


def _isf(p: Any, df: Any) -> Any:
    """Inverse of :func:`_sf`: the ``q`` with ``P(T > q) = p``."""
    from scipy import special

    if df is None:
        return -special.ndtri(p)
    return -special.stdtrit(df, p)


def p_value(statistic: float, df: float | None, alternative: str) -> float:
    """Tail probability of ``statistic`` under N(0, 1) (``df=None``) or t(df).

    Uses survival functions so tiny p-values keep their magnitude; ``"larger"`` tests
    treatment > control, ``"smaller"`` treatment < control.
    """
    if alternative == "two-sided":
        p = 2.0 * float(_sf(abs(statistic), df))
    elif alternative == "larger":
        p = float(_sf(statistic, df))
    elif alternative == "smaller":
        p = float(_sf(-statistic, df))
    else:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    return min(p, 1.0)


def critical_value(alpha: float, df: float | None, alternative: str) -> float:
    """``q`` with ``P(T > q) = alpha/2`` (two-sided) or ``alpha`` (one-sided)."""
    tail = alpha / 2.0 if alternative == "two-sided" else alpha
    return float(_isf(tail, df))


def _union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Merge closed intervals (``±inf`` ends allowed) into disjoint sorted ones."""
    out: list[tuple[float, float]] = []
    for lo, hi in sorted(i for i in intervals if i[0] <= i[1]):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _quadratic_set(a: float, b: float, k: float) -> list[tuple[float, float]]:
    """``{ρ : a·ρ² - 2b·ρ + k <= 0}`` as disjoint closed intervals."""
    inf = math.inf
    # Treat |a| below rounding noise of its two terms as zero (a linear inequality).
    if a == 0.0:
        if b > 0:
            return [(k / (2 * b), inf)]
        if b < 0:
            return [(-inf, k / (2 * b))]
        return [(-inf, inf)] if k <= 0 else []
    disc = b * b - a * k
    if a > 0:
        # D >= 0 in exact arithmetic (Q(m_t/m_c) <= 0); clamp rounding.
        root = math.sqrt(max(disc, 0.0))
        # Numerically stable pair of roots of a·ρ² - 2bρ + k.
        s = b + math.copysign(root, b) if b != 0 else root
        if s == 0:
            return [(0.0, 0.0)]
        r1, r2 = sorted((s / a, k / s))
        return [(r1, r2)]
    if disc <= 0:
        return [(-inf, inf)]
    root = math.sqrt(disc)
    s = b + math.copysign(root, b) if b != 0 else root
    r1, r2 = sorted((s / a, k / s))
    return [(-inf, r1), (r2, inf)]


def fieller_ratio_set(
    m_c: float,
    m_t: float,
    v_c: float,
    v_t: float,
    cov: float,
    q: float,
    alternative: str = "two-sided",
) -> list[tuple[float, float]]:
    """Fieller confidence set for ``ρ = μ_t/μ_c`` as disjoint intervals (``±inf`` ends).

    ``q`` is the critical value of the test (two-sided or one-sided as ``alternative``);
    see the module docstring for the derivation.
    """
    # The set is unchanged when a, b and k share a positive factor. Working in units of
    # the largest input keeps b² and a·k finite: for means beyond about 1e77 (or below
    # 1e-77) they overflow (underflow) and the roots came out NaN (or wrong).
    scale = max(abs(m_c), abs(m_t), q * math.sqrt(max(v_c, 0.0)), q * math.sqrt(max(v_t, 0.0)))
    scale = max(scale, q * math.sqrt(abs(cov)))
    if 0.0 < scale < math.inf:
        m_c, m_t = m_c / scale, m_t / scale
        v_c, v_t, cov = v_c / scale / scale, v_t / scale / scale, cov / scale / scale
    a = m_c * m_c - q * q * v_c
    b = m_t * m_c - q * q * cov
    k = m_t * m_t - q * q * v_t
    base = _quadratic_set(a, b, k)
    if alternative == "two-sided":
        return base
    inf = math.inf
    # Half-line where the one-sided statistic is on the non-rejecting side of zero.
    sign = 1.0 if alternative == "larger" else -1.0  # larger: m_t - ρ m_c <= 0
    if m_c == 0:
        half = [(-inf, inf)] if sign * m_t <= 0 else []
    elif sign * m_c > 0:
        half = [(m_t / m_c, inf)]
    else:
        half = [(-inf, m_t / m_c)]
    return _union(base + half)


def _none_if_inf(x: float) -> float | None:
    return None if math.isinf(x) else x


@dataclass(frozen=True)
class LiftResult(ResultMixin):
    """One metric, one treatment arm against control.

    Intervals are ``(lower, upper)`` tuples; ``None`` for an end means unbounded (one-sided
    intervals, or a Fieller set that does not close). ``rel_ci_set`` lists the exact Fieller
    set (a union of intervals) on the relative-lift scale. ``status`` is ``"ok"`` or
    ``"not enough data"`` (then every number is ``None`` and ``note`` says why). No field
    is ever NaN or infinite.
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
    alternative: str = "two-sided"
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
    details: Any = None

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

    def _flat_row(self) -> dict[str, Any]:
        row = super()._flat_row()
        del row["details"]  # a nested result: see .details itself
        if self.rel_ci_set is not None:
            row["rel_ci_set"] = _format_set(self.rel_ci_set)
        return row

    def to_frame(self):  # type: ignore[no-untyped-def]
        import pandas as pd

        return pd.DataFrame([self._flat_row()])

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


def _format_set(intervals: tuple[Interval, ...]) -> str:
    if not intervals:
        return "∅"
    parts = []
    for lo, hi in intervals:
        left = "(-∞" if lo is None else f"[{lo:.4g}"
        right = "∞)" if hi is None else f"{hi:.4g}]"
        parts.append(f"{left}, {right}")
    return " ∪ ".join(parts)


def _not_enough(
    metric_type: str,
    reason: str,
    *,
    n_control: int,
    n_treatment: int,
    method: str,
    alpha: float,
    alternative: str,
    cuped: bool,
    metric: str | None,
    variant: str | None,
    cap: str | None,
) -> LiftResult:
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
        test=_TEST_NAMES.get(metric_type, metric_type),
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


def _check_options(alpha: float, alternative: str, method: str) -> None:
    if not (isinstance(alpha, (int, float)) and 0.0 < alpha < 0.5):
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha!r}")
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def compare_difference(
    diff: Difference,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    metric: str | None = None,
    variant: str | None = None,
    cap: str | None = None,
) -> LiftResult:
    """Fixed-horizon readout of an already estimated :class:`Difference`."""
    _check_options(alpha, alternative, "fixed")
    notes: list[str] = []
    se = diff.se_abs
    stat = diff.abs_diff / se
    p = p_value(stat, diff.df, alternative)
    if p == 0.0:
        p = _P_FLOOR
        notes.append("p-value below the smallest representable double")
    q = critical_value(alpha, diff.df, alternative)
    d = diff.abs_diff
    if alternative == "two-sided":
        abs_ci: Interval = (d - q * se, d + q * se)
    elif alternative == "larger":
        abs_ci = (d - q * se, None)
    else:
        abs_ci = (None, d + q * se)

    m_c, m_t = diff.control_mean, diff.treatment_mean
    ratio_set = fieller_ratio_set(
        m_c,
        m_t,
        diff.var_control_mean,
        diff.var_treatment_mean,
        diff.cov_means,
        q,
        alternative,
    )
    rel_set = tuple((_none_if_inf(lo - 1.0), _none_if_inf(hi - 1.0)) for lo, hi in ratio_set)
    rel_lift = None if m_c == 0 else m_t / m_c - 1.0
    if m_c == 0:
        notes.append("control mean is 0: relative lift is undefined")
    elif rel_lift is not None and not math.isfinite(rel_lift):
        # |m_t/m_c| beyond the double range: no finite relative lift to report.
        rel_lift = None
        notes.append("control mean is too close to 0 for a relative lift")
    elif m_c < 0:
        # ρ - 1 with a negative denominator moves opposite to the absolute lift.
        notes.append(
            "control mean is negative: relative lift is treatment/control - 1, so its sign "
            "is opposite to the absolute lift's"
        )
    rel_ci: Interval | None = None
    bounded = False
    if len(rel_set) == 1 and rel_lift is not None:
        rel_ci = rel_set[0]
        n_inf = sum(end is None for end in rel_ci)
        bounded = n_inf == (0 if alternative == "two-sided" else 1)
        if n_inf == 2:
            rel_ci = None
    if rel_lift is not None and not bounded:
        notes.append(
            "relative-lift interval is unbounded (Fieller set "
            f"{_format_set(rel_set)}): the control mean is not clearly away from 0"
        )
    if min(diff.var_control_mean, diff.var_treatment_mean) == 0:
        if diff.metric_type == "proportion":
            notes.append(
                "one arm has 0% or 100% conversion: the Wald variance rests on the other arm"
            )
        else:
            # The zero-variance arm's mean is taken as exact, so intervals (the relative
            # one collapses when that mean is 0) reflect the other arm's noise only.
            notes.append("one arm has zero variance: the standard error rests on the other arm")
    return LiftResult(
        metric_type=diff.metric_type,
        control_mean=m_c,
        treatment_mean=m_t,
        abs_lift=d,
        abs_ci=abs_ci,
        rel_lift=rel_lift,
        rel_ci=rel_ci,
        rel_ci_bounded=bounded,
        p_value=p,
        significant=p < alpha,
        method="fixed",
        test=_TEST_NAMES[diff.metric_type] + (" with CUPED" if diff.cuped else ""),
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
        rel_ci_set=rel_set,
        cuped=diff.cuped,
        theta=diff.theta,
        metric=metric,
        variant=variant,
        cap=cap,
    )


def _dispatch(
    method: str,
    diff: Difference,
    fixed: LiftResult,
    alpha: float,
    alternative: str,
    options: dict[str, Any],
) -> LiftResult:
    """Hand the difference to the sequential or Bayesian engine; keep its result in ``details``.

    Fields the engine reports under the same names (``p_value``, ``abs_ci``, ``rel_ci``,
    ``significant``, ``note``) replace the fixed-horizon ones, so a sequential readout shows
    always-valid numbers; anything it does not report is left as ``None`` rather than
    silently showing the fixed-horizon value.
    """
    if method == "sequential":
        module = importlib.import_module("abkit.stats.sequential")
        details = module.sequential_readout(diff, alpha=alpha, alternative=alternative, **options)
    else:
        module = importlib.import_module("abkit.stats.bayesian")
        details = module.bayesian_readout(diff, alpha=alpha, **options)

    def get(name: str) -> Any:
        value = getattr(details, name, None)
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    def interval(name: str) -> Interval | None:
        value = get(name)
        if value is None:
            return None
        lo, hi = value
        fix = lambda x: None if x is None or not math.isfinite(x) else float(x)  # noqa: E731
        return (fix(lo), fix(hi))

    rel_ci = interval("rel_ci")
    significant = get("significant")
    p = get("p_value")
    if significant is None:
        significant = p is not None and p < alpha
    note = get("note") or ""
    engine = {"sequential": "always-valid", "bayesian": "Bayesian"}[method]
    kind = get("method")
    return replace(
        fixed,
        method=method,
        test=f"{engine} ({kind}) on {fixed.test}" if kind else f"{engine} on {fixed.test}",
        p_value=p,
        abs_ci=interval("abs_ci"),
        rel_ci=rel_ci,
        rel_ci_bounded=bool(
            get("rel_ci_bounded")
            if hasattr(details, "rel_ci_bounded")
            else (rel_ci is not None and None not in rel_ci)
        ),
        rel_ci_set=None,
        significant=bool(significant),
        # The engine's note replaces the fixed-horizon one (whose interval remarks refer
        # to the fixed critical value).
        note=str(note) if hasattr(details, "note") else fixed.note,
        status=str(get("status") or fixed.status),
        details=details,
    )


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
    cap: Any = None,
    **method_options: Any,
) -> LiftResult:
    """Compare a treatment arm with control (see the module docstring for the methods).

    ``control``/``treatment`` are :class:`MeanStats` (proportion, mean) or
    :class:`RatioStats` (ratio); ``None`` or an empty arm gives a ``"not enough data"``
    result, as do fewer than two units, zero variance in both arms or a zero ratio
    denominator. ``method`` ``"sequential"``/``"bayesian"`` hands the estimated
    :class:`Difference` to :mod:`abkit.stats.sequential` / :mod:`abkit.stats.bayesian`
    with ``method_options``. ``metric``/``variant`` label the result; ``cap`` records an
    outlier cap (an :class:`abkit.stats.outliers.AppliedCap`, a ``Cap`` or a string).
    """
    _check_options(alpha, alternative, method)
    if method == "fixed" and method_options:
        raise TypeError(f"unexpected options for method='fixed': {sorted(method_options)}")
    cap_text = None if cap is None else (cap.describe() if hasattr(cap, "describe") else str(cap))
    n_c = 0 if control is None else control.n
    n_t = 0 if treatment is None else treatment.n
    common = dict(
        n_control=n_c,
        n_treatment=n_t,
        method=method,
        alpha=alpha,
        alternative=alternative,
        cuped=cuped,
        metric=metric,
        variant=variant,
        cap=cap_text,
    )
    for label, arm in (("control", control), ("treatment", treatment)):
        if arm is None or arm.n == 0:
            return _not_enough(metric_type, f"the {label} arm has no units", **common)  # type: ignore[arg-type]
    assert control is not None and treatment is not None
    # cuped=True is a request, not a demand: without a covariate the readout runs
    # unadjusted and says so. A covariate in one arm only is a data bug.
    skipped = ""
    if cuped:
        has = [getattr(arm, "has_covariate", False) for arm in (control, treatment)]
        if not any(has) and metric_type == "ratio":
            skipped = (
                "CUPED not applied: no pre-period covariate (CUPED is not supported for ratio "
                "metrics without the pre-period numerator and denominator sums)"
            )
        elif not any(has):
            skipped = "CUPED not applied: no pre-period covariate"
        elif not all(has):
            raise ValueError("CUPED covariate present in one arm only")
    use_cuped = cuped and not skipped
    common["cuped"] = use_cuped
    try:
        diff = estimate_difference(control, treatment, metric_type=metric_type, cuped=use_cuped)
    except NotEnoughDataError as exc:
        return _not_enough(metric_type, str(exc), **common)  # type: ignore[arg-type]
    fixed = compare_difference(
        diff, alpha=alpha, alternative=alternative, metric=metric, variant=variant, cap=cap_text
    )
    if skipped:
        fixed = replace(fixed, note="; ".join(x for x in (skipped, fixed.note) if x))
    if method == "fixed":
        return fixed
    result = _dispatch(method, diff, fixed, alpha, alternative, method_options)
    if skipped:
        result = replace(result, note="; ".join(x for x in (skipped, result.note) if x))
    return result


def compare_variants(
    arms: Any,
    *,
    metric_type: MetricType,
    control: str | None = None,
    correction: str | None = "holm",
    metric: str | None = None,
    **options: Any,
) -> ResultTable:
    """Every treatment arm against control for one metric, corrected for multiplicity.

    ``arms`` maps variant name to :class:`MeanStats`/:class:`RatioStats` (``None`` for a
    variant without data); ``control`` defaults to the first key. ``correction`` is applied
    across the treatment arms (``"holm"``, ``"bh"``, ``"bonferroni"`` or ``None``); to
    correct across metrics and segments as well, collect the results and call
    :func:`abkit.stats.multiple.apply_correction` once on the whole family.
    """
    from abkit.stats.multiple import apply_correction

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
        results = apply_correction(results, correction)
    caption = f"{metric or 'metric'}: treatment arms vs {control_name}"
    return ResultTable(results, caption=caption)


def results_table(results: list[LiftResult], caption: str | None = None) -> ResultTable:
    """A :class:`ResultTable` (tidy frame + HTML) of several readouts."""
    return ResultTable(results, caption=caption)


# --------------------------------------------------------------------------------------
# Vectorised path: many comparisons in one call
# --------------------------------------------------------------------------------------

_ARRAY_FIELDS = (
    "control_mean",
    "treatment_mean",
    "abs_lift",
    "abs_ci_lower",
    "abs_ci_upper",
    "rel_lift",
    "rel_ci_lower",
    "rel_ci_upper",
    "p_value",
    "se_abs",
    "statistic",
    "df",
)


@dataclass(frozen=True)
class LiftArrays:
    """The readouts of :func:`compare_many`, one array element per comparison.

    Float arrays hold ``NaN`` only where the element has no value (``status`` is
    ``"not enough data"``, an open end of a one-sided or unbounded interval, a relative
    lift with control mean 0, ``df`` of a z-test); :meth:`to_frame` turns those into
    ``<NA>`` and :meth:`result` into ``None``, so no NaN reaches a report.
    """

    metric_type: str
    alpha: float
    alternative: str
    control_mean: Any
    treatment_mean: Any
    abs_lift: Any
    abs_ci_lower: Any
    abs_ci_upper: Any
    rel_lift: Any
    rel_ci_lower: Any
    rel_ci_upper: Any
    rel_ci_bounded: Any
    p_value: Any
    significant: Any
    se_abs: Any
    statistic: Any
    df: Any
    n_control: Any
    n_treatment: Any
    status: Any
    cuped: bool = False
    variance_reduction: Any = None

    def __len__(self) -> int:
        return int(self.p_value.shape[0])

    def to_frame(self):  # type: ignore[no-untyped-def]
        import pandas as pd

        data: dict[str, Any] = {
            "metric_type": self.metric_type,
            "n_control": self.n_control,
            "n_treatment": self.n_treatment,
        }
        for name in _ARRAY_FIELDS:
            data[name] = pd.array(getattr(self, name), dtype="Float64")
            # pd.array keeps NaN as a value for float input; make it missing.
            data[name][pd.isna(getattr(self, name))] = pd.NA
        data["rel_ci_bounded"] = self.rel_ci_bounded
        data["significant"] = self.significant
        if self.variance_reduction is not None:
            vr = pd.array(self.variance_reduction, dtype="Float64")
            vr[pd.isna(self.variance_reduction)] = pd.NA
            data["variance_reduction"] = vr
        data["status"] = self.status
        return pd.DataFrame(data)

    def result(self, i: int) -> LiftResult:
        """Element ``i`` as a :class:`LiftResult` (``None`` for missing values)."""

        def val(name: str) -> float | None:
            x = float(getattr(self, name)[i])
            return None if math.isnan(x) else x

        ok = self.status[i] == OK
        abs_ci = (val("abs_ci_lower"), val("abs_ci_upper")) if ok else None
        rel_ci: Interval | None = (val("rel_ci_lower"), val("rel_ci_upper"))
        if rel_ci == (None, None):
            rel_ci = None
        return LiftResult(
            metric_type=self.metric_type,
            control_mean=val("control_mean"),
            treatment_mean=val("treatment_mean"),
            abs_lift=val("abs_lift"),
            abs_ci=abs_ci,
            rel_lift=val("rel_lift"),
            rel_ci=rel_ci if bool(self.rel_ci_bounded[i]) else None,
            rel_ci_bounded=bool(self.rel_ci_bounded[i]),
            p_value=val("p_value"),
            significant=bool(self.significant[i]),
            method="fixed",
            test=_TEST_NAMES[self.metric_type] + (" with CUPED" if self.cuped else ""),
            n_control=int(self.n_control[i]),
            n_treatment=int(self.n_treatment[i]),
            variance_reduction=None
            if self.variance_reduction is None
            else val("variance_reduction"),
            status=str(self.status[i]),
            note=""
            if ok
            else "not enough data (vectorised path: n < 2, zero variance or zero denominator)",
            alpha=self.alpha,
            alternative=self.alternative,
            se_abs=val("se_abs"),
            statistic=val("statistic"),
            df=val("df"),
            cuped=self.cuped,
        )


def _arm_arrays(arm: Any, metric_type: str) -> tuple[Any, Any, Any]:
    """``(n, mean, var_of_mean)`` arrays from a mapping of sufficient-statistic arrays."""
    import numpy as np

    def col(name: str) -> Any:
        try:
            return np.asarray(arm[name], dtype=float)
        except KeyError:
            raise KeyError(
                f"compare_many: missing column {name!r} for a {metric_type} metric"
            ) from None

    n = col("n")
    safe_n = np.where(n > 0, n, 1.0)
    safe_n1 = np.where(n > 1, n - 1.0, 1.0)
    if metric_type == "ratio":
        ys, yy, ds, dd, yd = (
            col(c) for c in ("num_sum", "num_sum_sq", "den_sum", "den_sum_sq", "num_den_sum")
        )
        safe_ds = np.where(ds != 0, ds, 1.0)
        r = ys / safe_ds
        var_y = (yy - ys * ys / safe_n) / safe_n1
        var_d = (dd - ds * ds / safe_n) / safe_n1
        cov = (yd - ys * ds / safe_n) / safe_n1
        d_bar = safe_ds / safe_n
        v = np.maximum(var_y - 2 * r * cov + r * r * var_d, 0.0) / (safe_n * d_bar * d_bar)
        v = np.where(ds != 0, v, np.nan)
        return n, np.where(ds != 0, r, np.nan), v
    s, ss = col("sum"), col("sum_sq")
    mean = s / safe_n
    if metric_type == "proportion":
        p = np.clip(mean, 0.0, 1.0)
        v = p * (1 - p) / safe_n
    else:
        v = np.maximum((ss - s * s / safe_n) / safe_n1, 0.0) / safe_n
    return n, mean, v


def _cuped_arrays(control: Any, treatment: Any) -> dict[str, Any]:
    """Vectorised twin of ``estimators._cuped_difference`` (same formulas, tested equal)."""
    import numpy as np

    arms = []
    for arm in (control, treatment):
        try:
            cols = {
                k: np.asarray(arm[k], dtype=float)
                for k in ("n", "sum", "sum_sq", "cov_sum", "cov_sum_sq", "cross_sum")
            }
        except KeyError as exc:
            raise KeyError(f"compare_many(cuped=True): missing column {exc.args[0]!r}") from None
        n = cols["n"]
        safe_n = np.where(n > 0, n, 1.0)
        s_yy = np.maximum(cols["sum_sq"] - cols["sum"] ** 2 / safe_n, 0.0)
        s_xx = np.maximum(cols["cov_sum_sq"] - cols["cov_sum"] ** 2 / safe_n, 0.0)
        s_xy = cols["cross_sum"] - cols["cov_sum"] * cols["sum"] / safe_n
        arms.append(
            (
                n,
                safe_n,
                cols["sum"] / safe_n,
                cols["cov_sum"] / safe_n,
                s_yy,
                s_xx,
                s_xy,
                cols["cov_sum_sq"],
            )
        )
    (n_c, sn_c, y_c, x_c, yy_c, xx_c, xy_c, q_c), (n_t, sn_t, y_t, x_t, yy_t, xx_t, xy_t, q_t) = (
        arms
    )
    sxx = xx_c + xx_t
    scale = np.abs(q_c) + np.abs(q_t)
    useful = sxx > 1e-12 * np.maximum(scale, 1e-300)
    theta = np.where(useful, (xy_c + xy_t) / np.where(useful, sxx, 1.0), 0.0)
    big_n = np.where(n_c + n_t > 0, n_c + n_t, 1.0)
    w_c, w_t = n_c / big_n, n_t / big_n
    d_c = np.where(n_c > 1, n_c - 1.0, 1.0)
    d_t = np.where(n_t > 1, n_t - 1.0, 1.0)
    # Sample (n - 1) moments per arm.
    syy_c, sxx_c, sxy_c = yy_c / d_c, xx_c / d_c, xy_c / d_c
    syy_t, sxx_t, sxy_t = yy_t / d_t, xx_t / d_t, xy_t / d_t
    m_c = y_c - theta * w_t * (x_c - x_t)
    m_t = y_t - theta * w_c * (x_t - x_c)
    v_c = (
        syy_c - 2 * theta * w_t * sxy_c + theta**2 * w_t**2 * sxx_c
    ) / sn_c + theta**2 * w_t**2 * sxx_t / sn_t
    v_t = (
        syy_t - 2 * theta * w_c * sxy_t + theta**2 * w_c**2 * sxx_t
    ) / sn_t + theta**2 * w_c**2 * sxx_c / sn_c
    cov = (
        theta * w_c * (sxy_c - theta * w_t * sxx_c) / sn_c
        + theta * w_t * (sxy_t - theta * w_c * sxx_t) / sn_t
    )
    res_c = np.maximum(syy_c - 2 * theta * sxy_c + theta**2 * sxx_c, 0.0) / sn_c
    res_t = np.maximum(syy_t - 2 * theta * sxy_t + theta**2 * sxx_t, 0.0) / sn_t
    raw = syy_c / sn_c + syy_t / sn_t
    reduction = np.where(raw > 0, 1.0 - (res_c + res_t) / np.where(raw > 0, raw, 1.0), 0.0)
    return {
        "n_c": n_c, "n_t": n_t, "m_c": m_c, "m_t": m_t,
        "v_c": np.maximum(v_c, 0.0), "v_t": np.maximum(v_t, 0.0), "cov": cov,
        "df_c": res_c, "df_t": res_t, "reduction": reduction,
    }  # fmt: skip


def compare_many(
    control: Any,
    treatment: Any,
    *,
    metric_type: MetricType,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    cuped: bool = False,
) -> LiftArrays:
    """Many fixed-horizon comparisons in one vectorised call.

    ``control`` and ``treatment`` map the :class:`MeanStats` field names (``n``, ``sum``,
    ``sum_sq``, and ``cov_sum``, ``cov_sum_sq``, ``cross_sum`` for ``cuped=True``) or the
    :class:`RatioStats` names to equal-length arrays (a dict of numpy arrays or a
    DataFrame). Element ``i`` equals ``compare(control_i, treatment_i)`` (same formulas,
    same Fieller set; tested), so a warehouse aggregate of thousands of metric-by-variant
    cells is read out in milliseconds. Inputs are not validated element by element (a
    proportion's ``sum_sq == sum`` is assumed): use :func:`compare` for untrusted input.
    """
    import numpy as np

    _check_options(alpha, alternative, "fixed")
    if metric_type not in _TEST_NAMES:
        raise ValueError(f"metric_type must be one of {tuple(_TEST_NAMES)}, got {metric_type!r}")
    if cuped and metric_type == "ratio":
        raise ValueError(
            "compare_many: CUPED for ratio metrics is not vectorised; use compare() per cell"
        )
    reduction: Any = None
    with np.errstate(all="ignore"):
        if cuped:
            arr = _cuped_arrays(control, treatment)
            n_c, n_t, m_c, m_t = arr["n_c"], arr["n_t"], arr["m_c"], arr["m_t"]
            v_c, v_t, cov = arr["v_c"], arr["v_t"], arr["cov"]
            var = arr["df_c"] + arr["df_t"]
            w_c, w_t = arr["df_c"], arr["df_t"]  # Welch df from the residual variances
            reduction = arr["reduction"]
        else:
            n_c, m_c, v_c = _arm_arrays(control, metric_type)
            n_t, m_t, v_t = _arm_arrays(treatment, metric_type)
            cov = np.zeros(n_c.shape)
            var = v_c + v_t
            w_c, w_t = v_c, v_t
    if n_c.shape != n_t.shape:
        raise ValueError("control and treatment arrays differ in length")
    ok = (n_c >= 2) & (n_t >= 2) & np.isfinite(var) & (var > 0)
    with np.errstate(all="ignore"):
        se = np.sqrt(np.where(ok, var, 1.0))
        d = m_t - m_c
        stat = np.where(ok, d, 0.0) / se
        if metric_type == "mean":
            # Welch–Satterthwaite divided through by (w_c + w_t)² (as estimators.welch_df),
            # so squaring huge or tiny variances cannot overflow or underflow.
            total = np.where(w_c + w_t > 0, w_c + w_t, 1.0)
            f_c, f_t = w_c / total, w_t / total
            df = 1.0 / (f_c * f_c / np.maximum(n_c - 1, 1) + f_t * f_t / np.maximum(n_t - 1, 1))
            df = np.where(ok, df, 1.0)
            dist_df: Any = df
        else:
            df = np.full(n_c.shape, np.nan)
            dist_df = None
        if alternative == "two-sided":
            p = np.minimum(2.0 * _sf(np.abs(stat), dist_df), 1.0)
            q = _isf(alpha / 2.0, dist_df)
            lo, hi = d - q * se, d + q * se
        elif alternative == "larger":
            p = _sf(stat, dist_df)
            q = _isf(alpha, dist_df)
            lo, hi = d - q * se, np.full(d.shape, np.nan)
        else:
            p = _sf(-stat, dist_df)
            q = _isf(alpha, dist_df)
            lo, hi = np.full(d.shape, np.nan), d + q * se
        p = np.where(p == 0.0, _P_FLOOR, p)
        # Fieller (module docstring): bounded exactly when a = m_c² - q²v_c > 0.
        q2 = q * q
        # Same scale-free rescaling as fieller_ratio_set (keeps b² and a·k finite).
        scale = np.maximum.reduce(
            [np.abs(m_c), np.abs(m_t), q * np.sqrt(v_c), q * np.sqrt(v_t), q * np.sqrt(np.abs(cov))]
        )
        scale = np.where((scale > 0) & np.isfinite(scale), scale, 1.0)
        s_c, s_t = m_c / scale, m_t / scale
        a = s_c * s_c - q2 * (v_c / scale / scale)
        b = s_t * s_c - q2 * (cov / scale / scale)
        k = s_t * s_t - q2 * (v_t / scale / scale)
        bounded = ok & (a > 0) & (m_c != 0)
        root = np.sqrt(np.maximum(b * b - a * k, 0.0))
        s = b + np.copysign(root, b)
        # s = 0 only when b = D = 0 (then k = 0 too): a double root at 0.
        degenerate = s == 0
        s = np.where(degenerate, 1.0, s)
        r1 = np.where(degenerate, 0.0, s / a)
        r2 = np.where(degenerate, 0.0, k / s)
        rlo, rhi = np.minimum(r1, r2) - 1.0, np.maximum(r1, r2) - 1.0
        nan = np.full(d.shape, np.nan)
        if alternative == "two-sided":
            rel_lo, rel_hi = rlo, rhi
        else:
            # One-sided sets are half-lines; which end stays depends on the sign of m_c.
            keep_lower = (m_c > 0) == (alternative == "larger")
            rel_lo = np.where(keep_lower, rlo, nan)
            rel_hi = np.where(keep_lower, nan, rhi)
        rel_lo = np.where(bounded, rel_lo, np.nan)
        rel_hi = np.where(bounded, rel_hi, np.nan)
        rel = np.where(ok & (m_c != 0), m_t / np.where(m_c != 0, m_c, 1.0) - 1.0, np.nan)
        rel = np.where(np.isfinite(rel), rel, np.nan)  # overflow: no relative lift (as scalar)

    def mask(x: Any) -> Any:
        return np.where(ok, x, np.nan)

    status = np.where(ok, OK, NOT_ENOUGH_DATA)
    return LiftArrays(
        metric_type=metric_type,
        alpha=alpha,
        alternative=alternative,
        control_mean=mask(m_c),
        treatment_mean=mask(m_t),
        abs_lift=mask(d),
        abs_ci_lower=mask(lo),
        abs_ci_upper=mask(hi),
        rel_lift=rel,
        rel_ci_lower=rel_lo,
        rel_ci_upper=rel_hi,
        rel_ci_bounded=bounded,
        p_value=mask(p),
        significant=ok & (mask(p) < alpha),
        se_abs=mask(se),
        statistic=mask(stat),
        df=np.where(ok, df, np.nan),
        n_control=n_c.astype(np.int64),
        n_treatment=n_t.astype(np.int64),
        status=status,
        cuped=cuped,
        variance_reduction=None if reduction is None else mask(reduction),
    )
