"""Business impact: what shipping the winner to all eligible traffic changes per period.

For a metric measured per unit (proportion or mean), with ``Δ`` the absolute lift per
exposed unit (``Δ = rel_lift × baseline``, baseline = the control mean) and its
``1 - alpha`` interval ``[Δ_lo, Δ_hi]``:

    eligible units per period   N = traffic_per_day / experiment_traffic × period_days
                                    (or the given ``eligible_units_per_day × period_days``)
    projected change            N × Δ × value_per_unit
    interval                    [N × Δ_lo × value_per_unit, N × Δ_hi × value_per_unit]

For a ratio metric (for example revenue per order) the change is per denominator unit;
it is scaled by the control's denominator per unit ``Σd / n`` (an approximation that
assumes the treatment leaves the denominator's volume unchanged; read it with that metric's
own readout).

The projection assumes the effect measured on the experiment's population holds for all
eligible traffic and stays constant over the period (no novelty decay, no seasonality);
it is a planning figure, not a forecast. ``value_per_unit`` turns counts into money (for
example the margin of one conversion); leave it at 1 for a metric already in money.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from abkit.results import ResultMixin

PERIODS = {"day": 1.0, "week": 7.0, "month": 365.25 / 12, "quarter": 365.25 / 4, "year": 365.25}


@dataclass(frozen=True)
class BusinessAssumptions:
    """How to project a lift onto the business.

    ``metric``: which metric to project (default: ``revenue_per_user`` when analysed, else
    the primary metric); ``period``: ``day``/``week``/``month``/``quarter``/``year``;
    ``eligible_units_per_day``: default the observed exposure rate divided by the share of
    traffic in the experiment; ``value_per_unit``: money per unit of the metric.
    """

    metric: str | None = None
    period: str = "year"
    eligible_units_per_day: float | None = None
    value_per_unit: float = 1.0
    currency: str = ""

    def __post_init__(self) -> None:
        from abkit.errors import ConfigError

        if self.period not in PERIODS:
            raise ConfigError(
                f"period must be one of {', '.join(PERIODS)}, got {self.period!r}", field="period"
            )
        if self.eligible_units_per_day is not None and not self.eligible_units_per_day > 0:
            raise ConfigError("eligible_units_per_day must be > 0", field="eligible_units_per_day")

    @classmethod
    def coerce(cls, value: Any) -> BusinessAssumptions:
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            return cls(**value)
        raise TypeError("business must be a BusinessAssumptions, a dict or None")


@dataclass(frozen=True)
class Impact(ResultMixin):
    """Projected change per period if ``variant`` ships to every eligible unit."""

    metric: str
    variant: str
    period: str
    eligible_units: float
    change: float | None
    interval: tuple[float | None, float | None] | None
    per_unit_change: float | None
    baseline_total: float | None
    value_per_unit: float
    currency: str
    formula: str
    note: str = ""

    def sentence(self) -> str:
        if self.change is None or self.interval is None:
            return f"No impact projection for {self.metric}: {self.note}"
        lo, hi = self.interval
        cur = f" {self.currency}" if self.currency else ""

        def f(x: float | None) -> str:
            return "unbounded" if x is None else f"{x:+,.0f}"

        return (
            f"Shipping {self.variant} to all {self.eligible_units:,.0f} eligible units per "
            f"{self.period} changes {self.metric} by {f(self.change)}{cur} per {self.period} "
            f"(interval {f(lo)} to {f(hi)}{cur})."
        )


def project_impact(
    *,
    metric: Any,  # abkit.metrics.definitions.Metric
    variant: str,
    result: Any,  # LiftResult
    control_stats: Any,  # MeanStats | RatioStats
    assumptions: BusinessAssumptions,
    observed_units_per_day: float | None,
    experiment_traffic: float,
) -> Impact:
    """Apply the module's formula to one readout."""
    per_day = assumptions.eligible_units_per_day
    if per_day is None and observed_units_per_day:
        per_day = observed_units_per_day / max(experiment_traffic, 1e-12)
    days = PERIODS[assumptions.period]
    eligible = (per_day or 0.0) * days
    formula = (
        "eligible units per period × absolute lift per unit × value per unit; "
        "absolute lift = relative lift × control mean"
    )
    common = dict(
        metric=metric.name,
        variant=variant,
        period=assumptions.period,
        eligible_units=eligible,
        value_per_unit=assumptions.value_per_unit,
        currency=assumptions.currency,
        formula=formula,
    )
    if getattr(result, "status", "ok") != "ok" or result.abs_lift is None or not per_day:
        note = "not enough data" if per_day else "no traffic figure to scale by"
        return Impact(
            change=None,
            interval=None,
            per_unit_change=None,
            baseline_total=None,
            note=note,
            **common,
        )
    scale = eligible * assumptions.value_per_unit
    per_unit = 1.0
    note = ""
    if metric.type == "ratio":
        per_unit = control_stats.den_sum / control_stats.n if control_stats.n else 0.0
        note = "ratio metric: scaled by the control's denominator per unit (assumed unchanged)"
        formula += "; × control denominator per unit for a ratio"
        common["formula"] = formula
    lo, hi = result.abs_ci if result.abs_ci is not None else (None, None)
    baseline = result.control_mean * per_unit * scale if result.control_mean is not None else None
    return Impact(
        change=result.abs_lift * per_unit * scale,
        interval=(
            None if lo is None else lo * per_unit * scale,
            None if hi is None else hi * per_unit * scale,
        ),
        per_unit_change=result.abs_lift * per_unit,
        baseline_total=baseline,
        note=note,
        **common,
    )
