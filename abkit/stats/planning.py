"""Experiment planning: sample size, minimum detectable effect (MDE) and power.

Any one of the three is solved from the other two, for proportions, means and ratio
metrics, one- or two-sided, with unequal allocation and more than two variants.

Model (one treatment arm against control; ``n_c``, ``n_t`` units, true difference ``δ``):

    se₀ = sqrt(σ₀c²/n_c + σ₀t²/n_t)      standard error the test uses under H0
    se₁ = sqrt(σ₁c²/n_c + σ₁t²/n_t)      standard error under the alternative
    power(two-sided) = Φ((δ - z₁₋α/₂·se₀)/se₁) + Φ((-δ - z₁₋α/₂·se₀)/se₁)
    power(larger)    = Φ((δ - z₁₋α·se₀)/se₁)
    power(smaller)   = Φ((-δ - z₁₋α·se₀)/se₁)

Both tails are kept in the two-sided case (as statsmodels does), so sample sizes agree with
``statsmodels.stats.power`` to the unit. The sample size is the smallest control size
``n_c`` (treatment ``n_t = r·n_c``) with power >= target, found by root finding on the
exact power function (no "ignore the far tail" shortcut), then rounded up per arm.

Variance conventions (``method``):

* proportions, ``"unpooled"`` (default): ``σ₀ = σ₁`` with ``σc² = p(1-p)``,
  ``σt² = p'(1-p')``, ``p' = p + δ``. This is the power of the test abkit actually runs
  (the unpooled Wald z-test of :mod:`abkit.stats.estimators`), which is why it is the
  default; it is also the formula most A/B tools print.
* proportions, ``"pooled"``: the null standard error uses the pooled rate
  ``p̄ = (n_c·p + n_t·p')/(n_c + n_t)`` and the alternative the unpooled one (Fleiss,
  Levin & Paik 2003, §4.2, without continuity correction); equals
  ``statsmodels.stats.proportion.power_proportions_2indep``.
* proportions, ``"cohen_h"``: Cohen's arcsine effect size
  ``h = 2·asin√p' - 2·asin√p`` with unit variance (Cohen 1988, ch. 6); equals
  ``NormalIndPower`` on ``proportion_effectsize(p', p)``.
* means, ``"z"`` (default): ``σc = baseline_sd``, ``σt = treatment_sd`` (default equal);
  equals ``NormalIndPower`` with ``d = δ/σ``. At A/B sample sizes it is indistinguishable
  from Welch's t, which the readout uses.
* means, ``"t"``: the noncentral t power of the two-sample t-test (df ``n_c + n_t - 2``;
  Welch–Satterthwaite df when the two sds differ); equals ``TTestIndPower``.
* ratio metrics: a mean whose per-unit standard deviation comes from the delta method,
  ``σ² = (Var y - 2R·Cov(y, d) + R²·Var d) / d̄²`` with ``R = ȳ/d̄`` (Deng, Knoblich & Lu
  2018), the same linearisation the readout uses.

More than two variants: each treatment is compared with control at
``α' = α/m`` (``"bonferroni"``, the default) or ``α' = 1 - (1 - α)^(1/m)`` (``"sidak"``),
``m`` = number of treatment arms, and every comparison must reach the target power.
Bonferroni is the default because it is the first step of Holm, the readout's default
correction: a comparison with power ``1-β`` at ``α/m`` has at least that power under Holm.

Variance reduction (:func:`plan_cuped`, :func:`plan_from_stats_cuped`): CUPED or regression
adjustment with pre-period covariates of multiple ``R²`` (``ρ²`` for one covariate, measured
on the pre-period) leaves the residual variance ``σ²(1 - R²)`` (Deng et al. 2013, eq. 4;
the large-sample value, ignoring the ``O(k/n)`` cost of estimating θ). The adjusted plan is
the same plan with every per-unit sd multiplied by ``√(1 - R²)``, so at a fixed MDE the
sample shrinks by the factor ``1 - R²``. Proportions use the unpooled variances
``p(1-p)`` and ``p'(1-p')`` at the given MDE in both plans, so the two differ only by the
reduction.

Duration: ``days = ceil(n_total / (daily_eligible_traffic × traffic_fraction))``, assuming
each day brings that many *new* eligible units (returning users do not add units).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from scipy import optimize, special
from scipy import stats as sps

from abkit.errors import ConfigError
from abkit.results import ResultMixin
from abkit.stats.regression import RegressionStats
from abkit.stats.sufficient import MeanStats, RatioStats
from abkit.vocabulary import ALTERNATIVES

Alternative = Literal["two-sided", "larger", "smaller"]
CORRECTIONS: tuple[str, ...] = ("bonferroni", "sidak", "none")
PROPORTION_METHODS: tuple[str, ...] = ("unpooled", "pooled", "cohen_h")
MEAN_METHODS: tuple[str, ...] = ("z", "t")
DEFAULT_POWER = 0.8

__all__ = [
    "CupedPlan",
    "PowerPlan",
    "corrected_alpha",
    "expected_duration",
    "plan_cuped",
    "plan_from_stats",
    "plan_from_stats_cuped",
    "plan_mean",
    "plan_proportion",
    "plan_ratio",
    "pre_period_r_squared",
    "ratio_unit_sd",
]


@dataclass(frozen=True)
class PowerPlan(ResultMixin):
    """A solved power analysis (all three of n, MDE and power are filled in).

    ``baseline_sd``/``treatment_sd`` are the per-unit sds of the two arms under the
    alternative, on the metric's scale. ``mde_abs`` is signed (negative for
    ``alternative="smaller"``); ``mde_rel`` is
    ``mde_abs / baseline`` (``None`` when the baseline is 0). ``n_per_arm`` lists the units
    per arm, control first; ``power`` is the target (or the solved power) and
    ``achieved_power`` the power at the rounded arm sizes (>= target when solving for n).
    ``alpha_per_comparison`` is the level each treatment-vs-control test uses after the
    multiplicity ``correction``. ``effect_size`` is the standardised effect ``δ/σ_c``
    (Cohen's ``h`` for ``method="cohen_h"``). ``duration_days`` is ``None`` without
    traffic figures.
    """

    metric_type: str
    solved_for: str
    method: str
    alternative: str
    alpha: float
    alpha_per_comparison: float
    correction: str
    n_variants: int
    weights: tuple[float, ...]
    power: float
    achieved_power: float
    baseline: float
    baseline_sd: float
    treatment_mean: float
    treatment_sd: float
    mde_abs: float
    mde_rel: float | None
    effect_size: float
    n_per_arm: tuple[int, ...]
    n_control: int
    n_total: int
    daily_traffic: float | None
    traffic_fraction: float
    duration_days: int | None
    note: str

    def describe(self) -> str:
        """One sentence for reports, e.g. "14,749 units per arm (29,498 total) detect ..."."""
        rel = "" if self.mde_rel is None else f" ({self.mde_rel:+.1%})"
        sides = {
            "two-sided": "two-sided",
            "larger": "one-sided, increase",
            "smaller": "one-sided, decrease",
        }
        arms = (
            f"{self.n_control:,} units per arm"
            if len(set(self.n_per_arm)) == 1
            else "arms of " + "/".join(f"{n:,}" for n in self.n_per_arm) + " units"
        )
        days = "" if self.duration_days is None else f", about {self.duration_days} days"
        return (
            f"{arms} ({self.n_total:,} total{days}) detect a change of {self.mde_abs:+.4g}{rel} "
            f"from {self.baseline:.4g} with {self.power:.0%} power at alpha "
            f"{self.alpha_per_comparison:.3g} ({sides[self.alternative]})"
        )


# --------------------------------------------------------------------------- helpers


def corrected_alpha(alpha: float, comparisons: int, correction: str = "bonferroni") -> float:
    """Per-comparison level for ``comparisons`` tests against control.

    Bonferroni ``α/m``; Šidák ``1 - (1-α)^(1/m)`` (exact for independent tests and valid
    for the positively correlated treatment-vs-shared-control tests, Šidák 1967).
    """
    if correction not in CORRECTIONS:
        raise ConfigError(f"correction must be one of {CORRECTIONS}", field="correction")
    if comparisons < 1:
        raise ConfigError("at least one comparison is needed", field="n_variants")
    if correction == "none" or comparisons == 1:
        return alpha
    if correction == "bonferroni":
        return alpha / comparisons
    # -expm1(log1p(-α)/m) is 1 - (1-α)^(1/m) without cancellation for small α.
    return -math.expm1(math.log1p(-alpha) / comparisons)


def expected_duration(n_total: int, daily_traffic: float, traffic_fraction: float = 1.0) -> int:
    """Days to enrol ``n_total`` units: ``ceil(n_total / (daily_traffic × fraction))``."""
    _check_traffic(daily_traffic, traffic_fraction)
    return max(1, math.ceil(n_total / (daily_traffic * traffic_fraction) - 1e-9))


def ratio_unit_sd(
    num_mean: float, den_mean: float, num_var: float, den_var: float, num_den_cov: float
) -> float:
    """Per-unit delta-method sd of a ratio metric ``R = ȳ/d̄``.

    ``σ² = (Var y - 2R·Cov(y, d) + R²·Var d) / d̄²`` so that ``Var(R̂) ≈ σ²/n``.
    """
    if den_mean == 0 or not math.isfinite(den_mean):
        raise ConfigError("the denominator's baseline mean must be non-zero", field="den_mean")
    r = num_mean / den_mean
    var = (num_var - 2.0 * r * num_den_cov + r * r * den_var) / (den_mean * den_mean)
    if not var > 0:
        raise ConfigError(
            "the ratio's linearised variance is not positive; check the moments",
            field="num_den_cov",
        )
    return math.sqrt(var)


def _check_traffic(daily_traffic: float, traffic_fraction: float) -> None:
    if not (math.isfinite(daily_traffic) and daily_traffic > 0):
        raise ConfigError("daily_traffic must be a positive number", field="daily_traffic")
    if not (0 < traffic_fraction <= 1):
        raise ConfigError("traffic_fraction must be in (0, 1]", field="traffic_fraction")


def _normal_power(delta: float, se0: float, se1: float, alpha: float, alternative: str) -> float:
    """Power of a z-test (formula in the module docstring); survival functions throughout."""
    if alternative == "two-sided":
        z = sps.norm.isf(alpha / 2)
        return float(sps.norm.sf((z * se0 - delta) / se1) + sps.norm.cdf((-z * se0 - delta) / se1))
    z = sps.norm.isf(alpha)
    if alternative == "larger":
        return float(sps.norm.sf((z * se0 - delta) / se1))
    return float(sps.norm.cdf((-z * se0 - delta) / se1))


def _t_power(delta: float, se: float, df: float, alpha: float, alternative: str) -> float:
    """Power of a t-test via the noncentral t (the same computation as ``ttest_power``)."""
    ncp = delta / se
    if alternative == "two-sided":
        crit = sps.t.isf(alpha / 2, df)
        value = special.nctdtr(df, ncp, -crit) + 1.0 - special.nctdtr(df, ncp, crit)
    else:
        crit = sps.t.isf(alpha, df)
        value = special.nctdtr(df, ncp, crit if alternative == "larger" else -crit)
        value = 1.0 - value if alternative == "larger" else value
    if not math.isfinite(value):
        # The noncentral t routine gives up at extreme noncentrality, where power is 0 or 1
        # to machine precision; the normal power is exact enough there.
        return _normal_power(delta, se, se, alpha, alternative)
    return float(min(max(value, 0.0), 1.0))


@dataclass(frozen=True)
class _Model:
    """How one metric's power depends on (δ, n_c, n_t)."""

    metric_type: str
    method: str
    baseline: float
    baseline_sd: float
    treatment_sd: float | None
    delta_bounds: tuple[float, float]  # open interval of admissible δ

    def sds(self, delta: float) -> tuple[float, float, float, float, float]:
        """(effect on the test's scale, σ₀c, σ₀t, σ₁c, σ₁t)."""
        p = self.baseline
        if self.metric_type == "proportion":
            q = p + delta
            if self.method == "cohen_h":
                h = 2.0 * math.asin(math.sqrt(q)) - 2.0 * math.asin(math.sqrt(p))
                return h, 1.0, 1.0, 1.0, 1.0
            sc, st = math.sqrt(p * (1 - p)), math.sqrt(q * (1 - q))
            return delta, sc, st, sc, st
        sc = self.baseline_sd
        st = self.treatment_sd if self.treatment_sd is not None else sc
        return delta, sc, st, sc, st

    def power(self, delta: float, n_c: float, n_t: float, alpha: float, alt: str) -> float:
        eff, s0c, s0t, s1c, s1t = self.sds(delta)
        if self.metric_type == "proportion" and self.method == "pooled":
            q = self.baseline + delta
            pbar = (n_c * self.baseline + n_t * q) / (n_c + n_t)
            s0c = s0t = math.sqrt(pbar * (1 - pbar))
        se0 = math.sqrt(s0c * s0c / n_c + s0t * s0t / n_t)
        se1 = math.sqrt(s1c * s1c / n_c + s1t * s1t / n_t)
        if self.method == "t":
            if s1c == s1t:
                df = n_c + n_t - 2.0
            else:
                vc, vt = s1c * s1c / n_c, s1t * s1t / n_t
                df = (vc + vt) ** 2 / (vc * vc / (n_c - 1) + vt * vt / (n_t - 1))
            return _t_power(eff, se1, df, alpha, alt)
        return _normal_power(eff, se0, se1, alpha, alt)


def _raw_sds(model: _Model, delta: float) -> tuple[float, float]:
    """Per-unit sds of control and treatment on the metric's own scale (not arcsine)."""
    if model.metric_type == "proportion":
        q = model.baseline + delta
        return model.baseline_sd, math.sqrt(q * (1.0 - q))
    sd_t = model.treatment_sd if model.treatment_sd is not None else model.baseline_sd
    return model.baseline_sd, sd_t


def _min_power(
    model: _Model, delta: float, n_c: float, ratios: Sequence[float], alpha: float, alt: str
) -> float:
    # Every treatment arm must reach the target: the smallest arm decides.
    return min(model.power(delta, n_c, r * n_c, alpha, alt) for r in ratios)


def _increasing_root(f: Callable[[float], float], lo: float, hi: float, cap: float) -> float:
    """Root of an increasing ``f`` with ``f(lo) < 0``, doubling ``hi`` up to ``cap``."""
    while f(hi) < 0:
        if hi >= cap:
            raise ConfigError(
                "the target power cannot be reached within the admissible range; "
                "lower the power or raise the effect or sample size",
                field="power",
            )
        lo, hi = hi, min(hi * 2.0, cap)
    return float(optimize.brentq(f, lo, hi, xtol=1e-10, rtol=1e-14, maxiter=500))


def _normalise_weights(
    weights: Sequence[float] | None, ratio: float, n_variants: int
) -> tuple[float, ...]:
    if weights is None:
        if not (math.isfinite(ratio) and ratio > 0):
            raise ConfigError("ratio must be positive", field="ratio")
        if n_variants < 2:
            raise ConfigError("an experiment needs at least 2 variants", field="n_variants")
        raw = [1.0] + [float(ratio)] * (n_variants - 1)
    else:
        raw = [float(w) for w in weights]
        if len(raw) < 2 or any(not (math.isfinite(w) and w > 0) for w in raw):
            raise ConfigError(
                "weights need at least 2 positive entries (control first)", field="weights"
            )
    total = sum(raw)
    return tuple(w / total for w in raw)


def _apportion(n_total: int, weights: Sequence[float]) -> tuple[int, ...]:
    """Split ``n_total`` units by ``weights`` exactly (largest remainder, Hamilton's method).

    The arm sizes sum to ``n_total``, and each is within one unit of its exact share.
    """
    shares = [wi * n_total for wi in weights]
    sizes = [math.floor(x + 1e-9) for x in shares]
    left = n_total - sum(sizes)
    order = sorted(range(len(shares)), key=lambda i: sizes[i] - shares[i])
    for i in order[: max(left, 0)]:
        sizes[i] += 1
    return tuple(sizes)


def _solve(
    model: _Model,
    *,
    mde: float | None,
    relative: bool,
    power: float | None,
    n_total: int | None,
    alpha: float,
    alternative: str,
    weights: Sequence[float] | None,
    ratio: float,
    n_variants: int,
    correction: str,
    daily_traffic: float | None,
    traffic_fraction: float,
    days: float | None,
) -> PowerPlan:
    if alternative not in ALTERNATIVES:
        raise ConfigError(f"alternative must be one of {ALTERNATIVES}", field="alternative")
    if not (0 < alpha < 1):
        raise ConfigError("alpha must be in (0, 1)", field="alpha")
    w = _normalise_weights(weights, ratio, n_variants)
    m = len(w) - 1
    alpha_c = corrected_alpha(alpha, m, correction)
    ratios = [wi / w[0] for wi in w[1:]]
    if daily_traffic is not None:
        _check_traffic(daily_traffic, traffic_fraction)
    if days is not None:
        if daily_traffic is None:
            raise ConfigError("days needs daily_traffic", field="days")
        if n_total is not None:
            raise ConfigError("give n_total or days, not both", field="days")
        n_total = math.floor(days * daily_traffic * traffic_fraction + 1e-9)

    given = [mde is not None, power is not None, n_total is not None]
    if all(given):
        raise ConfigError("give exactly two of mde, power and n_total/days", field="power")
    if n_total is None and mde is None:
        raise ConfigError("give at least an mde or a sample size", field="mde")
    if power is not None and not (alpha_c < power < 1):
        raise ConfigError("power must be in (alpha, 1)", field="power")
    lo_d, hi_d = model.delta_bounds
    sign = -1.0 if alternative == "smaller" else 1.0

    delta: float | None = None
    if mde is not None:
        if not math.isfinite(mde) or mde == 0:
            raise ConfigError("mde must be a non-zero finite number", field="mde")
        if relative:
            if model.baseline == 0:
                raise ConfigError("a relative mde needs a non-zero baseline", field="mde")
            delta = mde * abs(model.baseline)
        else:
            delta = float(mde)
        if (alternative == "larger" and delta < 0) or (alternative == "smaller" and delta > 0):
            raise ConfigError(
                f"an mde of {mde} points the other way from alternative={alternative!r}",
                field="mde",
            )
        if not lo_d < delta < hi_d:
            raise ConfigError(
                f"the treatment value baseline + mde must stay in the admissible range "
                f"({model.baseline + lo_d}, {model.baseline + hi_d})",
                field="mde",
            )

    note = ""
    if n_total is None:
        solved = "n"
        target = DEFAULT_POWER if power is None else power
        assert delta is not None
        fixed_delta = delta  # a name the closure sees as a float

        def f(n_c: float) -> float:
            return _min_power(model, fixed_delta, n_c, ratios, alpha_c, alternative) - target

        floor_n = 2.0  # a variance needs two units per arm
        if f(floor_n) >= 0:
            n_c = floor_n
            note = "the effect is detectable with the minimum of 2 units per arm"
        else:
            n_c = _increasing_root(f, floor_n, 1e3, 1e13)
        n_per_arm = tuple([math.ceil(n_c - 1e-9)] + [math.ceil(r * n_c - 1e-9) for r in ratios])
        n_per_arm = tuple(max(2, k) for k in n_per_arm)
        # Rounding every arm up never lowers power; recompute with the actual arm sizes.
        achieved = min(
            model.power(delta, n_per_arm[0], n_per_arm[i + 1], alpha_c, alternative)
            for i in range(m)
        )
        power_out = target
    else:
        if n_total < 2 * len(w):
            raise ConfigError("n_total must give at least 2 units per arm", field="n_total")
        n_per_arm = _apportion(n_total, w)
        if min(n_per_arm) < 2:
            raise ConfigError("every arm needs at least 2 units", field="weights")
        n_c = float(n_per_arm[0])

        def arms_power(d: float) -> float:
            return min(
                model.power(d, n_c, n_per_arm[i + 1], alpha_c, alternative) for i in range(m)
            )

        if mde is None:
            solved = "mde"
            target = DEFAULT_POWER if power is None else power
            bound = hi_d if sign > 0 else -lo_d

            def g(magnitude: float) -> float:
                return arms_power(sign * magnitude) - target

            top = bound * (1 - 1e-12) if math.isfinite(bound) else 1e300
            start = model.baseline_sd * 1e-6 if model.baseline_sd > 0 else 1e-9
            if g(start) >= 0:
                raise ConfigError(
                    "power target below the test's size at tiny effects", field="power"
                )
            first = min(top, model.baseline_sd if model.baseline_sd > 0 else 1.0)
            magnitude = _increasing_root(g, start, first, top)
            delta = sign * magnitude
            achieved = arms_power(delta)
            power_out = target
        else:
            solved = "power"
            assert delta is not None
            achieved = arms_power(delta)
            power_out = achieved

    assert delta is not None
    n_total_out = int(sum(n_per_arm))
    duration = (
        expected_duration(n_total_out, daily_traffic, traffic_fraction)
        if daily_traffic is not None
        else None
    )
    effect = model.sds(delta)
    effect_size = effect[0] / effect[1] if model.method != "cohen_h" else effect[0]
    if m > 1 and correction != "none":
        extra = f"{correction} over {m} comparisons with control: alpha {alpha_c:.4g} each"
        note = f"{note}; {extra}" if note else extra
    return PowerPlan(
        metric_type=model.metric_type,
        solved_for=solved,
        method=model.method,
        alternative=alternative,
        alpha=alpha,
        alpha_per_comparison=alpha_c,
        correction=correction if m > 1 else "none",
        n_variants=len(w),
        weights=w,
        power=float(power_out),
        achieved_power=float(achieved),
        baseline=model.baseline,
        baseline_sd=model.baseline_sd,
        treatment_mean=model.baseline + delta,
        treatment_sd=_raw_sds(model, delta)[1],
        mde_abs=delta,
        mde_rel=delta / abs(model.baseline) if model.baseline != 0 else None,
        effect_size=float(effect_size),
        n_per_arm=n_per_arm,
        n_control=n_per_arm[0],
        n_total=n_total_out,
        daily_traffic=daily_traffic,
        traffic_fraction=traffic_fraction,
        duration_days=duration,
        note=note,
    )


# --------------------------------------------------------------------------- public API


def plan_proportion(
    baseline: float,
    *,
    mde: float | None = None,
    relative: bool = False,
    power: float | None = None,
    n_total: int | None = None,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    ratio: float = 1.0,
    weights: Sequence[float] | None = None,
    n_variants: int = 2,
    correction: str = "bonferroni",
    method: str = "unpooled",
    daily_traffic: float | None = None,
    traffic_fraction: float = 1.0,
    days: float | None = None,
) -> PowerPlan:
    """Plan a conversion-rate experiment; solves whichever of n, MDE, power is missing.

    ``baseline`` is the control rate ``p``; the treatment rate is ``p + δ`` with
    ``δ = mde`` (or ``mde × p`` when ``relative``). Give two of ``mde``, ``power``
    (default target 0.8 when solving n or MDE) and ``n_total`` (or ``days`` with
    ``daily_traffic``). ``ratio`` = treatment/control units per treatment arm, or
    ``weights`` for every arm (control first). ``method`` is ``"unpooled"`` (default),
    ``"pooled"`` or ``"cohen_h"`` (module docstring). For a two-sided test the MDE solved is
    the upward one (the downward one differs slightly for proportions).

    Example: ``plan_proportion(0.10, mde=0.01, power=0.8).n_control`` is 14,749 units per arm.
    """
    if not (0 < baseline < 1):
        raise ConfigError("a baseline rate must be strictly between 0 and 1", field="baseline")
    if method not in PROPORTION_METHODS:
        raise ConfigError(f"method must be one of {PROPORTION_METHODS}", field="method")
    model = _Model(
        "proportion",
        method,
        float(baseline),
        math.sqrt(baseline * (1 - baseline)),
        None,
        (-baseline, 1.0 - baseline),
    )
    return _solve(
        model,
        mde=mde,
        relative=relative,
        power=power,
        n_total=n_total,
        alpha=alpha,
        alternative=alternative,
        weights=weights,
        ratio=ratio,
        n_variants=n_variants,
        correction=correction,
        daily_traffic=daily_traffic,
        traffic_fraction=traffic_fraction,
        days=days,
    )


def plan_mean(
    baseline_mean: float,
    baseline_sd: float,
    *,
    treatment_sd: float | None = None,
    mde: float | None = None,
    relative: bool = False,
    power: float | None = None,
    n_total: int | None = None,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    ratio: float = 1.0,
    weights: Sequence[float] | None = None,
    n_variants: int = 2,
    correction: str = "bonferroni",
    method: str = "z",
    daily_traffic: float | None = None,
    traffic_fraction: float = 1.0,
    days: float | None = None,
    metric_type: str = "mean",
) -> PowerPlan:
    """Plan a mean metric (for example revenue per user) from a baseline mean and sd.

    ``method="z"`` (default; ``NormalIndPower``) or ``"t"`` (``TTestIndPower``).
    ``treatment_sd`` defaults to ``baseline_sd``. Other arguments as
    :func:`plan_proportion`.
    """
    if not math.isfinite(baseline_mean):
        raise ConfigError("baseline_mean must be finite", field="baseline_mean")
    if not (math.isfinite(baseline_sd) and baseline_sd > 0):
        raise ConfigError("baseline_sd must be positive", field="baseline_sd")
    if treatment_sd is not None and not (math.isfinite(treatment_sd) and treatment_sd > 0):
        raise ConfigError("treatment_sd must be positive", field="treatment_sd")
    if method not in MEAN_METHODS:
        raise ConfigError(f"method must be one of {MEAN_METHODS}", field="method")
    model = _Model(
        metric_type,
        method,
        float(baseline_mean),
        float(baseline_sd),
        treatment_sd,
        (-math.inf, math.inf),
    )
    return _solve(
        model,
        mde=mde,
        relative=relative,
        power=power,
        n_total=n_total,
        alpha=alpha,
        alternative=alternative,
        weights=weights,
        ratio=ratio,
        n_variants=n_variants,
        correction=correction,
        daily_traffic=daily_traffic,
        traffic_fraction=traffic_fraction,
        days=days,
    )


def plan_ratio(
    *,
    num_mean: float,
    den_mean: float,
    num_var: float,
    den_var: float,
    num_den_cov: float,
    **kwargs: Any,
) -> PowerPlan:
    """Plan a ratio metric ``R = Σy/Σd`` from per-unit baseline moments.

    The baseline is ``R = num_mean/den_mean`` and the per-unit sd the delta-method
    :func:`ratio_unit_sd`; other keyword arguments as :func:`plan_mean`.
    """
    sd = ratio_unit_sd(num_mean, den_mean, num_var, den_var, num_den_cov)
    return plan_mean(num_mean / den_mean, sd, metric_type="ratio", **kwargs)


def plan_from_stats(baseline: MeanStats | RatioStats, metric_type: str, **kwargs: Any) -> PowerPlan:
    """Plan from a baseline period's sufficient statistics (for example last month's control).

    ``metric_type`` ``"proportion"`` uses the rate, ``"mean"`` the mean and sd, ``"ratio"``
    the delta-method moments; keyword arguments go to the matching planner.
    """
    if metric_type == "ratio":
        if not isinstance(baseline, RatioStats):
            raise ConfigError("a ratio plan needs RatioStats", field="baseline")
        if baseline.n < 2:
            raise ConfigError("the baseline needs at least 2 units", field="baseline")
        n = baseline.n
        return plan_ratio(
            num_mean=baseline.num_sum / n,
            den_mean=baseline.den_sum / n,
            num_var=baseline.num_var,
            den_var=baseline.den_var,
            num_den_cov=baseline.num_den_cov,
            **kwargs,
        )
    if not isinstance(baseline, MeanStats):
        raise ConfigError(f"a {metric_type} plan needs MeanStats", field="baseline")
    if baseline.n < 2:
        raise ConfigError("the baseline needs at least 2 units", field="baseline")
    if metric_type == "proportion":
        return plan_proportion(baseline.mean, **kwargs)
    if metric_type == "mean":
        return plan_mean(baseline.mean, math.sqrt(baseline.var), **kwargs)
    raise ConfigError("metric_type must be proportion, mean or ratio", field="metric_type")


# ------------------------------------------------------------- variance reduction


@dataclass(frozen=True)
class CupedPlan(ResultMixin):
    """The same plan without and with the variance reduction measured on the pre-period.

    ``r_squared`` is the expected share of variance removed (``ρ²`` for one covariate);
    ``units_saved`` is ``without_cuped.n_total - with_cuped.n_total``.
    """

    r_squared: float
    without_cuped: PowerPlan
    with_cuped: PowerPlan

    @property
    def units_saved(self) -> int:
        return self.without_cuped.n_total - self.with_cuped.n_total

    def describe(self) -> str:
        """E.g. "29,498 units without CUPED, 17,700 with it (R² = 0.40)"."""
        return (
            f"{self.without_cuped.n_total:,} units without CUPED, "
            f"{self.with_cuped.n_total:,} with it (R² = {self.r_squared:.2f})"
        )


def plan_cuped(
    metric_type: str,
    baseline: float,
    *,
    r_squared: float,
    baseline_sd: float | None = None,
    **kwargs: Any,
) -> CupedPlan:
    """Plan a proportion or mean metric without and with a variance reduction ``R²``.

    ``baseline`` is the control rate or mean; a mean needs ``baseline_sd``. Other keyword
    arguments as :func:`plan_mean` (``mde``, ``relative``, ``power``, ``n_total``, ...);
    a proportion needs ``mde`` (its variance depends on the treatment rate).
    """
    if not (math.isfinite(r_squared) and 0.0 <= r_squared < 1.0):
        raise ConfigError("r_squared must be in [0, 1)", field="r_squared")
    if metric_type == "proportion":
        if not (0 < baseline < 1):
            raise ConfigError("a baseline rate must be strictly between 0 and 1", field="baseline")
        mde = kwargs.get("mde")
        if mde is None:
            raise ConfigError("a proportion plan with CUPED needs mde", field="mde")
        delta = mde * baseline if kwargs.get("relative", False) else mde
        treated = baseline + delta
        if not 0 < treated < 1:
            raise ConfigError("baseline + mde must stay in (0, 1)", field="mde")
        sd_c = math.sqrt(baseline * (1.0 - baseline))
        sd_t: float | None = math.sqrt(treated * (1.0 - treated))
    elif metric_type == "mean":
        if baseline_sd is None:
            raise ConfigError("a mean plan needs baseline_sd", field="baseline_sd")
        sd_c, sd_t = baseline_sd, kwargs.pop("treatment_sd", None)
    else:
        raise ConfigError("plan_cuped supports proportion and mean metrics", field="metric_type")
    shrink = math.sqrt(1.0 - r_squared)

    def plan(factor: float) -> PowerPlan:
        # Planned as a mean with the given sds (a proportion's own model would recompute
        # them from the rate), then labelled with the metric's type.
        solved = plan_mean(
            baseline,
            sd_c * factor,
            treatment_sd=None if sd_t is None else sd_t * factor,
            **kwargs,
        )
        return replace(solved, metric_type=metric_type)

    return CupedPlan(r_squared=r_squared, without_cuped=plan(1.0), with_cuped=plan(shrink))


def pre_period_r_squared(stats: MeanStats | RegressionStats) -> float:
    """Share of the metric's variance its pre-period covariate(s) explain in one arm.

    One covariate (``MeanStats``): ``ρ² = Cov(x, y)²/(Var x·Var y)``. Several
    (``RegressionStats``): the multiple ``R² = s_xyᵀ S_xx⁻¹ s_xy / s_yy``.
    """
    if isinstance(stats, MeanStats):
        stats = RegressionStats.from_mean_stats(stats)
    s_yy, s_xy, s_xx, _, _ = stats.moments()
    if not s_yy > 0:
        raise ConfigError("the metric has no variance in the baseline", field="baseline")
    explained = float(s_xy @ np.linalg.lstsq(s_xx, s_xy, rcond=None)[0])
    return min(max(explained / s_yy, 0.0), 1.0 - 1e-12)


def plan_from_stats_cuped(
    baseline: MeanStats | RegressionStats, metric_type: str, **kwargs: Any
) -> CupedPlan:
    """:func:`plan_cuped` from a baseline period's statistics with its pre-period covariates.

    The rate or mean and sd come from ``baseline`` and ``R²`` from
    :func:`pre_period_r_squared`.
    """
    if baseline.n < 2:
        raise ConfigError("the baseline needs at least 2 units", field="baseline")
    r2 = pre_period_r_squared(baseline)
    s_yy = baseline.moments()[0] if isinstance(baseline, RegressionStats) else baseline.var
    return plan_cuped(
        metric_type,
        baseline.sum / baseline.n,
        r_squared=r2,
        baseline_sd=math.sqrt(s_yy),
        **kwargs,
    )
