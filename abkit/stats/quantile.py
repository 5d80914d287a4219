"""Quantile metrics (median, p90, p95, p99) with events clustered by unit.

A latency guardrail compares, say, the 95th percentile of request latency between arms.
Requests are events; the randomisation unit is the user, and a user's requests are
correlated, so the textbook i.i.d. interval for a quantile is too narrow. This module
implements the clustered interval of Deng, Knoblich & Lu (2018, "Applying the Delta Method
in Metric Analytics", KDD, section 4.3 "quantile metrics").

Per arm, with ``M`` events from ``N`` units, target probability ``p`` and sorted values
``X_(1) <= … <= X_(M)``:

* estimate ``q̂ = X_(k)``, ``k = max(1, ⌈p·M⌉)`` (nearest rank: SQL ``percentile_disc(p)``);
* per unit ``n_i`` = events and ``s_i`` = events with value ``<= q̂``; the empirical CDF
  at ``q̂`` is the ratio metric ``F̂ = Σs_i / Σn_i``, whose delta-method variance over
  units is

      Var(F̂) ≈ Σ(w_i - w̄)² / ((N - 1)·N·n̄²),   w_i = s_i - F̂·n_i,   n̄ = M/N

  (expanded into the sums ``Σn, Σn², Σs, Σs², Σs·n``, see :class:`QuantileStats`);
* Bahadur's representation ``q̂ - q ≈ -(F̂(q) - p)/f(q)`` turns a ``1 - α`` interval for
  ``F`` into one for ``q`` without estimating the density ``f``: with ``σ = √Var(F̂)``
  and ``z = z₁₋α/₂`` the interval is the order statistics ``[X_(L), X_(U)]`` at ranks
  ``L = ⌈M(p - zσ)⌉``, ``U = ⌈M(p + zσ)⌉`` (clipped to ``[1, M]``);
* the standard error of ``q̂`` is read back from that interval, ``se = (X_(U) - X_(L))/(2z)``
  (the paper's device for comparing two arms), so the difference of the arms' quantiles
  ``Δ = q̂_t - q̂_c`` (independent arms) has ``se_Δ = √(se_c² + se_t²)``, a z-test and
  the interval ``Δ ± z·se_Δ``. The relative lift ``Δ/q̂_c`` uses the delta method,
  ``se_rel² = se_t²/q̂_c² + q̂_t²·se_c²/q̂_c⁴``.

Why this method: it needs only counts and three order statistics per arm, all of which a
database computes (``percentile_disc``/``ROW_NUMBER`` and one ``GROUP BY``), it handles
the clustering through the per-unit counts, and it avoids kernel density estimation, whose
bandwidth choice is fragile in the tails where latency guardrails live.

With one event per unit (a quantile of a per-unit value) ``w_i`` is a centred Bernoulli
and ``Var(F̂) = F̂(1 - F̂)/(N - 1)``: the classical distribution-free interval (Conover
1999, §3.2), the special case of the same formulas.

A quantile is not additive: two days' :class:`QuantileStats` cannot be added (``+``
raises ``TypeError``); each cumulative point of a daily series is computed from scratch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import special

from abkit.errors import NotEnoughDataError
from abkit.results import Interval, ResultMixin
from abkit.stats.tails import critical_value, p_value
from abkit.vocabulary import ALTERNATIVES, Alternative

__all__ = [
    "QuantileResult",
    "QuantileStats",
    "bracket_ranks",
    "compare_quantiles",
    "quantile_rank",
    "quantile_stats_from_events",
    "with_bracket",
]


def quantile_rank(probability: float, events: int) -> int:
    """Nearest rank ``k = max(1, ⌈p·M⌉)``: the smallest ``k`` with ``k >= p·M``.

    The same comparison a ``ROW_NUMBER() … rn >= p·cnt`` query makes in double precision,
    so Python and SQL pick the same order statistic.
    """
    _check_probability(probability)
    if events < 1:
        raise NotEnoughDataError("a quantile needs at least one event")
    return min(events, max(1, math.ceil(probability * events)))


def _check_probability(probability: float) -> None:
    if not (0.0 < probability < 1.0):
        raise ValueError(f"a quantile probability must be in (0, 1), got {probability!r}")


@dataclass(frozen=True)
class QuantileStats:
    """One arm of a quantile metric: what three database passes return.

    =================  =====================================================================
    ``probability``    the target ``p`` (0.5 for the median, 0.95 for p95)
    ``estimate``       ``q̂ = X_(k)``, ``k = quantile_rank(p, M)`` (pass 1)
    ``n``              units with at least one event (pass 2)
    ``events``         ``M = Σn_i``
    ``events_sq``      ``Σn_i²``
    ``below``          ``Σs_i``, ``s_i`` = the unit's events with value ``<= q̂``
    ``below_sq``       ``Σs_i²``
    ``below_events``   ``Σs_i·n_i``
    ``lower_value``    ``X_(L)`` at the ranks of :func:`bracket_ranks` (pass 3)
    ``upper_value``    ``X_(U)``
    ``bracket_alpha``  the ``α`` those ranks were computed for
    =================  =====================================================================
    """

    probability: float
    estimate: float
    n: int
    events: float
    events_sq: float
    below: float
    below_sq: float
    below_events: float
    lower_value: float | None = None
    upper_value: float | None = None
    bracket_alpha: float | None = None

    def __post_init__(self) -> None:
        _check_probability(self.probability)
        for name in ("estimate", "events", "events_sq", "below", "below_sq", "below_events"):
            value = getattr(self, name)
            if not math.isfinite(value) or (name != "estimate" and value < 0):
                raise ValueError(f"QuantileStats.{name} must be finite and >= 0, got {value!r}")
        if self.n < 0 or self.below > self.events:
            raise ValueError("QuantileStats needs n >= 0 and below <= events")
        bracket = (self.lower_value, self.upper_value, self.bracket_alpha)
        if any(v is None for v in bracket) and not all(v is None for v in bracket):
            raise ValueError("lower_value, upper_value and bracket_alpha must be given together")

    def __add__(self, other: object) -> QuantileStats:
        raise TypeError(
            "quantile statistics are not additive: recompute the passes on the combined data"
        )

    @property
    def cdf_at_estimate(self) -> float:
        """``F̂ = Σs/Σn``, the share of events at or below ``q̂`` (about ``p``)."""
        if self.events <= 0:
            raise NotEnoughDataError("the arm has no events")
        return self.below / self.events

    @property
    def cdf_variance(self) -> float:
        """Clustered delta-method ``Var(F̂)`` (module docstring)."""
        n = self.n
        if n < 2:
            raise NotEnoughDataError(f"a clustered variance needs at least 2 units, got {n}")
        f = self.cdf_at_estimate
        sum_w = self.below - f * self.events  # 0 up to rounding, kept for exactness
        sum_w2 = self.below_sq - 2.0 * f * self.below_events + f * f * self.events_sq
        unit_var = max(sum_w2 - sum_w * sum_w / n, 0.0) / (n - 1)
        n_bar = self.events / n
        return unit_var / (n * n_bar * n_bar)

    @property
    def design_effect(self) -> float:
        """``Var(F̂)`` over its value if events were independent, ``F̂(1-F̂)/M``."""
        f = self.cdf_at_estimate
        iid = f * (1.0 - f) / self.events
        return self.cdf_variance / iid if iid > 0 else math.nan

    @property
    def ci(self) -> Interval:
        """The order-statistic interval ``[X_(L), X_(U)]`` at level ``1 - bracket_alpha``."""
        if self.lower_value is None or self.upper_value is None:
            raise ValueError("no bracket yet: compute bracket_ranks and call with_bracket")
        return Interval(self.lower_value, self.upper_value)

    @property
    def se(self) -> float:
        """``se(q̂) = (X_(U) - X_(L)) / (2·z₁₋α/₂)`` with the bracket's ``α``."""
        if self.lower_value is None or self.upper_value is None or self.bracket_alpha is None:
            raise ValueError("no bracket yet: compute bracket_ranks and call with_bracket")
        return (self.upper_value - self.lower_value) / (2.0 * _z(self.bracket_alpha))


def _z(alpha: float) -> float:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    return float(-special.ndtri(alpha / 2.0))


def bracket_ranks(stats: QuantileStats, alpha: float) -> tuple[int, int]:
    """1-based ranks ``(L, U)`` of the order statistics bounding the ``1 - α`` interval.

    ``L = ⌈M(p - zσ)⌉``, ``U = ⌈M(p + zσ)⌉`` clipped to ``[1, M]``, ``σ² = Var(F̂)``.
    """
    m = round(stats.events)
    if m < 1:
        raise NotEnoughDataError("a quantile needs at least one event")
    half = _z(alpha) * math.sqrt(stats.cdf_variance)
    p = stats.probability
    low = min(m, max(1, math.ceil(m * (p - half))))
    high = min(m, max(1, math.ceil(m * (p + half))))
    return low, high


def with_bracket(
    stats: QuantileStats, *, lower_value: float, upper_value: float, alpha: float
) -> QuantileStats:
    """The arm with pass 3's order statistics ``X_(L)``, ``X_(U)`` attached."""
    if not lower_value <= stats.estimate <= upper_value:
        raise ValueError(
            f"the bracket [{lower_value}, {upper_value}] must contain the estimate {stats.estimate}"
        )
    return replace(stats, lower_value=lower_value, upper_value=upper_value, bracket_alpha=alpha)


def quantile_stats_from_events(
    values: Sequence[float] | np.ndarray,
    units: Sequence[Any] | np.ndarray,
    probability: float,
    alpha: float = 0.05,
) -> QuantileStats:
    """All three passes on raw events (tests, simulations, small data): the reference the
    SQL must reproduce. ``units[j]`` is the unit of event ``j``; for a quantile of a
    per-unit value pass one value per unit. With fewer than 2 units there is no bracket
    (no interval), as in the database passes."""
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError("values must be a non-empty 1-d array of finite numbers")
    _, unit_index = np.unique(np.asarray(units), return_inverse=True)
    if unit_index.shape != x.shape:
        raise ValueError("values and units must have the same length")
    ordered = np.sort(x)
    m = int(x.size)
    q = float(ordered[quantile_rank(probability, m) - 1])
    n_i = np.bincount(unit_index).astype(float)
    s_i = np.bincount(unit_index, weights=(x <= q).astype(float))
    stats = QuantileStats(
        probability=probability,
        estimate=q,
        n=int(n_i.size),
        events=float(m),
        events_sq=float(n_i @ n_i),
        below=float(s_i.sum()),
        below_sq=float(s_i @ s_i),
        below_events=float(s_i @ n_i),
    )
    if stats.n < 2:  # no clustered variance, hence no interval (as the SQL passes)
        return stats
    low, high = bracket_ranks(stats, alpha)
    return with_bracket(
        stats,
        lower_value=float(ordered[low - 1]),
        upper_value=float(ordered[high - 1]),
        alpha=alpha,
    )


@dataclass(frozen=True)
class QuantileResult(ResultMixin):
    """Treatment minus control for a quantile metric (formulas in the module docstring).

    ``control_ci``/``treatment_ci`` are each arm's order-statistic interval (at the
    bracket's level); ``abs_ci`` and ``rel_ci`` are for the difference and the relative
    lift at ``1 - alpha``. ``design_effect_*`` is how much the clustering inflates
    ``Var(F̂)`` over independent events (1 for a per-unit quantile).
    """

    probability: float
    control_quantile: float
    treatment_quantile: float
    control_ci: Interval
    treatment_ci: Interval
    abs_diff: float
    se_abs: float
    abs_ci: Interval
    rel_lift: float | None
    rel_ci: Interval | None
    p_value: float
    significant: bool
    alpha: float
    alternative: str
    n_control: int
    n_treatment: int
    events_control: int
    events_treatment: int
    design_effect_control: float
    design_effect_treatment: float
    test: str = "clustered quantile z-test (Deng, Knoblich & Lu 2018)"


def compare_quantiles(
    control: QuantileStats,
    treatment: QuantileStats,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
) -> QuantileResult:
    """Compare the arms' ``p``-quantiles: difference, interval, p-value, relative lift.

    Both arms need their bracket (pass 3). One-sided alternatives give one-sided
    intervals (``"larger"``: ``[Δ - z₁₋α·se, unbounded]``).
    """
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    if control.probability != treatment.probability:
        raise ValueError("both arms must estimate the same quantile")
    for label, arm in (("control", control), ("treatment", treatment)):
        if arm.n < 2:
            raise NotEnoughDataError(f"the {label} arm has {arm.n} unit(s); at least 2 are needed")
    se_c, se_t = control.se, treatment.se
    se = math.hypot(se_c, se_t)
    if not se > 0:
        raise NotEnoughDataError("the quantile intervals have zero width in both arms (ties)")
    q_c, q_t = control.estimate, treatment.estimate
    diff = q_t - q_c
    crit = critical_value(alpha, None, alternative)
    abs_ci = _interval(diff, se, crit, alternative)
    rel: float | None = None
    rel_ci: Interval | None = None
    if q_c != 0:
        rel = diff / q_c
        se_rel = math.sqrt(se_t**2 / q_c**2 + q_t**2 * se_c**2 / q_c**4)
        rel_ci = _interval(rel, se_rel, crit, alternative)
    p = p_value(diff / se, None, alternative)
    return QuantileResult(
        probability=control.probability,
        control_quantile=q_c,
        treatment_quantile=q_t,
        control_ci=control.ci,
        treatment_ci=treatment.ci,
        abs_diff=diff,
        se_abs=se,
        abs_ci=abs_ci,
        rel_lift=rel,
        rel_ci=rel_ci,
        p_value=p,
        significant=p < alpha,
        alpha=alpha,
        alternative=alternative,
        n_control=control.n,
        n_treatment=treatment.n,
        events_control=round(control.events),
        events_treatment=round(treatment.events),
        design_effect_control=control.design_effect,
        design_effect_treatment=treatment.design_effect,
    )


def _interval(estimate: float, se: float, crit: float, alternative: str) -> Interval:
    """``estimate ± crit·se``; a one-sided alternative leaves the other end unbounded."""
    lower = None if alternative == "smaller" else estimate - crit * se
    upper = None if alternative == "larger" else estimate + crit * se
    return Interval(lower, upper)
