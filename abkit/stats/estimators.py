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

CUPED for ratio metrics (Deng, Knoblich & Lu 2018, section on variance reduction; the
regression-adjustment view of Deng et al. 2013). Each unit has post-period numerator and
denominator ``y_i, d_i`` and pre-period ``x_i, e_i``. Per arm, ``R = Ȳ/D̄`` and
``R₀ = X̄/Ē``; to first order (delta method) they are the means of the linearised terms

    u_i = (y_i - R·d_i) / D̄        (post-period influence term, mean R - R_true ≈ ū)
    v_i = (x_i - R₀·e_i) / Ē        (pre-period influence term)

whose within-arm moments come from the sums in :class:`RatioStats`:

    S_uu = (S_yy - 2R·S_yd + R²·S_dd) / D̄²
    S_vv = (S_xx - 2R₀·S_xe + R₀²·S_ee) / Ē²
    S_uv = (S_xy - R₀·S_ey - R·S_xd + R·R₀·S_ed) / (D̄·Ē)

(``S_ab`` the centred cross-products). Then everything is the mean CUPED above with
``(y, x) -> (u, v)``: θ = (S_uv,c + S_uv,t)/(S_vv,c + S_vv,t) pooled over arms, the
adjusted arm ratio is ``R_arm - θ(R₀_arm - R₀_pool)`` with ``R₀_pool = ΣX/ΣE`` over both
arms, i.e. ``R₀_c - R₀_pool = ω_t(R₀_c - R₀_t)`` with weights ``ω_arm = Σe_arm/Σe`` (the
analogue of ``w = n_arm/N``), ``Var`` of an adjusted mean is ``Var(u - θv)/n``, and
:attr:`Difference.cov_means` is the covariance of the two adjusted arm means, so Fieller
intervals for the relative lift work unchanged. A pre-period with no variation in ``v``
(or a pre-period denominator that sums to zero) gives θ = 0: no adjustment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from abkit.errors import DataError, NotEnoughDataError
from abkit.results import ResultMixin
from abkit.stats._arith import Real, clip, maximum
from abkit.stats.sufficient import MeanStats, RatioStats
from abkit.vocabulary import METRIC_TYPES, MetricType

# The metric types estimated here, from moments of per-unit values (a quantile metric has
# its own estimator).
ESTIMATED_TYPES: tuple[MetricType, ...] = tuple(t for t in METRIC_TYPES if t != "quantile")

__all__ = [
    "ESTIMATED_TYPES",
    "ArmEstimate",
    "CupedMoments",
    "Difference",
    "arm_estimate",
    "arm_mean",
    "arm_var_of_mean",
    "cuped_moments",
    "cuped_theta",
    "estimate_difference",
    "mean_var_of_mean",
    "proportion_var_of_mean",
    "ratio_cuped_theta",
    "ratio_linearised",
    "ratio_var_of_mean",
    "welch_df",
]


def _check_metric_type(metric_type: str) -> None:
    if metric_type not in ESTIMATED_TYPES:
        raise ValueError(f"metric_type must be one of {ESTIMATED_TYPES}, got {metric_type!r}")


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
    if isinstance(stats, MeanStats):
        rule = proportion_var_of_mean if metric_type == "proportion" else mean_var_of_mean
        return float(rule(stats.n, stats.sum, stats.sum_sq))
    if stats.den_sum == 0:
        raise NotEnoughDataError("the ratio's denominator sums to zero")
    return float(
        ratio_var_of_mean(
            stats.n,
            stats.num_sum,
            stats.num_sum_sq,
            stats.den_sum,
            stats.den_sum_sq,
            stats.num_den_sum,
        )
    )


# The per-arm variance rules below are written once for floats and numpy arrays alike
# (abkit.stats._arith): arm_var_of_mean evaluates them on one arm, abkit.stats.vectorised on
# arrays of arms.


def _sample_moment(n: Real, sum_a: Real, sum_b: Real, sum_ab: Real) -> Real:
    """Sample (``n - 1``) covariance ``(Σab - Σa·Σb/n)/(n - 1)`` from raw sums."""
    return (sum_ab - sum_a * sum_b / n) / (n - 1)


def proportion_var_of_mean(n: Real, total: Real, total_sq: Real) -> Real:
    """``p(1 - p)/n`` with ``p = Σy/n`` clipped to [0, 1] (``Σy²`` is not needed)."""
    p = clip(total / n, 0.0, 1.0)
    return p * (1.0 - p) / n


def mean_var_of_mean(n: Real, total: Real, total_sq: Real) -> Real:
    """``s²/n`` with the unbiased ``s²``, clamped at 0 against cancellation."""
    return maximum(_sample_moment(n, total, total, total_sq), 0.0) / n


def ratio_var_of_mean(
    n: Real, num_sum: Real, num_sum_sq: Real, den_sum: Real, den_sum_sq: Real, num_den_sum: Real
) -> Real:
    """Delta-method ``Var(R) = (s_y² - 2R·s_yd + R²·s_d²)/(n·d̄²)``, ``R = Σy/Σd``."""
    r = num_sum / den_sum
    d_bar = den_sum / n
    var_y = maximum(_sample_moment(n, num_sum, num_sum, num_sum_sq), 0.0)
    var_d = maximum(_sample_moment(n, den_sum, den_sum, den_sum_sq), 0.0)
    cov = _sample_moment(n, num_sum, den_sum, num_den_sum)
    # The linearised variance is a variance (>= 0); clamp rounding noise.
    return maximum(var_y - 2.0 * r * cov + r * r * var_d, 0.0) / (n * d_bar * d_bar)


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


def ratio_linearised(
    a: RatioStats,
) -> tuple[float, float, float, float, float]:
    """``(R, R₀, s_uu, s_vv, s_uv)``: the arm's post and pre ratios and the sample
    (``n - 1``) moments of the linearised terms ``u``, ``v`` (module docstring)."""
    assert a.pre_num_sum is not None and a.pre_den_sum is not None
    assert a.pre_num_sum_sq is not None and a.pre_den_sum_sq is not None
    assert a.pre_num_pre_den_sum is not None and a.pre_num_num_sum is not None
    assert a.pre_num_den_sum is not None and a.pre_den_num_sum is not None
    assert a.pre_den_den_sum is not None
    n = a.n
    d_bar = a.den_sum / n
    if d_bar == 0:
        raise NotEnoughDataError("the ratio's denominator sums to zero")
    r = a.num_sum / a.den_sum
    s_uu = a.num_var - 2.0 * r * a.num_den_cov + r * r * a.den_var
    s_uu = max(s_uu, 0.0) / (d_bar * d_bar)
    if a.pre_den_sum == 0:
        # No pre-period denominator: R₀ is undefined and v carries no information.
        return r, 0.0, s_uu, 0.0, 0.0
    e_bar = a.pre_den_sum / n
    r0 = a.pre_num_sum / a.pre_den_sum

    def cov(s_a: float, s_b: float, s_ab: float) -> float:
        return _centred(n, s_a, s_b, s_ab) / (n - 1)

    s_xx = cov(a.pre_num_sum, a.pre_num_sum, a.pre_num_sum_sq)
    s_ee = cov(a.pre_den_sum, a.pre_den_sum, a.pre_den_sum_sq)
    s_xe = cov(a.pre_num_sum, a.pre_den_sum, a.pre_num_pre_den_sum)
    s_vv = s_xx - 2.0 * r0 * s_xe + r0 * r0 * s_ee
    # x_i = R₀·e_i for every unit (a constant pre-period ratio) makes v ≡ 0; rounding in the
    # cancellation above must not turn that into a tiny variance that θ then divides by.
    if s_vv <= 1e-12 * (abs(s_xx) + r0 * r0 * abs(s_ee)):
        s_vv = 0.0
    s_vv /= e_bar * e_bar
    s_xy = cov(a.pre_num_sum, a.num_sum, a.pre_num_num_sum)
    s_xd = cov(a.pre_num_sum, a.den_sum, a.pre_num_den_sum)
    s_ey = cov(a.pre_den_sum, a.num_sum, a.pre_den_num_sum)
    s_ed = cov(a.pre_den_sum, a.den_sum, a.pre_den_den_sum)
    s_uv = (s_xy - r0 * s_ey - r * s_xd + r * r0 * s_ed) / (d_bar * e_bar)
    return r, r0, s_uu, s_vv, s_uv


def ratio_cuped_theta(control: RatioStats, treatment: RatioStats) -> float:
    """Ratio-metric CUPED θ: ``Σ S_uv / Σ S_vv`` over both arms (module docstring)."""
    for label, arm in (("control", control), ("treatment", treatment)):
        if not arm.has_covariate:
            raise ValueError(
                f"ratio CUPED needs the pre-period numerator and denominator sums in the "
                f"{label} arm"
            )
    if control.pre_den_sum == 0 or treatment.pre_den_sum == 0:
        return 0.0  # R₀ undefined in an arm: nothing to adjust with
    s_uv = s_vv = 0.0
    for arm in (control, treatment):
        _, _, _, vv, uv = ratio_linearised(arm)
        s_uv += (arm.n - 1) * uv
        s_vv += (arm.n - 1) * vv
    # A pre-period term that never varies carries no information (same rule as the mean).
    if not s_vv > 0:
        return 0.0
    return s_uv / s_vv


@dataclass(frozen=True)
class Difference(ResultMixin):
    """Treatment minus control for one metric, with everything a readout needs.

    ``se_abs² = var_control_mean + var_treatment_mean - 2·cov_means``. ``df`` is the
    Welch–Satterthwaite degrees of freedom for a Welch t reference, or ``None`` for a
    normal reference (proportions, ratios). ``variance_reduction`` is the CUPED reduction
    of ``Var(Δ)`` (``None`` without CUPED); ``theta`` the CUPED coefficient.

    With CUPED, ``control_mean``/``treatment_mean`` are the *adjusted* means the effect is
    computed on, and ``control_mean_raw``/``treatment_mean_raw`` the unadjusted arm means
    (``Σy/n``, or ``Σy/Σd`` for a ratio); without CUPED the ``_raw`` fields are ``None``.
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
    control_mean_raw: float | None = None
    treatment_mean_raw: float | None = None

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


ArmMoments = tuple[Real, Real, Real, Real, Real, Real]
"""One arm for :func:`cuped_moments`: ``(n, ȳ, x̄, s_yy, s_xx, s_xy)``."""


class CupedMoments(NamedTuple):
    """The CUPED-adjusted arm means and their sampling moments (scalars or arrays)."""

    m_c: Real
    m_t: Real
    var_c: Real
    var_t: Real
    cov: Real
    res_c: Real
    res_t: Real
    raw_var: Real


def cuped_moments(
    theta: Real, w_c: Real, w_t: Real, control: ArmMoments, treatment: ArmMoments
) -> CupedMoments:
    """The CUPED algebra of the module docstring on per-arm moments, for scalars or arrays.

    Each arm is ``(n, ȳ, x̄, s_yy, s_xx, s_xy)`` with sample (``n - 1``) moments; ``w`` are
    the arms' weights in the pooled covariate mean. With ``x̄_pool = w_c·x̄_c + w_t·x̄_t``:
    ``m = ȳ - θ(x̄ - x̄_pool)`` per arm, so ``m_c = ȳ_c - θ·w_t(x̄_c - x̄_t)`` and the arms'
    adjusted means are correlated through ``x̄_pool``:

        Var m_c = (s_yy,c - 2θ·w_t·s_xy,c + θ²w_t²·s_xx,c)/n_c + θ²w_t²·s_xx,t/n_t
        Cov(m_c, m_t) = θ·w_c(s_xy,c - θ·w_t·s_xx,c)/n_c + θ·w_t(s_xy,t - θ·w_c·s_xx,t)/n_t

    ``res = max(s_yy - 2θ·s_xy + θ²s_xx, 0)/n`` per arm gives ``Var(Δ) = res_c + res_t`` directly
    (the same quantity as ``Var m_c + Var m_t - 2Cov``, with less cancellation); ``raw_var``
    is the unadjusted ``Var(Δ)`` on the same (``n - 1``) footing. The scalar readout
    (:func:`estimate_difference`) and the vectorised one (:mod:`abkit.stats.vectorised`)
    both evaluate this function.
    """
    n_c, y_c, x_c, syy_c, sxx_c, sxy_c = control
    n_t, y_t, x_t, syy_t, sxx_t, sxy_t = treatment
    x_pool = w_c * x_c + w_t * x_t
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
    return CupedMoments(
        m_c=y_c - theta * (x_c - x_pool),
        m_t=y_t - theta * (x_t - x_pool),
        var_c=maximum(var_c, 0.0),
        var_t=maximum(var_t, 0.0),
        cov=cov,
        res_c=maximum(syy_c - 2 * theta * sxy_c + theta**2 * sxx_c, 0.0) / n_c,
        res_t=maximum(syy_t - 2 * theta * sxy_t + theta**2 * sxx_t, 0.0) / n_t,
        raw_var=syy_c / n_c + syy_t / n_t,
    )


def _cuped_difference(
    control: MeanStats | RatioStats, treatment: MeanStats | RatioStats, metric_type: MetricType
) -> Difference:
    n_c, n_t = control.n, treatment.n
    if isinstance(control, RatioStats) and isinstance(treatment, RatioStats):
        # Ratio metric: the same algebra on the linearised terms (u, v) of the module
        # docstring; "means" are the arm ratios R and R₀, weights are pre-denominator shares.
        theta = ratio_cuped_theta(control, treatment)
        y_c, xbar_c, syy_c, sxx_c, sxy_c = ratio_linearised(control)
        y_t, xbar_t, syy_t, sxx_t, sxy_t = ratio_linearised(treatment)
        pre_total = (control.pre_den_sum or 0.0) + (treatment.pre_den_sum or 0.0)
        if theta == 0.0 or pre_total == 0:
            w_c = w_t = 0.5  # irrelevant when θ = 0; avoids 0/0
            xbar_c = xbar_t = 0.0
        else:
            w_c = (control.pre_den_sum or 0.0) / pre_total
            w_t = (treatment.pre_den_sum or 0.0) / pre_total
    else:
        assert isinstance(control, MeanStats) and isinstance(treatment, MeanStats)
        theta = cuped_theta(control, treatment)
        big_n = n_c + n_t
        w_c, w_t = n_c / big_n, n_t / big_n

        # Per-arm sample moments (n - 1), used for all metric types under CUPED.
        def moments(a: MeanStats) -> tuple[float, float, float]:
            return a.var, a.cov_var, a.cross_cov

        syy_c, sxx_c, sxy_c = moments(control)
        syy_t, sxx_t, sxy_t = moments(treatment)
        y_c, y_t = control.mean, treatment.mean
        xbar_c, xbar_t = control.cov_mean, treatment.cov_mean
    adj = cuped_moments(
        theta,
        w_c,
        w_t,
        (n_c, y_c, xbar_c, syy_c, sxx_c, sxy_c),
        (n_t, y_t, xbar_t, syy_t, sxx_t, sxy_t),
    )
    m_c, m_t, var_c, var_t, cov = (
        float(v) for v in (adj.m_c, adj.m_t, adj.var_c, adj.var_t, adj.cov)
    )
    res_c, res_t = float(adj.res_c), float(adj.res_t)
    var_diff = res_c + res_t
    if not var_diff > 0:
        raise NotEnoughDataError("zero residual variance after CUPED in both arms")
    raw_var = float(adj.raw_var)
    reduction = 1.0 - var_diff / raw_var if raw_var > 0 else 0.0
    df = welch_df(res_c, n_c, res_t, n_t) if metric_type == "mean" else None
    return Difference(
        control_mean=m_c,
        treatment_mean=m_t,
        abs_diff=m_t - m_c,
        se_abs=math.sqrt(var_diff),
        var_control_mean=var_c,
        var_treatment_mean=var_t,
        cov_means=cov,
        df=df,
        metric_type=metric_type,
        n_control=n_c,
        n_treatment=n_t,
        cuped=True,
        theta=theta,
        variance_reduction=reduction,
        control_mean_raw=y_c,
        treatment_mean_raw=y_t,
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
    the covariate sums in both arms (for a ratio metric, the pre-period numerator and
    denominator sums of :class:`RatioStats`; CUPED then works on the delta-method
    linearised terms, see the module docstring).

    Raises :class:`~abkit.errors.NotEnoughDataError` when an arm has fewer than two units,
    a ratio's denominator sums to zero, or both arms have zero variance.
    """
    _check_arm(control, metric_type, "control")
    _check_arm(treatment, metric_type, "treatment")
    for label, arm in (("control", control), ("treatment", treatment)):
        if arm.n < 2:
            raise NotEnoughDataError(f"the {label} arm has {arm.n} unit(s); at least 2 are needed")
    if not cuped:
        return _raw_difference(control, treatment, metric_type)
    if metric_type == "ratio":
        for label, arm in (("control", control), ("treatment", treatment)):
            if not getattr(arm, "has_covariate", False):
                raise ValueError(
                    f"CUPED for a ratio metric needs the pre-period numerator and denominator "
                    f"sums (RatioStats covariate fields) in the {label} arm"
                )
    return _cuped_difference(control, treatment, metric_type)
