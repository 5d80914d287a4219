"""The safety rule: an always-valid test that a guardrail is harmed, safe to run hourly.

For one guardrail and one treatment arm, with ``Δ̂`` the estimated treatment-minus-control
difference of the guardrail and ``se`` its standard error (the fixed-horizon estimators,
vectorised by :func:`abkit.stats.compare_many`), the *harm* is ``h = Δ`` when lower is
better and ``h = -Δ`` when higher is better. The rule tests ``H0: h <= θ₀`` against harm,
``θ₀ = margin·|μ_c|`` (the declared non-inferiority margin, 0 without one), with the
one-sided mixture SPRT of :mod:`abkit.stats.sequential`:

    z = (ĥ - θ₀) / se,   ρ = τ² / se²,   τ = tau_relative·|μ_c|
    log Λ = log 2 - ½·log(1+ρ) + z²ρ / (2(1+ρ)) + log Φ(z·√(ρ/(1+ρ)))

and rolls back when ``Λ >= 1/α'``. Under ``H0`` ``Λ`` is a non-negative supermartingale
with mean at most 1, so by Ville's inequality the chance that it *ever* crosses ``1/α'``,
however often the controller looks, is at most ``α'`` (Johari, Koomen, Pekelis & Walsh
2022, *Operations Research* 70(3); Howard, Ramdas, McAuliffe & Sekhon 2021, *Ann. Statist.*
49(2) for the confidence sequences). ``α' = α / (guardrails × treatment arms)``
(Bonferroni), so the declared ``safety.alpha`` bounds the chance of any false rollback.
``Λ`` is the e-value reported as evidence, ``min(1, 1/Λ)`` the always-valid p-value.

Approximations, stated: ``Δ̂`` is treated as normal with known variance ``se²`` (large
samples); ``τ`` scales with the control mean at each look rather than a value fixed before
the first look (the simulation in :mod:`abkit.lifecycle.simulate` measures the resulting
false-rollback rate, which stays below the declared ``α``).

**Quantile guardrails** (p95 latency must not get worse by more than the margin): the same
rule on the difference of the arms' quantiles, ``Δ̂ = q̂_t - q̂_c`` with the clustered
standard error of :func:`abkit.stats.quantile.compare_quantiles` (Deng, Knoblich & Lu 2018:
Bahadur's representation, the delta-method variance of the empirical CDF at ``q̂`` over
units, read back as ``se`` from the order-statistic bracket), ``μ_c = q̂_c`` (so ``θ₀``
and ``τ`` are relative to the control's quantile) and the same normal mixture. This is an
asymptotic always-valid test (in the sense of Waudby-Smith et al. 2023): it is exact for
a normal ``Δ̂`` with known ``se``; here ``Δ̂`` is asymptotically normal and ``se`` is
re-estimated at each look from order statistics, a coarser estimate than a mean's. The
simulation in ``tests/lifecycle/test_safety.py`` (clustered log-normal latencies, 200 A/A
experiments × 14 looks) measures the false-alarm rate against the declared ``α`` and the
power against a +20% latency harm.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from abkit.errors import AbkitError
from abkit.results import Interval
from abkit.stats import compare_many
from abkit.stats.quantile import QuantileStats, compare_quantiles
from abkit.stats.sequential import log_mixture_lr, sequential_boundary
from abkit.stats.sufficient import MeanStats, RatioStats
from abkit.vocabulary import Direction, MetricType


@dataclass(frozen=True)
class HarmArrays:
    """The rule at many looks or experiments at once (one element each)."""

    control_mean: np.ndarray
    harm: np.ndarray  # ĥ, in the metric's units (positive = worse)
    se: np.ndarray
    z: np.ndarray
    rho: np.ndarray
    log_e_value: np.ndarray  # log Λ (NaN where not enough data)
    harmful: np.ndarray  # Λ >= 1/α'
    n_control: np.ndarray
    n_treatment: np.ndarray


def harm_test(
    control: Mapping[str, Any],
    treatment: Mapping[str, Any],
    *,
    metric_type: MetricType,
    direction: Direction,
    alpha: float,
    tau_relative: float,
    margin: float | None = None,
) -> HarmArrays:
    """The safety rule, vectorised over sufficient-statistic arrays (module docstring).

    ``control``/``treatment`` map :class:`MeanStats` or :class:`RatioStats` field names to
    equal-length arrays; ``alpha`` is the per-test level ``α'``.
    """
    lift = compare_many(control, treatment, metric_type=metric_type)
    return _mixture_rule(
        np.asarray(lift.control_mean, dtype=float),
        np.asarray(lift.abs_lift, dtype=float),
        np.asarray(lift.se_abs, dtype=float),
        np.asarray(lift.n_control),
        np.asarray(lift.n_treatment),
        direction=direction,
        alpha=alpha,
        tau_relative=tau_relative,
        margin=margin,
    )


def quantile_harm_test(
    control: Sequence[QuantileStats],
    treatment: Sequence[QuantileStats],
    *,
    direction: Direction,
    alpha: float,
    tau_relative: float,
    margin: float | None = None,
) -> HarmArrays:
    """The safety rule for a quantile guardrail at many looks or experiments (module
    docstring): ``Δ̂``, ``se`` from :func:`abkit.stats.quantile.compare_quantiles`, the
    control's quantile as ``μ_c``. A pair without an interval (fewer than 2 units, or ties
    giving a zero-width bracket in both arms) is "not enough data" (NaN)."""
    if len(control) != len(treatment):
        raise ValueError("control and treatment need the same number of looks")
    size = len(control)
    mu_c, diff, se = (np.full(size, np.nan) for _ in range(3))
    n_c, n_t = np.zeros(size, dtype=int), np.zeros(size, dtype=int)
    for j, (c, t) in enumerate(zip(control, treatment, strict=True)):
        n_c[j], n_t[j] = c.n, t.n
        try:
            q = compare_quantiles(c, t)
        except (AbkitError, ValueError):
            continue
        mu_c[j], diff[j], se[j] = q.control_quantile, q.abs_diff, q.se_abs
    return _mixture_rule(
        mu_c,
        diff,
        se,
        n_c,
        n_t,
        direction=direction,
        alpha=alpha,
        tau_relative=tau_relative,
        margin=margin,
    )


def _mixture_rule(
    mu_c: np.ndarray,
    diff: np.ndarray,
    se: np.ndarray,
    n_control: np.ndarray,
    n_treatment: np.ndarray,
    *,
    direction: Direction,
    alpha: float,
    tau_relative: float,
    margin: float | None,
) -> HarmArrays:
    """The one-sided mSPRT on the harm ``h = ±Δ`` (module docstring), vectorised."""
    sign = 1.0 if direction == "lower" else -1.0
    harm = sign * diff
    theta0 = (margin or 0.0) * np.abs(mu_c)
    tau = tau_relative * np.abs(mu_c)
    with np.errstate(all="ignore"):
        ok = np.isfinite(se) & (se > 0) & np.isfinite(mu_c) & (tau > 0)
        z = np.where(ok, (harm - theta0) / np.where(ok, se, 1.0), np.nan)
        rho = np.where(ok, (tau / np.where(ok, se, 1.0)) ** 2, np.nan)
        log_e = np.where(
            ok, log_mixture_lr(np.nan_to_num(z), np.nan_to_num(rho, nan=1.0), "larger"), np.nan
        )
    harmful = ok & (np.nan_to_num(log_e, nan=-np.inf) >= math.log(1.0 / alpha))
    return HarmArrays(
        control_mean=mu_c,
        harm=harm,
        se=se,
        z=z,
        rho=rho,
        log_e_value=log_e,
        harmful=harmful,
        n_control=n_control,
        n_treatment=n_treatment,
    )


@dataclass(frozen=True)
class HarmEvidence:
    """The rule for one guardrail and arm at one look: what an audit entry records.

    ``interval`` is the one-sided always-valid confidence sequence for the harm ``h``
    (``[ĥ - c·se, +inf)``, ``c`` the mSPRT boundary at ``α'``); ``relative`` is ``ĥ/|μ_c|``.
    """

    metric: str
    variant: str
    harmful: bool
    harm: float | None
    relative: float | None
    interval: Interval
    e_value: float | None
    p_value: float | None
    alpha: float
    n_control: int
    n_treatment: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def sentence(self) -> str:
        if self.harm is None:
            return f"{self.metric} ({self.variant}): not enough data"
        rel = "" if self.relative is None else f" ({self.relative:+.1%} of control)"
        lo = self.interval.lower
        return (
            f"{self.metric} ({self.variant}): harm {self.harm:+.4g}{rel}, always-valid "
            f"lower bound {lo:+.4g}, e-value {self.e_value:.3g}, p = {self.p_value:.3g} "
            f"(alpha' {self.alpha:.3g}), units {self.n_control}+{self.n_treatment}"
        )


def harm_evidence(
    metric: str,
    variant: str,
    control: MeanStats | RatioStats | QuantileStats,
    treatment: MeanStats | RatioStats | QuantileStats,
    *,
    metric_type: MetricType,
    direction: Direction,
    alpha: float,
    tau_relative: float,
    margin: float | None = None,
) -> HarmEvidence:
    """The rule at one look, from one arm pair's sufficient statistics (a quantile
    guardrail's :class:`~abkit.stats.quantile.QuantileStats`: :func:`quantile_harm_test`)."""
    if isinstance(control, QuantileStats) or isinstance(treatment, QuantileStats):
        if not isinstance(control, QuantileStats) or not isinstance(treatment, QuantileStats):
            raise TypeError("a quantile guardrail needs QuantileStats in both arms")
        arr = quantile_harm_test(
            [control],
            [treatment],
            direction=direction,
            alpha=alpha,
            tau_relative=tau_relative,
            margin=margin,
        )
    else:
        arr = harm_test(
            _columns(control),
            _columns(treatment),
            metric_type=metric_type,
            direction=direction,
            alpha=alpha,
            tau_relative=tau_relative,
            margin=margin,
        )
    n_c, n_t = int(arr.n_control[0]), int(arr.n_treatment[0])
    log_e = float(arr.log_e_value[0])
    if math.isnan(log_e):
        return HarmEvidence(
            metric, variant, False, None, None, Interval(None, None), None, None, alpha, n_c, n_t
        )
    harm, se, mu_c = float(arr.harm[0]), float(arr.se[0]), float(arr.control_mean[0])
    c = float(sequential_boundary(float(arr.rho[0]), alpha, "larger"))
    return HarmEvidence(
        metric=metric,
        variant=variant,
        harmful=bool(arr.harmful[0]),
        harm=harm,
        relative=harm / abs(mu_c) if mu_c else None,
        interval=Interval(harm - c * se, None),
        e_value=math.exp(min(log_e, 700.0)),
        p_value=math.exp(-max(log_e, 0.0)),
        alpha=alpha,
        n_control=n_c,
        n_treatment=n_t,
    )


def _columns(stats: MeanStats | RatioStats) -> dict[str, np.ndarray]:
    """One arm's sums as the one-look columns of :func:`harm_test`: its scalar fields only
    (an arm with declared covariates also carries their regression sums, which the harm
    test does not read)."""
    return {
        k: np.asarray([v], dtype=float)
        for k, v in asdict(stats).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
