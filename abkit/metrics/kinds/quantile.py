"""``quantile``: the ``probability`` quantile (median, p90, p95, p99) of an event value or of
a per-unit value.

``quantile_of`` says which:

* ``"event"`` (default): the value of each of the metric's events (with a value) in its
  unit's window, e.g. p95 request latency. Events are clustered by unit (the randomisation
  unit), so the interval is the asymptotic quantile interval with a clustered,
  delta-method variance of the empirical CDF at the estimate (Deng, Knoblich & Lu 2018,
  "Applying the Delta Method in Metric Analytics"), implemented by
  :mod:`abkit.stats.quantile`.
* ``"unit"``: one value per unit, the numerator measure over the unit's window (its
  ``aggregate``: ``sum`` of the values, ``count`` of the events, ...; units without an
  event count as 0, as for a ``mean``), e.g. p90 of revenue per user. The same formulas
  with ``n_i = 1`` give the classical distribution-free interval.

Per arm (and per segment value, and per cumulative day of the daily series) the database
returns :class:`~abkit.stats.quantile.QuantileStats` in two passes
(:func:`abkit.analysis.sql.quantile_aggregates`). A quantile is not additive across days:
the daily series is computed per cumulative day in the database, not summed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from abkit.errors import ConfigError
from abkit.metrics.kinds.base import ArmAggregate, EventQuantile, MeasureName, UnitValue
from abkit.vocabulary import QUANTILES_OF

if TYPE_CHECKING:
    from abkit.metrics.definitions import Metric


@dataclass(frozen=True)
class UnitQuantile(EventQuantile):
    """The ``probability`` quantile over the arm's units of the per-unit value ``value``
    (one "event" per unit: :func:`abkit.analysis.sql.quantile_aggregates` ranks the
    per-unit values the kind declares instead of the events)."""

    value: str = "y"


def quantile_of(metric: Metric) -> str:
    """``"event"`` or ``"unit"``: what the metric's quantile ranks."""
    return str(metric.quantile_of)


class Quantile:
    name = "quantile"
    measures: tuple[MeasureName, ...] = ("numerator",)
    parameters: tuple[str, ...] = ("probability", "quantile_of")
    default_aggregate = "sum"

    def validate(self, metric: Metric) -> None:
        if metric.probability is None:
            raise ConfigError(
                f"quantile metric {metric.name!r} needs a probability (0.5, 0.95, ...)",
                field="probability",
            )
        if metric.quantile_of not in QUANTILES_OF:
            raise ConfigError(
                f"quantile metric {metric.name!r}: quantile_of must be one of "
                f"{', '.join(QUANTILES_OF)}, got {metric.quantile_of!r}",
                field="quantile_of",
            )
        if metric.cap is not None or metric.cap_percentile is not None:
            raise ConfigError(
                f"metric {metric.name!r}: a quantile is robust to outliers; remove the cap",
                field="cap",
            )

    def has_covariate(self, metric: Metric, cuped: bool) -> bool:
        return False

    def unit_values(self, metric: Metric, *, covariate: bool) -> Mapping[str, UnitValue]:
        if quantile_of(metric) == "unit":
            return {"y": UnitValue("numerator")}
        return {}

    def arm_aggregates(self, metric: Metric, *, covariate: bool) -> Mapping[str, ArmAggregate]:
        assert metric.probability is not None
        if quantile_of(metric) == "unit":
            return {"quantile": UnitQuantile(metric.probability, "y")}
        return {"quantile": EventQuantile(metric.probability)}

    def stats(self, n: int, aggregates: Mapping[str, Any]) -> Any:
        return aggregates["quantile"]


KIND = Quantile()
