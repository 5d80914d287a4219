"""Point estimates and their variances for one metric, control versus treatment.

Everything here works on sufficient statistics (:mod:`abkit.stats.sufficient`), never on
rows. The output, :class:`Difference`, is the single input of every readout (fixed-horizon,
sequential, Bayesian, guardrails): the two arm means, their variances and covariance, and
the degrees of freedom of the reference distribution.

Per-arm estimators (``n`` units, values ``y_i``; ratio metrics add denominators ``d_i``):

* proportion (``y`` in {0, 1}): ``p = Σy/n``, ``Var(p) = p(1-p)/n`` (the unpooled Wald
  variance; the same one statsmodels uses for ``method="wald"``).
* mean: ``ȳ = Σy/n``, ``Var(ȳ) = s²/n`` with the unbiased ``s²``; the difference uses
  Welch's variance ``s_c²/n_c + s_t²/n_t`` and the Welch–Satterthwaite degrees of freedom
  ``df = (v_c + v_t)² / (v_c²/(n_c-1) + v_t²/(n_t-1))`` (Welch 1947).
* ratio ``R = Σy/Σd`` (for example revenue per order when users are randomised): by the
  delta method (Deng, Knoblich & Lu 2018, "Applying the Delta Method in Metric Analytics")
  ``Var(R) ≈ (s_y² - 2R·s_yd + R²·s_d²) / (n·d̄²)``. Large-sample, so a normal reference.

CUPED (Deng, Xu, Kohavi & Walker 2013, "Improving the Sensitivity of Online Controlled
Experiments by Utilizing Pre-Experiment Data"): with a pre-period covariate ``x``,
``y_adj = y - θ(x - x̄_pool)`` with

    θ = (S_xy,c + S_xy,t) / (S_xx,c + S_xx,t),   S_ab = Σ(a - ā)(b - b̄) within each arm,

that is, θ is estimated on **both arms pooled**, from within-arm (centred) cross-products,
so a treatment effect on ``y`` cannot leak into θ through the difference of arm means.
θ and ``x̄_pool`` are treated as fixed (their sampling error is O(1/n) relative to the
variance and is ignored, as in the paper). The difference of adjusted means is
``(ȳ_t - ȳ_c) - θ(x̄_t - x̄_c)``; because ``x̄_pool`` mixes both arms, the two adjusted
means are correlated, and :attr:`Difference.cov_means` carries that covariance (it is 0
without CUPED). The variance reduction reported is ``1 - Var_cuped(Δ) / Var_raw(Δ)``, which
approaches ``ρ²`` (the squared within-arm correlation of ``x`` and ``y``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from abkit.errors import DataError, NotEnoughDataError
from abkit.stats._render import ResultMixin
from abkit.stats.sufficient import MeanStats, RatioStats

MetricType = Literal["proportion", "mean", "ratio"]
METRIC_TYPES: tuple[str, ...] = ("proportion", "mean", "ratio")

__all__ = [
    "METRIC_TYPES",
    "ArmEstimate",
    "Difference",
    "MetricType",
    "arm_estimate",
    "arm_mean",
    "arm_var_of_mean",
    "cuped_theta",
    "estimate_difference",
    "welch_df",
]


def _check_metric_type(metric_type: str) -> None:
    if metric_type not in METRIC_TYPES:
        raise ValueError(f"metric_type must be one of {METRIC_TYPES}, got {metric_type!r}")


def _check_arm(stats: MeanStats | RatioStats, metric_type: str, label: str = "arm") -> None:
    _check_metric_type(metric_type)
    if metric_type == "ratio":
        if not isinstance(stats, RatioStats):
            raise TypeError(f"{label}: a ratio metric needs RatioStats, got {type(stats).__name__}")
    else:
        if not isinstance(stats, MeanStats):
            raise TypeError(
                f"{label}: a {metric_type} metric needs MeanStats, got {type(stats).__name__}"
            )
    if metric_type == "proportion":
        # A proportion has y in {0, 1}, hence Σy² = Σy and 0 <= Σy <= n.
        assert isinstance(stats, MeanStats)
        tol = 1e-9 * max(1.0, abs(stats.sum))
        if stats.sum < -tol or stats.sum > stats.n + tol:
            raise DataError(
                f"{label}: a proportion needs 0 <= sum <= n, got sum={stats.sum} with n={stats.n}",
                field="sum",
            )
        if abs(stats.sum_sq - stats.sum) > tol:
            raise DataError(
                f"{label}: a proportion needs 0/1 values (sum_sq == sum), "
                f"got sum={stats.sum}, sum_sq={stats.sum_sq}",
                field="sum_sq",
            )


def arm_mean(stats: MeanStats | RatioStats, metric_type: MetricType) -> float:
    """The arm's estimate: ``Σy/n`` (proportion, mean) or ``Σy/Σd`` (ratio)."""
    _check_arm(stats, metric_type)
    if stats.n < 1:
        raise NotEnoughDataError("the arm has no units")
    if isinstance(stats, RatioStats):
        return stats.ratio
    return stats.mean


def arm_var_of_mean(stats: MeanStats | RatioStats, metric_type: MetricType) -> float:
    """Sampling variance of :func:`arm_mean` (formulas in the module docstring).

    Raises :class:`~abkit.errors.NotEnoughDataError` below 2 units (a variance needs 2).
    A proportion with 0 or all conversions has variance 0: legal for one arm, but the
    difference then rests on the other arm alone.
    """
    _check_arm(stats, metric_type)
    if stats.n < 2:
        raise NotEnoughDataError(f"a variance needs at least 2 units, got {stats.n}")
    if metric_type == "proportion":
        assert isinstance(stats, MeanStats)
        p = min(max(stats.sum / stats.n, 0.0), 1.0)
        return p * (1.0 - p) / stats.n
    if metric_type == "mean":
        assert isinstance(stats, MeanStats)
        return stats.var / stats.n
    assert isinstance(stats, RatioStats)
    d_bar = stats.den_sum / stats.n
    if d_bar == 0:
        raise NotEnoughDataError("the ratio's denominator sums to zero")
    r = stats.num_sum / stats.den_sum
    unit_var = stats.num_var - 2.0 * r * stats.num_den_cov + r * r * stats.den_var
    # The linearised variance is a variance (>= 0); clamp rounding noise.
    return max(unit_var, 0.0) / (stats.n * d_bar * d_bar)


@dataclass(frozen=True)
class ArmEstimate(ResultMixin):
    """One arm: its estimate and the sampling variance of that estimate."""

    n: int
    mean: float
    var_of_mean: float


def arm_estimate(stats: MeanStats | RatioStats, metric_type: MetricType) -> ArmEstimate:
    """``ArmEstimate(n, arm_mean, arm_var_of_mean)`` in one call."""
    return ArmEstimate(
        n=stats.n,
        mean=arm_mean(stats, metric_type),
        var_of_mean=arm_var_of_mean(stats, metric_type),
    )


def welch_df(v_c: float, n_c: int, v_t: float, n_t: int) -> float:
    """Welch–Satterthwaite degrees of freedom from the variances of the two means.

    ``df = (v_c + v_t)² / (v_c²/(n_c-1) + v_t²/(n_t-1))`` with ``v = s²/n``.
    """
    total = v_c + v_t
    if not total > 0:
        raise NotEnoughDataError("zero variance in both arms")
    # Divided through by (v_c + v_t)², so squaring cannot overflow for huge variances.
    f_c, f_t = v_c / total, v_t / total
    return 1.0 / (f_c * f_c / (n_c - 1) + f_t * f_t / (n_t - 1))


def _centred(n: int, s_a: float, s_b: float, s_ab: float) -> float:
    """Σ(a - ā)(b - b̄) from raw sums."""
    return s_ab - s_a * s_b / n


def cuped_theta(control: MeanStats, treatment: MeanStats) -> float:
    """CUPED θ from both arms pooled, on within-arm centred sums (see module docstring)."""
    for label, arm in (("control", control), ("treatment", treatment)):
        if not arm.has_covariate:
            raise ValueError(f"CUPED needs a pre-period covariate in the {label} arm")
    s_xy = 0.0
    s_xx = 0.0
    for arm in (control, treatment):
        assert arm.cov_sum is not None and arm.cov_sum_sq is not None
        assert arm.cross_sum is not None
        s_xy += _centred(arm.n, arm.cov_sum, arm.sum, arm.cross_sum)
        s_xx += max(_centred(arm.n, arm.cov_sum, arm.cov_sum, arm.cov_sum_sq), 0.0)
    # A constant covariate carries no information: θ = 0 means "no adjustment".
    scale = sum(abs(a.cov_sum_sq or 0.0) for a in (control, treatment))
    if s_xx <= 1e-12 * max(scale, 1e-300):
        return 0.0
    return s_xy / s_xx


@dataclass(frozen=True)
class Difference(ResultMixin):
    """Treatment minus control for one metric, with everything a readout needs.

    ``se_abs² = var_control_mean + var_treatment_mean - 2·cov_means``. ``df`` is the
    Welch–Satterthwaite degrees of freedom for a Welch t reference, or ``None`` for a
    normal reference (proportions, ratios). ``variance_reduction`` is the CUPED reduction
    of ``Var(Δ)`` (``None`` without CUPED); ``theta`` the CUPED coefficient.
    """

    control_mean: float
    treatment_mean: float
    abs_diff: float
    se_abs: float
    var_control_mean: float
    var_treatment_mean: float
    cov_means: float
    df: float | None
    metric_type: str
    n_control: int
    n_treatment: int
    cuped: bool = False
    theta: float | None = None
    variance_reduction: float | None = None

    @property
    def distribution(self) -> str:
        """``"t"`` (Welch) or ``"normal"``."""
        return "normal" if self.df is None else "t"


def _raw_difference(
    control: MeanStats | RatioStats, treatment: MeanStats | RatioStats, metric_type: MetricType
) -> Difference:
    c = arm_estimate(control, metric_type)
    t = arm_estimate(treatment, metric_type)
    var = c.var_of_mean + t.var_of_mean
    if not var > 0:
        detail = {
            "proportion": "no conversions, or all conversions, in both arms",
            "mean": "every unit has the same value within each arm",
            "ratio": "every unit has the same ratio within each arm",
        }[metric_type]
        raise NotEnoughDataError(f"zero variance in both arms ({detail})")
    df = welch_df(c.var_of_mean, c.n, t.var_of_mean, t.n) if metric_type == "mean" else None
    return Difference(
        control_mean=c.mean,
        treatment_mean=t.mean,
        abs_diff=t.mean - c.mean,
        se_abs=math.sqrt(var),
        var_control_mean=c.var_of_mean,
        var_treatment_mean=t.var_of_mean,
        cov_means=0.0,
        df=df,
        metric_type=metric_type,
        n_control=c.n,
        n_treatment=t.n,
    )


def _cuped_difference(
    control: MeanStats, treatment: MeanStats, metric_type: MetricType
) -> Difference:
    theta = cuped_theta(control, treatment)
    n_c, n_t = control.n, treatment.n
    big_n = n_c + n_t
    w_c, w_t = n_c / big_n, n_t / big_n

    # Per-arm sample moments (n - 1), used for all metric types under CUPED.
    def moments(a: MeanStats) -> tuple[float, float, float]:
        return a.var, a.cov_var, a.cross_cov

    syy_c, sxx_c, sxy_c = moments(control)
    syy_t, sxx_t, sxy_t = moments(treatment)
    xbar_c, xbar_t = control.cov_mean, treatment.cov_mean
    x_pool = w_c * xbar_c + w_t * xbar_t
    m_c = control.mean - theta * (xbar_c - x_pool)
    m_t = treatment.mean - theta * (xbar_t - x_pool)
    # m_c = ȳ_c - θ·w_t(x̄_c - x̄_t), m_t = ȳ_t - θ·w_c(x̄_t - x̄_c); arms independent.
    var_c = (syy_c - 2 * theta * w_t * sxy_c + theta**2 * w_t**2 * sxx_c) / n_c + (
        theta**2 * w_t**2 * sxx_t / n_t
    )
    var_t = (syy_t - 2 * theta * w_c * sxy_t + theta**2 * w_c**2 * sxx_t) / n_t + (
        theta**2 * w_c**2 * sxx_c / n_c
    )
    cov = (
        theta * w_c * (sxy_c - theta * w_t * sxx_c) / n_c
        + theta * w_t * (sxy_t - theta * w_c * sxx_t) / n_t
    )
    # Var(Δ) directly (the same quantity as var_c + var_t - 2cov, with less cancellation).
    res_c = max(syy_c - 2 * theta * sxy_c + theta**2 * sxx_c, 0.0) / n_c
    res_t = max(syy_t - 2 * theta * sxy_t + theta**2 * sxx_t, 0.0) / n_t
    var_diff = res_c + res_t
    if not var_diff > 0:
        raise NotEnoughDataError("zero residual variance after CUPED in both arms")
    # Raw variance on the same (n - 1) footing, so the reduction compares like with like.
    raw_var = syy_c / n_c + syy_t / n_t
    reduction = 1.0 - var_diff / raw_var if raw_var > 0 else 0.0
    df = welch_df(res_c, n_c, res_t, n_t) if metric_type == "mean" else None
    return Difference(
        control_mean=m_c,
        treatment_mean=m_t,
        abs_diff=m_t - m_c,
        se_abs=math.sqrt(var_diff),
        var_control_mean=max(var_c, 0.0),
        var_treatment_mean=max(var_t, 0.0),
        cov_means=cov,
        df=df,
        metric_type=metric_type,
        n_control=n_c,
        n_treatment=n_t,
        cuped=True,
        theta=theta,
        variance_reduction=reduction,
    )


def estimate_difference(
    control: MeanStats | RatioStats,
    treatment: MeanStats | RatioStats,
    *,
    metric_type: MetricType,
    cuped: bool = False,
) -> Difference:
    """Treatment minus control: means, variances, covariance and reference df.

    ``metric_type`` is ``"proportion"`` (unpooled z), ``"mean"`` (Welch t) or ``"ratio"``
    (delta method, z). ``cuped=True`` applies CUPED with θ pooled over both arms; it needs
    the covariate sums in both arms and is not available for ratio metrics (the contract's
    :class:`RatioStats` carries no covariate).

    Raises :class:`~abkit.errors.NotEnoughDataError` when an arm has fewer than two units,
    a ratio's denominator sums to zero, or both arms have zero variance.
    """
    _check_arm(control, metric_type, "control")
    _check_arm(treatment, metric_type, "treatment")
    for label, arm in (("control", control), ("treatment", treatment)):
        if arm.n < 2:
            raise NotEnoughDataError(f"the {label} arm has {arm.n} unit(s); at least 2 are needed")
    if cuped and metric_type == "ratio":
        raise ValueError("CUPED is not supported for ratio metrics (RatioStats has no covariate)")
    if not cuped:
        return _raw_difference(control, treatment, metric_type)
    assert isinstance(control, MeanStats) and isinstance(treatment, MeanStats)
    return _cuped_difference(control, treatment, metric_type)
