"""Bayesian readout: probability to beat control, expected loss, credible intervals.

Two engines.

Normal approximation (:func:`bayesian_readout`, every metric type). The arm estimates
``m = (m_c, m_t)`` from :mod:`abkit.stats.estimators` are treated as
``m ~ N(X·β, S)`` with ``β = (μ_c, δ)``, ``X = [[1, 0], [1, 1]]`` and ``S`` their sampling
covariance (``Var m_c``, ``Var m_t``, and the CUPED covariance). Priors: flat on the
control mean ``μ_c``; on the difference ``δ`` either flat (default) or a *sceptical*
``N(0, prior_sd²)`` that shrinks lifts towards 0 (set ``prior_sd`` from the spread of past
experiments' lifts). The posterior is Gaussian with precision
``P = Xᵀ S⁻¹ X + diag(0, 1/prior_sd²)`` and mean ``P⁻¹ Xᵀ S⁻¹ m`` (conjugate normal
model; Gelman et al., *Bayesian Data Analysis*, 3rd ed., §14.8). With the flat prior the
posterior of ``δ`` is ``N(m_t - m_c, se²)``, so the credible interval equals the Wald
interval and ``P(δ > 0) = 1 - p`` of the one-sided z-test.

With ``δ ~ N(m, s²)`` a posteriori and ``x = m/s`` (higher is better; mirrored otherwise):

    P(treatment beats control) = Φ(x)
    expected loss of shipping treatment  E[max(0, -δ)] = s·(φ(x) - x·Φ(-x))
    expected loss of keeping control     E[max(0,  δ)] = s·(φ(x) + x·Φ(x))

(the "risk" of Stucchio 2015's Bayesian A/B testing, in the metric's units; the
``_rel`` variants divide by ``|μ_c|``). The relative lift ``δ/μ_c`` uses the joint
posterior of ``(μ_c, δ)``: when ``μ_c`` keeps one sign, ``P(δ/μ_c <= t) = P(δ - t·μ_c <= 0)``
is a normal probability, and the equal-tailed credible interval solves a quadratic, i.e.
Fieller's construction on the posterior (the same code:
:func:`abkit.stats.fieller.relative_lift`). The approximation error of each tail
probability is at most ``P(μ_c on the other side of 0)``, reported in the note when it
exceeds 1e-4; when ``|E μ_c| <= z·sd(μ_c)`` the interval is unbounded and reported so.

Beta-Binomial (:func:`beta_binomial_readout`, proportions). Independent ``Beta(a₀, b₀)``
priors (default uniform ``Beta(1, 1)``) give ``Beta(a₀ + x, b₀ + n - x)`` posteriors.
``P(p_t > p_c)`` and both expected losses are computed by one-dimensional numerical
integration (exact up to quadrature error, no Monte Carlo): with ``X ~ Beta(a, b)``,
``E[(X - y)⁺] = (a/(a+b))·I_{1-y}(b, a+1) - y·I_{1-y}(b, a)``. Credible intervals for the
absolute and relative lift are Monte Carlo quantiles from a fixed seed (``draws``
posterior draws; a repeat call gives identical numbers).

``significant`` is ``True`` when the equal-tailed ``1-α`` credible interval of the
absolute lift excludes 0 (equivalently ``P(beat) > 1 - α/2`` or ``< α/2``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import integrate, special
from scipy import stats as sps

from abkit.results import Interval, ResultMixin
from abkit.stats._common import NOT_ENOUGH_DATA, OK
from abkit.stats.estimators import Difference
from abkit.stats.fieller import relative_lift
from abkit.stats.lift import LiftResult
from abkit.stats.sufficient import MeanStats
from abkit.vocabulary import Method

__all__ = [
    "BayesianEngine",
    "BayesianResult",
    "bayesian_readout",
    "beta_binomial_readout",
    "normal_expected_loss",
]


@dataclass(frozen=True)
class BayesianResult(ResultMixin):
    """A Bayesian readout of treatment against control.

    ``control_mean``/``treatment_mean`` are the arm estimates the posterior is built on
    (CUPED-adjusted when the difference is; the raw means are on the
    :class:`~abkit.stats.lift.LiftResult`). ``abs_lift``/``rel_lift`` are posterior
    means/medians of ``δ`` and ``δ/μ_c``;
    ``abs_ci``/``rel_ci`` equal-tailed ``1-α`` credible intervals (``None`` ends when
    unbounded). ``prob_beat_control`` is the posterior probability that the treatment is
    better in the metric's good direction. ``expected_loss_treatment`` is what shipping the
    treatment costs in expectation if it is in fact worse (metric units), and
    ``expected_loss_control`` the same for keeping control; ``_rel`` versions are fractions
    of the control mean (``None`` if it is 0).
    """

    method: str
    prior: str
    alpha: float
    higher_is_better: bool
    control_mean: float | None
    treatment_mean: float | None
    abs_lift: float | None
    abs_ci: Interval | None
    rel_lift: float | None
    rel_ci: Interval | None
    rel_ci_bounded: bool
    prob_beat_control: float | None
    expected_loss_treatment: float | None
    expected_loss_control: float | None
    expected_loss_treatment_rel: float | None
    expected_loss_control_rel: float | None
    significant: bool
    n_control: int
    n_treatment: int
    status: str
    note: str

    @property
    def p_value(self) -> None:
        """A Bayesian readout reports no p-value (see ``prob_beat_control``)."""
        return None


def normal_expected_loss(mean: float, sd: float) -> tuple[float, float]:
    """``(E[max(0, -δ)], E[max(0, δ)])`` for ``δ ~ N(mean, sd²)``.

    Uses ``Φ(-x) = ½·erfcx(x/√2)·e^{-x²/2}`` so that far tails keep their magnitude
    instead of cancelling to 0 or going negative.
    """
    if sd <= 0:
        return max(-mean, 0.0), max(mean, 0.0)
    x = mean / sd

    def loss_upper(u: float) -> float:
        # s·(φ(u) - u·Φ(-u)) = E[max(0, -δ)] when u = m/s.
        if u > 0:
            bracket = 1.0 / math.sqrt(2 * math.pi) - 0.5 * u * special.erfcx(u / math.sqrt(2))
            return max(sd * math.exp(-0.5 * u * u) * bracket, 0.0)
        pdf = math.exp(-0.5 * u * u) / math.sqrt(2 * math.pi)
        return sd * (pdf - u * 0.5 * math.erfc(u / math.sqrt(2)))

    return loss_upper(x), loss_upper(-x)


def _ratio_or_none(x: float, denom: float) -> float | None:
    """``x / denom`` when it is a finite number, else ``None`` (denominator 0 or tiny)."""
    if not denom > 0:
        return None
    value = float(x) / float(denom)  # plain floats: overflow gives inf, no warning
    return value if math.isfinite(value) else None


def _empty(
    alpha: float, higher: bool, n_c: int, n_t: int, reason: str, method: str
) -> BayesianResult:
    return BayesianResult(
        method=method,
        prior="",
        alpha=alpha,
        higher_is_better=higher,
        control_mean=None,
        treatment_mean=None,
        abs_lift=None,
        abs_ci=None,
        rel_lift=None,
        rel_ci=None,
        rel_ci_bounded=False,
        prob_beat_control=None,
        expected_loss_treatment=None,
        expected_loss_control=None,
        expected_loss_treatment_rel=None,
        expected_loss_control_rel=None,
        significant=False,
        n_control=n_c,
        n_treatment=n_t,
        status=NOT_ENOUGH_DATA,
        note=reason,
    )


def _posterior(diff: Difference, prior_sd: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and covariance of ``(μ_c, δ)`` (module docstring)."""
    s = np.array(
        [
            [diff.var_control_mean, diff.cov_means],
            [diff.cov_means, diff.var_treatment_mean],
        ]
    )
    m = np.array([diff.control_mean, diff.treatment_mean])
    # Work with β' = (μ_c, μ_t) = (μ_c, μ_c + δ) first: with flat priors its posterior is
    # N(m, S) even when one arm has zero variance (S singular); then add δ's prior.
    a = np.array([[1.0, 0.0], [-1.0, 1.0]])  # (μ_c, δ) = A·(μ_c, μ_t)
    mean = a @ m
    cov = a @ s @ a.T
    if prior_sd is None:
        return mean, cov
    # Conjugate update of the Gaussian (μ_c, δ) with an independent N(0, prior_sd²) on δ,
    # done as a Kalman step (a pseudo-observation δ = 0 with variance prior_sd²) so no
    # matrix needs to be invertible.
    h = np.array([0.0, 1.0])
    gain = cov @ h / (h @ cov @ h + prior_sd**2)
    mean = mean + gain * (0.0 - h @ mean)
    cov = cov - np.outer(gain, h @ cov)
    return mean, cov


def bayesian_readout(
    difference: Difference,
    *,
    alpha: float = 0.05,
    prior_sd: float | None = None,
    prior_sd_relative: float | None = None,
    higher_is_better: bool = True,
) -> BayesianResult:
    """Normal-approximation Bayesian readout (formulas in the module docstring).

    ``prior_sd`` (absolute) or ``prior_sd_relative`` (a fraction of the control mean) sets a
    sceptical ``N(0, prior_sd²)`` prior on the difference; the default is flat.
    """
    if not (0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    n_c, n_t = difference.n_control, difference.n_treatment
    if not (math.isfinite(difference.se_abs) and difference.se_abs > 0):
        return _empty(alpha, higher_is_better, n_c, n_t, "zero standard error", "normal")
    if prior_sd is not None and prior_sd_relative is not None:
        raise ValueError("give prior_sd or prior_sd_relative, not both")
    prior_text = "flat on control mean and difference"
    if prior_sd_relative is not None:
        if difference.control_mean == 0:
            return _empty(
                alpha,
                higher_is_better,
                n_c,
                n_t,
                "a relative prior needs a non-zero control mean",
                "normal",
            )
        prior_sd = prior_sd_relative * abs(difference.control_mean)
    if prior_sd is not None:
        if not (math.isfinite(prior_sd) and prior_sd > 0):
            raise ValueError(f"prior_sd must be positive, got {prior_sd!r}")
        prior_text = f"flat on control mean; difference ~ N(0, {prior_sd:.4g}²)"
    mean, cov = _posterior(difference, prior_sd)
    mu_c, delta = float(mean[0]), float(mean[1])
    sd = math.sqrt(max(float(cov[1, 1]), 0.0))
    if not sd > 0:
        return _empty(alpha, higher_is_better, n_c, n_t, "zero posterior variance", "normal")
    sign = 1.0 if higher_is_better else -1.0
    x = sign * delta / sd
    prob_beat = float(special.ndtr(x))
    loss_treat, loss_control = (float(v) for v in normal_expected_loss(sign * delta, sd))
    z = float(-special.ndtri(alpha / 2))
    abs_ci = Interval(delta - z * sd, delta + z * sd)
    notes: list[str] = []
    # Relative lift δ/μ_c from the joint posterior: Fieller's algebra with the posterior
    # moments standing in for the estimates (m_c -> E μ_c, m_t -> E δ); it reports the
    # ratio minus 1, so add 1 back.
    posterior_ratio = relative_lift(
        mu_c,
        delta,
        max(float(cov[0, 0]), 0.0),
        float(cov[1, 1]),
        float(cov[0, 1]),
        z,
        "two-sided",
    )
    rel = None if posterior_ratio.lift is None else posterior_ratio.lift + 1.0
    rel_ci = None if posterior_ratio.ci is None else posterior_ratio.ci.shift(1.0)
    bounded, rel_note = posterior_ratio.bounded, posterior_ratio.note
    if rel_note:
        notes.append(rel_note)
    elif cov[0, 0] > 0:
        spill = float(special.ndtr(-abs(mu_c) / math.sqrt(cov[0, 0])))
        if spill > 1e-4:
            notes.append(
                f"relative interval approximate: P(control mean changes sign) = {spill:.2g}"
            )
    denom = abs(mu_c)
    if prior_sd is not None:
        notes.append("sceptical prior: estimates shrunk towards 0")
    return BayesianResult(
        method="normal",
        prior=prior_text,
        alpha=alpha,
        higher_is_better=higher_is_better,
        control_mean=difference.control_mean,
        treatment_mean=difference.treatment_mean,
        abs_lift=delta,
        abs_ci=abs_ci,
        rel_lift=rel,
        rel_ci=rel_ci,
        rel_ci_bounded=bounded,
        prob_beat_control=prob_beat,
        expected_loss_treatment=loss_treat,
        expected_loss_control=loss_control,
        expected_loss_treatment_rel=_ratio_or_none(loss_treat, denom),
        expected_loss_control_rel=_ratio_or_none(loss_control, denom),
        significant=not abs_ci.contains(0.0),
        n_control=n_c,
        n_treatment=n_t,
        status=OK,
        note="; ".join(notes),
    )


# --------------------------------------------------------------------- Beta-Binomial


def _beta_loss(a_x: float, b_x: float, a_y: float, b_y: float) -> float:
    """``E[max(0, X - Y)]`` for independent ``X ~ Beta(a_x, b_x)``, ``Y ~ Beta(a_y, b_y)``."""
    mean_x = a_x / (a_x + b_x)
    fy = sps.beta(a_y, b_y)

    def inner(y: float) -> float:
        # E[(X - y)+] = E[X·1{X>y}] - y·P(X>y); E[X·1{X>y}] = E[X]·P(X'>y), X'~Beta(a+1, b).
        return fy.pdf(y) * (mean_x * sps.beta.sf(y, a_x + 1, b_x) - y * sps.beta.sf(y, a_x, b_x))

    return _integrate_over(inner, fy)


def _integrate_over(fn: Callable[[float], float], dist: Any) -> float:
    # Integrate where the posterior has its mass; quad on [0, 1] can miss a spike.
    lo, hi = dist.ppf(1e-15), dist.isf(1e-15)
    mid = dist.median()
    value = integrate.quad(fn, lo, mid, limit=200, epsabs=0, epsrel=1e-10)[0]
    value += integrate.quad(fn, mid, hi, limit=200, epsabs=0, epsrel=1e-10)[0]
    return float(value)


def beta_binomial_readout(
    control: MeanStats,
    treatment: MeanStats,
    *,
    alpha: float = 0.05,
    prior: tuple[float, float] = (1.0, 1.0),
    higher_is_better: bool = True,
    draws: int = 200_000,
    seed: int = 20240601,
) -> BayesianResult:
    """Beta-Binomial readout of two conversion rates (module docstring)."""
    a0, b0 = prior
    if not (a0 > 0 and b0 > 0):
        raise ValueError("the Beta prior's parameters must be positive")
    n_c, n_t = control.n, treatment.n
    if n_c < 1 or n_t < 1:
        return _empty(alpha, higher_is_better, n_c, n_t, "an arm has no units", "beta-binomial")
    for label, arm in (("control", control), ("treatment", treatment)):
        if not (0 <= arm.sum <= arm.n) or abs(arm.sum_sq - arm.sum) > 1e-9 * max(1.0, arm.sum):
            raise ValueError(f"{label}: a proportion needs 0/1 values with 0 <= sum <= n")
    ac, bc = a0 + control.sum, b0 + control.n - control.sum
    at, bt = a0 + treatment.sum, b0 + treatment.n - treatment.sum
    pc = sps.beta(ac, bc)
    # P(p_t > p_c) = ∫ f_c(x)·P(p_t > x) dx
    p_greater = _integrate_over(lambda x: pc.pdf(x) * sps.beta.sf(x, at, bt), pc)
    p_greater = min(max(p_greater, 0.0), 1.0)
    loss_if_treat = _beta_loss(ac, bc, at, bt)  # E[max(0, p_c - p_t)]
    loss_if_control = _beta_loss(at, bt, ac, bc)  # E[max(0, p_t - p_c)]
    if not higher_is_better:
        p_greater = 1.0 - p_greater
        loss_if_treat, loss_if_control = loss_if_control, loss_if_treat
    rng = np.random.default_rng(seed)
    xc = rng.beta(ac, bc, draws)
    xt = rng.beta(at, bt, draws)
    delta = xt - xc
    rel = delta / xc  # xc > 0 almost surely under a Beta posterior
    q = [alpha / 2, 1 - alpha / 2]
    lo, hi = (float(v) for v in np.quantile(delta, q))
    rlo, rhi = (float(v) for v in np.quantile(rel, q))
    mean_c = ac / (ac + bc)
    mean_t = at / (at + bt)
    return BayesianResult(
        method="beta-binomial",
        prior=f"Beta({a0:g}, {b0:g}) on each rate",
        alpha=alpha,
        higher_is_better=higher_is_better,
        control_mean=control.sum / n_c,
        treatment_mean=treatment.sum / n_t,
        abs_lift=mean_t - mean_c,
        abs_ci=Interval(lo, hi),
        rel_lift=float(np.median(rel)),
        rel_ci=Interval(rlo, rhi),
        rel_ci_bounded=True,
        prob_beat_control=p_greater,
        expected_loss_treatment=loss_if_treat,
        expected_loss_control=loss_if_control,
        expected_loss_treatment_rel=loss_if_treat / mean_c,
        expected_loss_control_rel=loss_if_control / mean_c,
        significant=bool(lo > 0 or hi < 0),
        n_control=n_c,
        n_treatment=n_t,
        status=OK,
        note=f"credible intervals from {draws} posterior draws (seed {seed})",
    )


class BayesianEngine:
    """The ``"bayesian"`` readout engine: the normal-approximation posterior
    (:func:`bayesian_readout`). Options: ``prior_sd``, ``prior_sd_relative``,
    ``higher_is_better``.
    """

    method: Method = "bayesian"
    options: frozenset[str] = frozenset({"prior_sd", "prior_sd_relative", "higher_is_better"})

    def read(
        self, difference: Difference, base: LiftResult, options: Mapping[str, Any]
    ) -> LiftResult:
        result = bayesian_readout(difference, alpha=base.alpha, **options)
        return base.with_engine(result, method=self.method, label="Bayesian")
