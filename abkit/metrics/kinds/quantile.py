"""``quantile``: the ``probability`` quantile (median, p90, p95, p99) of an event value.

Events are clustered by unit (the randomisation unit), so the interval is the asymptotic
quantile interval with a clustered, delta-method variance of the empirical CDF at the
estimate (Deng, Knoblich & Lu 2018, "Applying the Delta Method in Metric Analytics"),
implemented by :mod:`abkit.stats.quantile`. The events are the metric's event types with a
value, in each unit's window. Per arm the database returns
:class:`~abkit.stats.quantile.QuantileStats` in three passes (an :class:`EventQuantile`
aggregate). A quantile is not additive across days: no daily series.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from abkit.errors import ConfigError
from abkit.metrics.kinds.base import ArmAggregate, EventQuantile, MeasureName, UnitValue

if TYPE_CHECKING:
    from abkit.metrics.definitions import Metric


class Quantile:
    name = "quantile"
    measures: tuple[MeasureName, ...] = ("numerator",)
    parameters: tuple[str, ...] = ("probability",)
    default_aggregate = "sum"

    def validate(self, metric: Metric) -> None:
        if metric.probability is None:
            raise ConfigError(
                f"quantile metric {metric.name!r} needs a probability (0.5, 0.95, ...)",
                field="probability",
            )
        if metric.cap is not None or metric.cap_percentile is not None:
            raise ConfigError(
                f"metric {metric.name!r}: a quantile is robust to outliers; remove the cap",
                field="cap",
            )

    def has_covariate(self, metric: Metric, cuped: bool) -> bool:
        return False

    def unit_values(self, metric: Metric, *, covariate: bool) -> Mapping[str, UnitValue]:
        return {}

    def arm_aggregates(self, metric: Metric, *, covariate: bool) -> Mapping[str, ArmAggregate]:
        assert metric.probability is not None
        return {"quantile": EventQuantile(metric.probability)}

    def stats(self, n: int, aggregates: Mapping[str, Any]) -> Any:
        return aggregates["quantile"]


KIND = Quantile()
