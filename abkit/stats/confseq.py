"""Asymptotic confidence sequences tuned to the planned sample (Waudby-Smith et al. 2023).

Waudby-Smith, Arnold, Wu, Howard & Ramdas (2023/2024), "Time-uniform central limit
theory and asymptotic confidence sequences", *Annals of Statistics*: for a running mean
of ``t`` i.i.d. observations with estimated standard deviation ``σ̂_t``,

    μ̂_t ± σ̂_t · √( 2(tρ² + 1)/(t²ρ²) · log(√(tρ² + 1)/α) )

covers ``μ`` at every ``t`` simultaneously with probability ``>= 1 - α`` asymptotically,
needing only a CLT (finite variance), not normal data or a known variance. For an A/B
difference at a look with ``n`` units in total and ``Var(Δ̂) = se²`` (from
:mod:`abkit.stats.estimators`, CUPED or not) ``σ̂²/t = se²``, so with ``r = n·ρ²`` the
half-width is ``c(r)·se`` with

    c(r)² = (1 + r)/r · (2·log(1/α) + log(1 + r))

and the always-valid p-value (the smallest ``α`` whose sequence excludes 0) is
``min(1, √(1 + r)·exp(-z²r/(2(1 + r))))``, ``z = Δ̂/se``: the Gaussian-mixture boundary,
computed by :func:`abkit.stats.sequential.log_mixture_lr` and
:func:`~abkit.stats.sequential.sequential_boundary` (one-sided alternatives use the
half-normal mixture there).

Tuning. ``ρ`` must be fixed before the data are seen. The paper tunes it to be tightest at
a chosen sample ``t*``; abkit takes ``t*`` = the **planned total sample** ``n_planned``
(the planner's ``n_total``) and ``ρ² = r*/n_planned`` with ``r*`` the exact minimiser of
``c(r)`` (:func:`abkit.stats.sequential.optimal_rho`, ≈ 8.2 at α = 0.05; the paper gives
its one-step approximation ``-2·log α + log(1 - 2·log α)``). Compared with the mSPRT, whose
mixing scale ``τ`` is an absolute effect size (by default 5% of the control mean), the
sequence is tuned in units of the metric's own noise, so it needs no guess of the effect
and is never mis-scaled: when the default ``τ`` is far from the planned MDE, the mSPRT
boundary at the horizon is wider and its power lower (figures in docs/statistics.md).

Calibrated to a horizon (``horizon=h``). Ville's inequality, behind both the mSPRT and the
sequence above, guarantees ``α`` over an *unbounded* time: monitored continuously up to the
planned sample, the boundary above is crossed under the null with probability only 0.019
at α = 0.05 (0.010 with 14 daily looks). When the experiment will stop by
``h·n_planned`` units, the same boundary family at a larger nominal level ``α'`` still
has crossing probability ``α`` over ``(0, h·n_planned]``: in the Brownian limit of the
running sum (which is what the asymptotic sequence rests on), with information time
``s = n/n_planned``, the crossing probability of ``|W(s)| >= √s·c(r*·s; α')`` on
``(0, h]`` is computed by propagating the density of ``W`` on a grid with absorbing
boundaries (Gaussian kernel per time step; the boundary moved in by ``0.5826·√Δs``, the
continuity correction of Broadie, Glasserman & Kou 1997, so a discrete grid gives the
continuous-monitoring probability; agreement with a Brownian-bridge Monte Carlo to its
standard error). ``α'`` solves "crossing probability = α" (≈ 0.115 at α = 0.05, h = 1), and
the reported p-value is the crossing probability at the look's mixture p-value, so
``p < α`` exactly when the look crosses. The guarantee holds for any stopping rule and any
number of looks up to ``h·n_planned`` units; past it there is no valid inference, and the
readout says so instead of reporting one.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import optimize

from abkit.errors import ConfigError
from abkit.results import Interval, ResultMixin
from abkit.stats._common import NOT_ENOUGH_DATA, OK, P_FLOOR, check_alpha_alternative
from abkit.stats.estimators import Difference
from abkit.stats.fieller import relative_lift_of
from abkit.stats.lift import LiftResult
from abkit.stats.sequential import log_mixture_lr, optimal_rho, sequential_boundary
from abkit.vocabulary import Method

__all__ = [
    "ConfSeqEngine",
    "ConfSeqResult",
    "ConfSeqSeries",
    "confseq_readout",
    "confseq_rho",
    "confseq_series",
    "crossing_probability",
    "horizon_level",
]


def confseq_rho(n_planned: float, alpha: float = 0.05) -> float:
    """``ρ² = r*/n_planned``: the sequence is tightest at the planned total sample."""
    if not (math.isfinite(n_planned) and n_planned >= 2):
        raise ValueError(f"n_planned must be a number of units >= 2, got {n_planned!r}")
    return optimal_rho(alpha) / float(n_planned)


# Grid of the crossing computation: time steps per unit of information time, and space
# points per sd of one step; results are stable to 1e-5 against finer grids.
_STEPS_PER_UNIT = 400
_POINTS_PER_SD = 4
_CONTINUITY = 0.5826  # Broadie, Glasserman & Kou (1997): -ζ(1/2)/√(2π)
_MAX_LEVEL = 0.5  # the mixture boundary is defined for levels below 1/2


@functools.lru_cache(maxsize=4096)
def crossing_probability(
    level: float, alpha: float = 0.05, horizon: float = 1.0, alternative: str = "two-sided"
) -> float:
    """P(a Brownian motion crosses the ``level`` boundary on information time ``(0, horizon]``).

    The boundary is ``√s·c(r*·s; level)`` with ``r* = optimal_rho(alpha)`` (the mixture
    tuned to the plan at the design ``alpha``); two-sided absorbs at ``|W| >=`` it, one-sided
    at ``W >=`` it. Module docstring for the method.
    """
    check_alpha_alternative(alpha, alternative)
    if not (0.0 < level < _MAX_LEVEL and 0.0 < horizon <= 100.0):
        raise ValueError(
            f"need 0 < level < {_MAX_LEVEL} and 0 < horizon <= 100, got {level}, {horizon}"
        )
    steps = max(50, math.ceil(_STEPS_PER_UNIT * horizon))
    dt = horizon / steps
    times = dt * np.arange(1, steps + 1)
    side = "two-sided" if alternative == "two-sided" else "larger"
    bound = np.sqrt(times) * sequential_boundary(optimal_rho(alpha) * times, level, side)
    bound = bound - _CONTINUITY * math.sqrt(dt)
    h = math.sqrt(dt) / _POINTS_PER_SD
    top = float(bound.max()) + 8.0 * math.sqrt(horizon)
    x = np.arange(-top, top + h / 2, h)
    reach = np.arange(-8 * _POINTS_PER_SD, 8 * _POINTS_PER_SD + 1) * h
    kernel = np.exp(-reach * reach / (2 * dt)) / math.sqrt(2 * math.pi * dt) * h
    density = np.exp(-x * x / (2 * dt)) / math.sqrt(2 * math.pi * dt)
    outside = np.abs(x) if side == "two-sided" else x
    density[outside >= bound[0]] = 0.0
    for b in bound[1:]:
        density = np.convolve(density, kernel, mode="same")
        density[outside >= b] = 0.0
    return float(min(max(1.0 - density.sum() * h, 0.0), 1.0))


@functools.lru_cache(maxsize=64)
def horizon_level(
    alpha: float = 0.05, horizon: float = 1.0, alternative: str = "two-sided"
) -> float:
    """The nominal level ``α'`` whose boundary is crossed with probability ``alpha`` on
    ``(0, horizon]`` (module docstring)."""
    target = alpha

    def excess(level: float) -> float:
        return crossing_probability(level, alpha, horizon, alternative) - target

    return float(optimize.brentq(excess, alpha, _MAX_LEVEL * 0.999, xtol=1e-7))


@dataclass(frozen=True)
class ConfSeqResult(ResultMixin):
    """The confidence sequence at one look.

    ``r = n·ρ²`` is the mixture's weight at this look (``r*`` at the planned sample);
    ``boundary_z`` the ``|z|`` needed to reject; ``p_value`` the always-valid p-value at
    this look (take the running minimum over looks, :func:`confseq_series`).
    """

    method: str
    status: str
    alpha: float
    alternative: str
    n_planned: float
    horizon: float | None
    level: float
    r: float | None
    abs_lift: float | None
    se_abs: float | None
    z: float | None
    boundary_z: float | None
    p_value: float | None
    abs_ci: Interval | None
    rel_lift: float | None
    rel_ci: Interval | None
    rel_ci_bounded: bool
    significant: bool
    n_control: int
    n_treatment: int
    note: str


def confseq_readout(
    difference: Difference,
    *,
    n_planned: float,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    horizon: float | None = None,
) -> ConfSeqResult:
    """Confidence sequence of the difference at this look (module docstring).

    ``horizon=None`` is the asymptotic sequence valid for ever (Ville); ``horizon=h``
    calibrates it to stopping by ``h·n_planned`` units (more power; nothing valid after).
    ``level`` in the result is the nominal level of the boundary used (``alpha``, or
    ``α'`` of :func:`horizon_level`).
    """
    check_alpha_alternative(alpha, alternative)
    rho2 = confseq_rho(n_planned, alpha)
    n_c, n_t = difference.n_control, difference.n_treatment
    level = alpha if horizon is None else horizon_level(alpha, horizon, alternative)
    empty = ConfSeqResult(
        method="confseq",
        status=NOT_ENOUGH_DATA,
        alpha=alpha,
        alternative=alternative,
        n_planned=n_planned,
        horizon=horizon,
        level=level,
        r=None,
        abs_lift=None,
        se_abs=None,
        z=None,
        boundary_z=None,
        p_value=None,
        abs_ci=None,
        rel_lift=None,
        rel_ci=None,
        rel_ci_bounded=False,
        significant=False,
        n_control=n_c,
        n_treatment=n_t,
        note="",
    )
    se = difference.se_abs
    if not (math.isfinite(se) and se > 0):
        return replace(empty, note="zero standard error")
    if horizon is not None and n_c + n_t > horizon * n_planned:
        return replace(
            empty,
            note=(
                f"past the calibrated horizon ({horizon:g} x {n_planned:,.0f} units): the "
                "sequence no longer holds and no valid inference is reported"
            ),
        )
    r = (n_c + n_t) * rho2
    d = difference.abs_diff
    z = d / se
    p = math.exp(-max(float(log_mixture_lr(z, r, alternative)), 0.0))
    if horizon is not None and p < _MAX_LEVEL:
        # The crossing probability is increasing in the level, so p < alpha iff p_mix < α'.
        p = crossing_probability(p, alpha, horizon, alternative)
    notes = []
    if p == 0.0:
        p = P_FLOOR
        notes.append("p-value below the smallest representable double")
    c = float(sequential_boundary(r, level, alternative))
    abs_ci = Interval(
        None if alternative == "smaller" else d - c * se,
        None if alternative == "larger" else d + c * se,
    )
    rel = relative_lift_of(difference, c, alternative)
    if rel.note:
        notes.append(rel.note)
    notes.append(f"asymptotic confidence sequence tuned to {n_planned:,.0f} units")
    if horizon is not None:
        notes.append(f"calibrated to stop by {horizon:g} x the planned units")
    return replace(
        empty,
        status=OK,
        r=r,
        abs_lift=d,
        se_abs=se,
        z=z,
        boundary_z=c,
        p_value=p,
        abs_ci=abs_ci,
        rel_lift=rel.lift,
        rel_ci=rel.ci,
        rel_ci_bounded=rel.bounded,
        significant=p < alpha,
        note="; ".join(notes),
    )


@dataclass(frozen=True)
class ConfSeqSeries(ResultMixin):
    """Looks in order with the running (always-valid) summaries.

    ``p_values`` are the running minima of the looks' p-values and ``intervals`` the
    running intersections of their sequences: both stay valid whenever the test stops.
    """

    looks: tuple[ConfSeqResult, ...]
    p_values: tuple[float | None, ...]
    intervals: tuple[Interval | None, ...]
    first_significant_look: int | None


def _narrow(running: Interval | None, new: Interval | None) -> Interval | None:
    """Running intersection; an empty one (probability <= α) keeps the newer interval."""
    if running is None or new is None:
        return new if running is None else running
    common = running.intersect(new)
    return new if common is None else common


def confseq_series(
    differences: Sequence[Difference],
    *,
    n_planned: float,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    horizon: float | None = None,
) -> ConfSeqSeries:
    """The sequence over looks (cumulative differences, in time order)."""
    looks = tuple(
        confseq_readout(
            d, n_planned=n_planned, alpha=alpha, alternative=alternative, horizon=horizon
        )
        for d in differences
    )
    p_values: list[float | None] = []
    intervals: list[Interval | None] = []
    best: float | None = None
    running: Interval | None = None
    first: int | None = None
    for i, look in enumerate(looks):
        if look.p_value is not None:
            best = look.p_value if best is None else min(best, look.p_value)
        running = _narrow(running, look.abs_ci)
        p_values.append(best)
        intervals.append(running)
        if first is None and best is not None and best < alpha:
            first = i
    return ConfSeqSeries(
        looks=looks,
        p_values=tuple(p_values),
        intervals=tuple(intervals),
        first_significant_look=first,
    )


class ConfSeqEngine:
    """The ``"confseq"`` readout engine: :func:`confseq_readout` at this look.

    Options: ``n_planned`` (required; the planned total units, e.g. the planner's
    ``n_total``) and ``horizon`` (calibrate to stopping by ``horizon·n_planned`` units).
    """

    method: Method = "confseq"
    options: frozenset[str] = frozenset({"n_planned", "horizon"})

    def read(
        self, difference: Difference, base: LiftResult, options: Mapping[str, Any]
    ) -> LiftResult:
        if "n_planned" not in options:
            raise ConfigError(
                "method 'confseq' needs n_planned (the planned total units, from the plan)",
                field="n_planned",
            )
        horizon = options.get("horizon")
        result = confseq_readout(
            difference,
            n_planned=float(options["n_planned"]),
            alpha=base.alpha,
            alternative=base.alternative,
            horizon=None if horizon is None else float(horizon),
        )
        return base.with_engine(result, method=self.method, label="always-valid")
