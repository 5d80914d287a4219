"""``ratio``: ``Σ_i y_i / Σ_i d_i`` over units, with a numerator and a denominator measure.

Per unit the (capped) numerator ``y_i`` and the denominator ``d_i`` in the window; with CUPED
the pre-period numerator ``x_i`` (capped like ``y``) and denominator ``e_i``. Per arm the
additive sums of :class:`~abkit.stats.sufficient.RatioStats`: the delta method needs
``Σy, Σy², Σd, Σd², Σyd`` (Deng, Knoblich & Lu 2018) and its CUPED linearisation the nine
cross moments of ``(x, e)`` with ``(y, d)``. The pre-period sums cost six more products per
metric, so they are computed only when CUPED is asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from abkit.errors import ConfigError
from abkit.metrics.kinds.base import ArmAggregate, ArmSum, MeasureName, UnitValue
from abkit.stats.sufficient import RatioStats

if TYPE_CHECKING:
    from abkit.metrics.definitions import Metric

_SUMS: dict[str, tuple[str, ...]] = {
    "num_sum": ("y",),
    "num_sum_sq": ("y", "y"),
    "den_sum": ("d",),
    "den_sum_sq": ("d", "d"),
    "num_den_sum": ("y", "d"),
}
_COVARIATE_SUMS: dict[str, tuple[str, ...]] = {
    "pre_num_sum": ("x",),
    "pre_num_sum_sq": ("x", "x"),
    "pre_den_sum": ("e",),
    "pre_den_sum_sq": ("e", "e"),
    "pre_num_pre_den_sum": ("x", "e"),
    "pre_num_num_sum": ("x", "y"),
    "pre_num_den_sum": ("x", "d"),
    "pre_den_num_sum": ("e", "y"),
    "pre_den_den_sum": ("e", "d"),
}


class Ratio:
    name = "ratio"
    measures: tuple[MeasureName, ...] = ("numerator", "denominator")
    parameters: tuple[str, ...] = ()
    default_aggregate = "sum"

    def validate(self, metric: Metric) -> None:
        if metric.denominator is None:
            raise ConfigError(
                f"ratio metric {metric.name!r} needs a denominator", field="denominator"
            )

    def has_covariate(self, metric: Metric, cuped: bool) -> bool:
        return cuped

    def unit_values(self, metric: Metric, *, covariate: bool) -> Mapping[str, UnitValue]:
        values = {"y": UnitValue("numerator", capped=True), "d": UnitValue("denominator")}
        if covariate:
            values["x"] = UnitValue("numerator", "pre", capped=True)
            values["e"] = UnitValue("denominator", "pre")
        return values

    def arm_aggregates(self, metric: Metric, *, covariate: bool) -> Mapping[str, ArmAggregate]:
        sums = {**_SUMS, **_COVARIATE_SUMS} if covariate else _SUMS
        return {name: ArmSum(factors) for name, factors in sums.items()}

    def stats(self, n: int, aggregates: Mapping[str, float]) -> RatioStats:
        return RatioStats(n=n, **aggregates)


KIND = Ratio()
