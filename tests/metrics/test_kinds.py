"""Metric kinds: the registry, and a new kind defined entirely here.

``MedianPerUnit`` is a quantile-shaped kind that abkit does not ship: the median over units
of a per-unit sum, per arm. It is not additive across days (its per-arm statistic is an
order statistic, not a sum), and it touches nothing but this module and one registration:
``Metric(type=...)`` accepts it, TOML reads it, and the analysis SQL computes it on every
dialect.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pytest

from abkit.errors import ConfigError
from abkit.metrics import Measure, Metric, load_metrics
from abkit.metrics.kinds import (
    ArmAggregate,
    ArmPercentile,
    ArmSum,
    UnitValue,
    is_additive,
    kind_names,
    kind_of,
    register_kind,
)
from abkit.stats.outliers import nearest_rank
from tests.analysis.conftest import HOUR, T0, any_url, fetch, store_for, write_rows  # noqa: F401 (any_url: a fixture)


@dataclass(frozen=True)
class MedianStats:
    n: int
    total: float
    median: float


class MedianPerUnit:
    name = "median_per_unit"
    measures = ("numerator",)
    default_aggregate = "sum"

    def validate(self, metric: Metric) -> None:
        if metric.numerator.aggregate == "converted":
            raise ConfigError("a median of 0/1 values says little", field="aggregate")

    def has_covariate(self, metric: Metric, cuped: bool) -> bool:
        return False

    def unit_values(self, metric: Metric, *, covariate: bool) -> Mapping[str, UnitValue]:
        return {"y": UnitValue("numerator")}

    def arm_aggregates(self, metric: Metric, *, covariate: bool) -> Mapping[str, ArmAggregate]:
        return {"total": ArmSum(("y",)), "median": ArmPercentile("y", 50.0)}

    def stats(self, n: int, aggregates: Mapping[str, float]) -> MedianStats:
        return MedianStats(n=n, **aggregates)


KIND = register_kind(MedianPerUnit())


def test_builtin_kinds_are_registered_and_additive():
    assert kind_names()[:3] == ("proportion", "mean", "ratio")
    for name in ("proportion", "mean", "ratio"):
        kind = kind_of(name)
        metric = Metric(
            name="m",
            type=name,
            numerator=Measure(("purchase",), kind.default_aggregate),
            denominator=Measure(("purchase",), "count") if name == "ratio" else None,
        )
        assert is_additive(kind, metric, covariate=True)


def test_unknown_type_lists_the_kinds():
    with pytest.raises(ConfigError, match="choose one of proportion, mean, ratio") as info:
        Metric(name="m", type="medain", numerator=Measure(("x",), "sum"))
    assert info.value.location.field == "type"


def test_a_new_kind_is_a_metric_type_in_python_and_toml():
    metric = Metric(name="median_revenue", type="median_per_unit", numerator=Measure("purchase"))
    assert metric.kind_spec is KIND and not is_additive(KIND, metric, covariate=False)
    with pytest.raises(ConfigError, match="0/1"):
        Metric(name="m", type="median_per_unit", numerator=Measure("purchase", "converted"))
    (loaded,) = load_metrics(
        "m.toml", text='[[metric]]\nname = "med"\ntype = "median_per_unit"\nevent = "purchase"\n'
    )
    assert loaded.type == "median_per_unit" and loaded.numerator.aggregate == "sum"


def test_a_new_kind_is_computed_by_the_analysis_sql(any_url):  # noqa: F811 (the fixture)
    rng = np.random.default_rng(3)
    values = {"control": rng.integers(0, 9, 41), "treatment": rng.integers(0, 9, 40)}
    ex, ev = [], []
    for variant, arm in values.items():
        for i, v in enumerate(arm):
            unit = f"{variant}-{i}"
            ex.append(
                {
                    "event_id": f"x{unit}",
                    "experiment": "exp",
                    "unit_id": unit,
                    "variant": variant,
                    "ts_us": T0 + i * HOUR,
                }
            )
            for j in range(int(v)):  # v purchases of value 1.5: the unit's sum is 1.5 v
                ev.append(
                    {
                        "event_id": f"e{unit}-{j}",
                        "unit_id": unit,
                        "event_type": "purchase",
                        "value": 1.5,
                        "ts_us": T0 + i * HOUR + j + 1,
                    }
                )
    store = store_for(any_url)
    write_rows(store, ex, ev)
    metric = Metric(name="median_revenue", type="median_per_unit", numerator=Measure("purchase"))
    agg = fetch(store, "exp", [metric])[None]
    for variant, arm in values.items():
        per_unit = np.sort(1.5 * arm)
        stats = agg.metrics["median_revenue"][variant].stats
        assert stats == MedianStats(
            n=len(arm),
            total=float(per_unit.sum()),
            median=float(per_unit[nearest_rank(len(arm), 50.0) - 1]),
        )
    assert not [p for p in agg.daily if p.metric == "median_revenue"]  # not additive


def test_the_quantile_kind_needs_a_probability_and_is_not_additive():
    from abkit.metrics import quantile

    p95 = quantile("p95_latency", "request", 0.95)
    assert (p95.type, p95.role, p95.direction, p95.unit) == (
        "quantile",
        "guardrail",
        "lower",
        "duration",
    )
    assert not is_additive(p95.kind_spec, p95, covariate=True)
    with pytest.raises(ConfigError) as info:
        Metric(name="q", type="quantile", numerator=Measure("request"))
    assert info.value.location.field == "probability"
    with pytest.raises(ConfigError, match="only quantile metrics"):
        Metric(name="m", type="mean", numerator=Measure("x"), probability=0.5)
    (loaded,) = load_metrics(
        "m.toml",
        text='[[metric]]\nname = "p99"\ntype = "quantile"\nevent = "request"\n'
        'probability = 0.99\ndirection = "lower"\n',
    )
    assert loaded.probability == 0.99 and loaded.to_dict()["probability"] == 0.99


def test_a_quantile_of_a_per_unit_value_declares_the_unit_value():
    """``quantile_of = "unit"``: the kind asks for the per-unit numerator ``y`` and ranks it
    (a UnitQuantile aggregate); ``"event"`` ranks the event values (no per-unit value)."""
    from abkit.metrics import quantile
    from abkit.metrics.kinds.base import EventQuantile, UnitValue
    from abkit.metrics.kinds.quantile import UnitQuantile

    p90 = quantile("p90_revenue", "purchase", 0.9, of="unit", direction="higher")
    spec = p90.kind_spec
    assert spec.unit_values(p90, covariate=False) == {"y": UnitValue("numerator")}
    assert spec.arm_aggregates(p90, covariate=False) == {"quantile": UnitQuantile(0.9, "y")}
    assert not is_additive(spec, p90, covariate=False)
    p95 = quantile("p95_latency", "request", 0.95)
    assert spec.unit_values(p95, covariate=False) == {}
    (aggregate,) = spec.arm_aggregates(p95, covariate=False).values()
    assert type(aggregate) is EventQuantile
    with pytest.raises(ConfigError) as info:
        p95.with_(quantile_of="session")
    assert info.value.location.field == "quantile_of"
    (loaded,) = load_metrics(
        "m.toml",
        text='[[metric]]\nname = "p90_orders"\ntype = "quantile"\nevent = "purchase"\n'
        'aggregate = "count"\nprobability = 0.9\nquantile_of = "unit"\n',
    )
    assert loaded.quantile_of == "unit" and loaded.numerator.aggregate == "count"
    assert loaded.to_dict()["quantile_of"] == "unit"
