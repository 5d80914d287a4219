"""Regression adjustment with several covariates: multi-covariate CUPED and CUPAC.

CUPED (Deng, Xu, Kohavi & Walker 2013) adjusts a metric ``y`` with one pre-period
covariate. With ``k`` covariates ``x = (x_1, …, x_k)`` per unit (the pre-period of several
metrics, or a model's prediction of ``y`` from pre-experiment features: CUPAC, Tang et al.
2020, "Control Using Predictions as Covariates", DoorDash engineering) the same estimator is
the regression-adjusted difference (Lin 2013, "Agnostic notes on regression adjustments to
experimental data"; the common-slope form):

    θ = (S_xx,c + S_xx,t)⁻¹ (S_xy,c + S_xy,t)          pooled within-arm slopes (k-vector)
    Δ = (ȳ_t - ȳ_c) - θᵀ(x̄_t - x̄_c)
    Var(Δ) = Σ_arm (s_yy - 2θᵀs_xy + θᵀS_xx θ) / n_arm

with ``S_ab`` the within-arm centred cross-product matrices (``s`` the same divided by
``n - 1``). By the Frisch–Waugh–Lovell theorem ``Δ`` is exactly the treatment coefficient
of the OLS fit ``y ~ 1 + T + x₁ + … + x_k``; the variance keeps each arm's own residual
variance (a Welch-type variance, robust to unequal residual variances, which the classical
OLS standard error is not), and θ is treated as fixed, as in CUPED. For ``k = 1`` every
quantity equals :func:`abkit.stats.estimators.estimate_difference` with ``cuped=True``.

The variance reduction is ``1 - Var(Δ)/Var_raw(Δ)``; with equal arms it approaches the
pooled within-arm multiple ``R² = θᵀS_xy / S_yy`` (the ``ρ²`` of one covariate).

Sufficient statistics (:class:`RegressionStats`, one ``GROUP BY`` per arm over per-unit
rows): ``n, Σy, Σy², Σx_j, Σx_j·y`` and ``Σx_j·x_l`` for ``j <= l``; they add across
enrolment days like :class:`~abkit.stats.sufficient.MeanStats`.

Collinear covariates (a duplicate column, a covariate constant within both arms) have no
unique θ; the minimum-norm least-squares θ is used, which gives the same adjusted ``Δ``.

In an analysis, a metric's declared covariates (``abkit.metrics.Covariate``) arrive as a
:class:`CovariateMeanStats` per arm (the database computed the sums), and
:func:`compare_adjusted` reads them like :func:`abkit.stats.readout.compare` reads CUPED.
References: Deng et al. 2013 (CUPED); Poyarkov et al. 2016 (a model's prediction as the
covariate, KDD); Tang et al. 2020 (CUPAC); Lin 2013 (OLS adjustment under randomisation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from abkit.errors import NotEnoughDataError
from abkit.results import ResultMixin
from abkit.stats.estimators import Difference, welch_df
from abkit.stats.sufficient import MeanStats
from abkit.vocabulary import Alternative

if TYPE_CHECKING:
    from abkit.stats.lift import LiftResult

__all__ = [
    "CovariateMeanStats",
    "RegressionAdjustment",
    "RegressionStats",
    "compare_adjusted",
    "regression_adjustment",
]

AdjustableType = Literal["mean", "proportion"]


def _triangle_size(k: int) -> int:
    return k * (k + 1) // 2


@dataclass(frozen=True)
class RegressionStats:
    """One arm: per-unit metric ``y`` and covariates ``x_1..x_k`` through their sums.

    ``cov_cross`` holds ``Σx_j·x_l`` for ``j <= l`` in row-major upper-triangle order
    ``(0,0), (0,1), …, (0,k-1), (1,1), …, (k-1,k-1)``.
    """

    n: int
    sum: float
    sum_sq: float
    names: tuple[str, ...]
    cov_sums: tuple[float, ...]
    cov_cross: tuple[float, ...]
    cov_y: tuple[float, ...]

    def __post_init__(self) -> None:
        k = len(self.names)
        if k < 1 or len(set(self.names)) != k:
            raise ValueError("RegressionStats needs at least one covariate, with distinct names")
        if len(self.cov_sums) != k or len(self.cov_y) != k:
            raise ValueError(f"cov_sums and cov_y need {k} values, one per covariate")
        if len(self.cov_cross) != _triangle_size(k):
            raise ValueError(f"cov_cross needs k(k+1)/2 = {_triangle_size(k)} values")
        values = (self.sum, self.sum_sq, *self.cov_sums, *self.cov_cross, *self.cov_y)
        if not all(math.isfinite(v) for v in values):
            raise ValueError("RegressionStats sums must be finite")
        if self.n < 0:
            raise ValueError(f"RegressionStats.n must be >= 0, got {self.n}")

    @property
    def k(self) -> int:
        return len(self.names)

    def __add__(self, other: RegressionStats) -> RegressionStats:
        if not isinstance(other, RegressionStats):
            return NotImplemented
        if other.names != self.names:
            raise ValueError("cannot add RegressionStats with different covariates")

        def plus(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, ...]:
            return tuple(x + y for x, y in zip(a, b, strict=True))

        return RegressionStats(
            n=self.n + other.n,
            sum=self.sum + other.sum,
            sum_sq=self.sum_sq + other.sum_sq,
            names=self.names,
            cov_sums=plus(self.cov_sums, other.cov_sums),
            cov_cross=plus(self.cov_cross, other.cov_cross),
            cov_y=plus(self.cov_y, other.cov_y),
        )

    @classmethod
    def from_values(
        cls, y: Sequence[float] | np.ndarray, x: np.ndarray, names: Sequence[str]
    ) -> RegressionStats:
        """From per-unit values: ``y`` of shape ``(n,)``, ``x`` of shape ``(n, k)``."""
        yv = np.asarray(y, dtype=float)
        xm = np.asarray(x, dtype=float)
        if xm.ndim == 1:
            xm = xm[:, None]
        if xm.shape[0] != yv.size:
            raise ValueError("x needs one row per unit")
        gram = xm.T @ xm
        rows, cols = np.triu_indices(xm.shape[1])
        return cls(
            n=int(yv.size),
            sum=float(yv.sum()),
            sum_sq=float(yv @ yv),
            names=tuple(names),
            cov_sums=tuple(float(v) for v in xm.sum(axis=0)),
            cov_cross=tuple(float(v) for v in gram[rows, cols]),
            cov_y=tuple(float(v) for v in xm.T @ yv),
        )

    @classmethod
    def from_mean_stats(cls, stats: MeanStats, name: str = "pre_period") -> RegressionStats:
        """The one-covariate (CUPED) arm of :class:`MeanStats` in this layout."""
        if stats.cov_sum is None or stats.cov_sum_sq is None or stats.cross_sum is None:
            raise ValueError("the MeanStats has no covariate")
        return cls(
            n=stats.n,
            sum=stats.sum,
            sum_sq=stats.sum_sq,
            names=(name,),
            cov_sums=(stats.cov_sum,),
            cov_cross=(stats.cov_sum_sq,),
            cov_y=(stats.cross_sum,),
        )

    def gram(self) -> np.ndarray:
        """The ``k × k`` matrix of raw sums ``Σx_j·x_l``."""
        k = self.k
        out = np.empty((k, k))
        rows, cols = np.triu_indices(k)
        out[rows, cols] = self.cov_cross
        out[cols, rows] = self.cov_cross
        return out

    def moments(self) -> tuple[float, np.ndarray, np.ndarray, float, np.ndarray]:
        """``(s_yy, s_xy, S_xx, ȳ, x̄)``: sample (``n - 1``) moments and means."""
        n = self.n
        if n < 2:
            raise NotEnoughDataError(f"a variance needs at least 2 units, got {n}")
        x_sum = np.asarray(self.cov_sums)
        s_yy = max((self.sum_sq - self.sum * self.sum / n) / (n - 1), 0.0)
        s_xy = (np.asarray(self.cov_y) - x_sum * self.sum / n) / (n - 1)
        s_xx = (self.gram() - np.outer(x_sum, x_sum) / n) / (n - 1)
        return s_yy, s_xy, s_xx, self.sum / n, x_sum / n


@dataclass(frozen=True)
class CovariateMeanStats(MeanStats):
    """One arm of a proportion or mean metric with declared covariates.

    The :class:`MeanStats` fields carry ``y`` and the metric's own pre-period ``x`` (so
    everything that reads one covariate, such as the balance check, is unchanged);
    ``regression`` carries the sums over every covariate, ``x`` first, then the declared
    ones in order (names ``"pre"``, ``"c1"``, ... ``"ck"``). Adds up like MeanStats.
    """

    regression: RegressionStats | None = None

    def __post_init__(self) -> None:
        if self.regression is not None:
            reg = self.regression
            same = math.isclose(reg.sum, self.sum, rel_tol=1e-9, abs_tol=1e-9) and math.isclose(
                reg.sum_sq, self.sum_sq, rel_tol=1e-9, abs_tol=1e-9
            )
            if reg.n != self.n or not same:
                raise ValueError("the regression sums describe other units than the arm's")
        # the MeanStats checks, on its own fields only
        MeanStats.__post_init__(self.base())

    def base(self) -> MeanStats:
        """The :class:`MeanStats` part (own pre-period covariate only)."""
        return MeanStats(
            n=self.n,
            sum=self.sum,
            sum_sq=self.sum_sq,
            cov_sum=self.cov_sum,
            cov_sum_sq=self.cov_sum_sq,
            cross_sum=self.cross_sum,
        )

    def __add__(self, other: MeanStats) -> MeanStats:
        if not isinstance(other, MeanStats):
            return NotImplemented
        base = self.base() + (other.base() if isinstance(other, CovariateMeanStats) else other)
        mine, theirs = self.regression, getattr(other, "regression", None)
        if (mine is None) != (theirs is None):
            raise ValueError("cannot add statistics with and without declared covariates")
        reg = None if mine is None or theirs is None else mine + theirs
        return CovariateMeanStats(**vars(base), regression=reg)

    @classmethod
    def from_sums(
        cls, n: int, base: dict[str, float], sums: Mapping[str, float], k: int
    ) -> CovariateMeanStats:
        """From the database's sums: the MeanStats fields and ``reg_sum_j``, ``reg_y_j``,
        ``reg_a_b`` (``a <= b`` over ``(x, c1..ck)``; :func:`abkit.metrics.kinds.proportion.
        regression_sums`)."""
        if base.get("cov_sum") is None:
            raise ValueError("declared covariates need the own pre-period covariate")
        cross = []
        for a in range(k + 1):
            for b in range(a, k + 1):
                cross.append(base["cov_sum_sq"] if a == b == 0 else sums[f"reg_{a}_{b}"])
        reg = RegressionStats(
            n=n,
            sum=base["sum"],
            sum_sq=base["sum_sq"],
            names=covariate_names(k),
            cov_sums=(base["cov_sum"], *[sums[f"reg_sum_{j}"] for j in range(1, k + 1)]),
            cov_cross=tuple(cross),
            cov_y=(base["cross_sum"], *[sums[f"reg_y_{j}"] for j in range(1, k + 1)]),
        )
        return cls(n=n, **base, regression=reg)

    @classmethod
    def from_values(  # type: ignore[override]
        cls, y: Sequence[float] | np.ndarray, x: np.ndarray, extra: np.ndarray | None = None
    ) -> CovariateMeanStats:
        """From per-unit values: ``y``, the own pre-period ``x`` and ``extra`` of shape
        ``(n, k)`` (tests, simulations)."""
        base = MeanStats.from_values(y, x)
        yv = np.asarray(y, dtype=float)
        extra_m = np.zeros((yv.size, 0)) if extra is None else np.asarray(extra, dtype=float)
        xm = np.column_stack([np.asarray(x, dtype=float), extra_m])
        reg = RegressionStats.from_values(yv, xm, covariate_names(xm.shape[1] - 1))
        return cls(**vars(base), regression=reg)


def covariate_names(k: int) -> tuple[str, ...]:
    """``("pre", "c1", ..., "ck")``: the own pre-period then ``k`` declared covariates."""
    return ("pre", *[f"c{j}" for j in range(1, k + 1)])


def _pooled_theta(s_xx: np.ndarray, s_xy: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Solve ``S_xx θ = S_xy``; covariates with no within-arm variation get ``θ_j = 0``."""
    theta = np.zeros(s_xy.size)
    # A covariate constant within each arm carries no information (CUPED's rule).
    live = np.diag(s_xx) > 1e-12 * np.maximum(scale, 1e-300)
    if not live.any():
        return theta
    sub = s_xx[np.ix_(live, live)]
    theta[live] = np.linalg.lstsq(sub, s_xy[live], rcond=None)[0]
    return theta


@dataclass(frozen=True)
class RegressionAdjustment(ResultMixin):
    """The adjusted difference and what the adjustment did.

    ``difference`` is the same :class:`~abkit.stats.estimators.Difference` every readout
    consumes (``cuped=True``; ``theta`` set only for one covariate). ``coefficients`` are
    the pooled within-arm slopes θ in the order of ``names``; ``r_squared`` the pooled
    within-arm multiple R² (the expected reduction), ``achieved_reduction`` the reduction
    of ``Var(Δ)`` actually obtained.
    """

    difference: Difference
    names: tuple[str, ...]
    coefficients: tuple[float, ...]
    r_squared: float
    achieved_reduction: float


def regression_adjustment(
    control: RegressionStats,
    treatment: RegressionStats,
    *,
    metric_type: AdjustableType = "mean",
) -> RegressionAdjustment:
    """Regression-adjusted treatment-minus-control difference (module docstring).

    ``metric_type="mean"`` uses a Welch t reference on the residual variances,
    ``"proportion"`` a normal one (as CUPED does for proportions). Ratio metrics are not
    supported here (their CUPED is in :mod:`abkit.stats.estimators`).
    """
    if metric_type not in ("mean", "proportion"):
        raise ValueError(f"regression adjustment supports mean and proportion, not {metric_type!r}")
    if control.names != treatment.names:
        raise ValueError("both arms need the same covariates in the same order")
    for label, arm in (("control", control), ("treatment", treatment)):
        if arm.n < 2:
            raise NotEnoughDataError(f"the {label} arm has {arm.n} unit(s); at least 2 are needed")
    n_c, n_t = control.n, treatment.n
    syy_c, sxy_c, sxx_c, y_c, x_c = control.moments()
    syy_t, sxy_t, sxx_t, y_t, x_t = treatment.moments()
    pooled_xx = (n_c - 1) * sxx_c + (n_t - 1) * sxx_t
    pooled_xy = (n_c - 1) * sxy_c + (n_t - 1) * sxy_t
    scale = np.abs(np.diag(control.gram())) + np.abs(np.diag(treatment.gram()))
    theta = _pooled_theta(pooled_xx, pooled_xy, scale)
    w_c, w_t = n_c / (n_c + n_t), n_t / (n_c + n_t)
    x_pool = w_c * x_c + w_t * x_t
    m_c = y_c - float(theta @ (x_c - x_pool))
    m_t = y_t - float(theta @ (x_t - x_pool))
    # Quadratic forms θᵀs_xy and θᵀS_xxθ per arm; the algebra is CUPED's with θ a vector.
    txy_c, txy_t = float(theta @ sxy_c), float(theta @ sxy_t)
    txx_c, txx_t = float(theta @ sxx_c @ theta), float(theta @ sxx_t @ theta)
    var_c = (syy_c - 2 * w_t * txy_c + w_t**2 * txx_c) / n_c + w_t**2 * txx_t / n_t
    var_t = (syy_t - 2 * w_c * txy_t + w_c**2 * txx_t) / n_t + w_c**2 * txx_c / n_c
    cov = w_c * (txy_c - w_t * txx_c) / n_c + w_t * (txy_t - w_c * txx_t) / n_t
    res_c = max(syy_c - 2 * txy_c + txx_c, 0.0) / n_c
    res_t = max(syy_t - 2 * txy_t + txx_t, 0.0) / n_t
    var_diff = res_c + res_t
    if not var_diff > 0:
        raise NotEnoughDataError("zero residual variance after adjustment in both arms")
    raw_var = syy_c / n_c + syy_t / n_t
    reduction = 1.0 - var_diff / raw_var if raw_var > 0 else 0.0
    pooled_yy = (n_c - 1) * syy_c + (n_t - 1) * syy_t
    r_squared = float(theta @ pooled_xy) / pooled_yy if pooled_yy > 0 else 0.0
    difference = Difference(
        control_mean=m_c,
        treatment_mean=m_t,
        abs_diff=m_t - m_c,
        se_abs=math.sqrt(var_diff),
        var_control_mean=max(var_c, 0.0),
        var_treatment_mean=max(var_t, 0.0),
        cov_means=cov,
        df=welch_df(res_c, n_c, res_t, n_t) if metric_type == "mean" else None,
        metric_type=metric_type,
        n_control=n_c,
        n_treatment=n_t,
        cuped=True,
        theta=float(theta[0]) if theta.size == 1 else None,
        variance_reduction=reduction,
        control_mean_raw=y_c,
        treatment_mean_raw=y_t,
    )
    return RegressionAdjustment(
        difference=difference,
        names=control.names,
        coefficients=tuple(float(v) for v in theta),
        r_squared=min(max(r_squared, 0.0), 1.0),
        achieved_reduction=reduction,
    )


def compare_adjusted(
    control: RegressionStats,
    treatment: RegressionStats,
    *,
    metric_type: AdjustableType,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    method: str = "fixed",
    metric: str | None = None,
    variant: str | None = None,
    cap: str | None = None,
    labels: Sequence[str] | None = None,
    **method_options: Any,
) -> LiftResult:
    """The readout of :func:`regression_adjustment`, like :func:`abkit.stats.readout.compare`
    with ``cuped=True``: the fixed-horizon readout of the adjusted difference, then the
    engine registered for ``method`` (sequential, Bayesian, ...) on the same difference.
    ``labels`` name the covariates in the note (default: the statistics' names)."""
    from abkit.stats.engines import get_engine
    from abkit.stats.fixed import compare_difference
    from abkit.stats.lift import not_enough_data

    engine = get_engine(method)
    unknown = sorted(set(method_options) - engine.options)
    if unknown:
        raise TypeError(f"unexpected options for method={method!r}: {unknown}")
    try:
        adjusted = regression_adjustment(control, treatment, metric_type=metric_type)
    except NotEnoughDataError as exc:
        return not_enough_data(
            metric_type,
            str(exc),
            n_control=control.n,
            n_treatment=treatment.n,
            method=method,
            alpha=alpha,
            alternative=alternative,
            cuped=True,
            metric=metric,
            variant=variant,
            cap=cap,
        )
    names = list(labels) if labels is not None else list(adjusted.names)
    note = (
        f"regression adjustment on {len(names)} covariates ({', '.join(names)}): "
        f"pooled R² = {adjusted.r_squared:.3f}"
    )
    base = compare_difference(
        adjusted.difference,
        alpha=alpha,
        alternative=alternative,
        metric=metric,
        variant=variant,
        cap=cap,
    )
    base = replace(base, note="; ".join(x for x in (note, base.note) if x))
    result = engine.read(adjusted.difference, base, method_options)
    if result is not base and note not in (result.note or ""):
        result = replace(result, note="; ".join(x for x in (note, result.note) if x))
    return result
