"""The declarations every metric kind is made of, and the registry of kinds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from abkit.errors import ConfigError

if TYPE_CHECKING:
    from abkit.metrics.definitions import Metric

MeasureName = Literal["numerator", "denominator"]
Period = Literal["window", "pre"]


@dataclass(frozen=True)
class UnitValue:
    """A per-unit value: one measure of the metric over its window or its pre-period.

    ``indicator``: 1.0 when the measure's count reaches the metric's ``min_count``, else 0.0;
    ``capped``: bounded above by the metric's cap (absolute, or the percentile cap computed
    on the window values). Otherwise the measure's aggregate as a double.

    ``measure="covariate"``: the metric's declared covariate number ``index``
    (``metric.covariates[index]``, a :class:`~abkit.metrics.definitions.Covariate`), which
    says itself what is computed (a metric's pre-period value or a model's prediction);
    ``period``, ``indicator`` and ``capped`` are then ignored.
    """

    measure: MeasureName | Literal["covariate"]
    period: Period = "window"
    indicator: bool = False
    capped: bool = False
    index: int = 0


@dataclass(frozen=True)
class ArmSum:
    """``Σ_i`` over the arm's units of the product of the named per-unit values."""

    factors: tuple[str, ...]


@dataclass(frozen=True)
class ArmPercentile:
    """Nearest-rank ``percent``-th percentile of a per-unit value over the arm's units."""

    value: str
    percent: float


@dataclass(frozen=True)
class EventQuantile:
    """The ``probability`` quantile of the metric's event values in the arm, clustered by
    unit (:func:`abkit.analysis.sql.quantile_stats`: three database passes); the kind's
    ``stats`` receives the arm's :class:`~abkit.stats.quantile.QuantileStats`."""

    probability: float


ArmAggregate = ArmSum | ArmPercentile | EventQuantile


class Kind(Protocol):
    """What a metric kind declares (module docstring)."""

    @property
    def name(self) -> str: ...

    @property
    def measures(self) -> tuple[MeasureName, ...]:
        """The measures a definition gives: ``("numerator",)`` or with a ``"denominator"``."""

    @property
    def default_aggregate(self) -> str:
        """The numerator's aggregate when a TOML table does not say."""

    @property
    def parameters(self) -> tuple[str, ...]:
        """The kind-specific fields of :class:`Metric` it reads (e.g. ``probability``)."""

    def validate(self, metric: Metric) -> None:
        """Raise :class:`~abkit.errors.ConfigError` (with ``field``) for a bad definition."""

    def has_covariate(self, metric: Metric, cuped: bool) -> bool:
        """Whether the analysis computes the metric's pre-period values."""

    def unit_values(self, metric: Metric, *, covariate: bool) -> Mapping[str, UnitValue]: ...

    def arm_aggregates(self, metric: Metric, *, covariate: bool) -> Mapping[str, ArmAggregate]: ...

    def stats(self, n: int, aggregates: Mapping[str, Any]) -> Any:
        """Sufficient statistics of one arm from its ``n`` units and aggregates."""


def is_additive(kind: Kind, metric: Metric, *, covariate: bool) -> bool:
    """True when every per-arm aggregate is a sum (statistics add up across days)."""
    return all(
        isinstance(a, ArmSum) for a in kind.arm_aggregates(metric, covariate=covariate).values()
    )


_REGISTRY: dict[str, Kind] = {}


def register_kind(kind: Kind) -> Kind:
    """Make ``Metric(type=kind.name, ...)`` valid and analysable."""
    if not kind.name or (kind.name in _REGISTRY and _REGISTRY[kind.name] is not kind):
        raise ValueError(f"a metric kind named {kind.name!r} is already registered")
    _REGISTRY[kind.name] = kind
    return kind


def kind_of(name: str) -> Kind:
    """The registered kind called ``name`` (a ConfigError listing the kinds otherwise)."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown metric type {name!r}; choose one of {', '.join(_REGISTRY)}", field="type"
        ) from None


def kind_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)
