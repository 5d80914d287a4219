"""``mean``: the mean per exposed unit of a per-unit sum or count (zeros included).

Per unit ``y_i`` is the sum of the matching events' values (``aggregate="sum"``), their
number (``"count"``) or the hours to the first one (``"hours_to_first"``) in the unit's
window, capped when the metric has a cap; the CUPED covariate ``x_i`` is the same measure
over the pre-period, with the same cap; declared ``covariates`` add ``c1..ck`` and their
cross-products (:class:`~abkit.metrics.kinds.proportion.MeanSums`). Per arm the additive
sums of :class:`~abkit.stats.sufficient.MeanStats`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from abkit.errors import ConfigError
from abkit.metrics.kinds.base import MeasureName, UnitValue
from abkit.metrics.kinds.proportion import MeanSums

if TYPE_CHECKING:
    from abkit.metrics.definitions import Metric


class Mean(MeanSums):
    name = "mean"
    measures: tuple[MeasureName, ...] = ("numerator",)
    parameters: tuple[str, ...] = ("covariates",)
    default_aggregate = "sum"

    def validate(self, metric: Metric) -> None:
        if metric.numerator.aggregate == "converted":
            raise ConfigError(
                f"metric {metric.name!r}: a 0/1 'converted' mean is a proportion; "
                "use type = 'proportion'",
                field="aggregate",
            )

    def unit_values(self, metric: Metric, *, covariate: bool) -> Mapping[str, UnitValue]:
        values = {"y": UnitValue("numerator", capped=True)}
        if covariate:
            values["x"] = UnitValue("numerator", "pre", capped=True)
        return {**values, **self.covariate_values(metric, covariate)}


KIND = Mean()
