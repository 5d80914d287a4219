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


def covariate_values(metric: Metric) -> dict[str, UnitValue]:
    """The per-unit values ``c1..ck`` of the metric's declared covariates."""
    return {
        f"c{j + 1}": UnitValue("covariate", "pre", index=j) for j in range(len(metric.covariates))
    }


def regression_sums(k: int) -> dict[str, tuple[str, ...]]:
    """The sums beyond :data:`MEAN_SUMS` that regression adjustment on the own pre-period
    ``x`` and ``k`` declared covariates ``c1..ck`` needs (:class:`~abkit.stats.regression.
    RegressionStats`): ``Σc_j``, ``Σc_j·y`` and every product ``Σa·b`` of the covariates
    ``(x, c1, ..., ck)`` not already in MeanStats (``Σx²``)."""
    factors = ("x", *[f"c{j}" for j in range(1, k + 1)])
    sums: dict[str, tuple[str, ...]] = {}
    for j in range(1, k + 1):
        sums[f"reg_sum_{j}"] = (f"c{j}",)
        sums[f"reg_y_{j}"] = (f"c{j}", "y")
    for a in range(k + 1):
        for b in range(max(a, 1), k + 1):
            sums[f"reg_{a}_{b}"] = (factors[a], factors[b])
    return sums


class MeanSums:
    """What the kinds analysed as per-unit means share: the additive sums of
    :class:`~abkit.stats.sufficient.MeanStats`, always with the pre-period covariate (it also
    feeds the balance check, with or without CUPED). A metric with declared ``covariates``
    also gets the cross-products of :func:`regression_sums` (still sums: additive), and its
    statistics are a :class:`~abkit.stats.regression.CovariateMeanStats`."""

    def has_covariate(self, metric: Metric, cuped: bool) -> bool:
        return True

    def arm_aggregates(self, metric: Metric, *, covariate: bool) -> Mapping[str, ArmAggregate]:
        out: dict[str, ArmAggregate] = {
            name: ArmSum(factors)
            for name, factors in MEAN_SUMS.items()
            if covariate or "x" not in factors
        }
        if covariate and metric.covariates:
            out.update(
                (name, ArmSum(factors))
                for name, factors in regression_sums(len(metric.covariates)).items()
            )
        return out

    def stats(self, n: int, aggregates: Mapping[str, float]) -> MeanStats:
        base = {name: aggregates[name] for name in MEAN_SUMS if name in aggregates}
        k = sum(1 for name in aggregates if name.startswith("reg_sum_"))
        if not k:
            return MeanStats(n=n, **base)
        # numpy is needed only here: the kinds stay importable with the standard library
        from abkit.stats.regression import CovariateMeanStats

        return CovariateMeanStats.from_sums(n, base, aggregates, k)

    def covariate_values(self, metric: Metric, covariate: bool) -> dict[str, UnitValue]:
        return covariate_values(metric) if covariate else {}


class Proportion(MeanSums):
    name = "proportion"
    measures: tuple[MeasureName, ...] = ("numerator",)
    parameters: tuple[str, ...] = ("covariates",)
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
        return {**values, **self.covariate_values(metric, covariate)}


KIND = Proportion()
