"""``proportion``: the share of units with at least ``min_count`` events in their window.

Per unit ``y_i = 1`` when the unit has ``min_count`` or more matching events in its window,
else ``0``; the CUPED covariate ``x_i`` is the same indicator over the pre-period. Per arm the
sums of :class:`~abkit.stats.sufficient.MeanStats` (``Σy``, ``Σy²``, ``Σx``, ``Σx²``, ``Σxy``),
which add up across days.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from abkit.errors import ConfigError
from abkit.metrics.kinds.base import ArmAggregate, ArmSum, MeasureName, UnitValue
from abkit.stats.sufficient import MeanStats

if TYPE_CHECKING:
    from abkit.metrics.definitions import Metric

MEAN_SUMS: dict[str, tuple[str, ...]] = {
    "sum": ("y",),
    "sum_sq": ("y", "y"),
    "cov_sum": ("x",),
    "cov_sum_sq": ("x", "x"),
    "cross_sum": ("x", "y"),
}


class MeanSums:
    """What the kinds analysed as per-unit means share: the additive sums of
    :class:`~abkit.stats.sufficient.MeanStats`, always with the pre-period covariate (it also
    feeds the balance check, with or without CUPED)."""

    def has_covariate(self, metric: Metric, cuped: bool) -> bool:
        return True

    def arm_aggregates(self, metric: Metric, *, covariate: bool) -> Mapping[str, ArmAggregate]:
        return {
            name: ArmSum(factors)
            for name, factors in MEAN_SUMS.items()
            if covariate or "x" not in factors
        }

    def stats(self, n: int, aggregates: Mapping[str, float]) -> MeanStats:
        return MeanStats(n=n, **aggregates)


class Proportion(MeanSums):
    name = "proportion"
    measures: tuple[MeasureName, ...] = ("numerator",)
    parameters: tuple[str, ...] = ()
    default_aggregate = "count"

    def validate(self, metric: Metric) -> None:
        if metric.cap is not None or metric.cap_percentile is not None:
            raise ConfigError(
                f"metric {metric.name!r}: a proportion is already bounded; remove the cap",
                field="cap",
            )
        if metric.numerator.aggregate != "count":
            raise ConfigError(
                f"metric {metric.name!r}: a proportion counts events (use min_count); "
                "remove 'aggregate'",
                field="aggregate",
            )

    def unit_values(self, metric: Metric, *, covariate: bool) -> Mapping[str, UnitValue]:
        values = {"y": UnitValue("numerator", indicator=True)}
        if covariate:
            values["x"] = UnitValue("numerator", "pre", indicator=True)
        return values


KIND = Proportion()
