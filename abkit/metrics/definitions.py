"""Metric definitions: what is computed per unit, over which window, and which way is good.

Every metric is computed **per randomisation unit** from the events that unit produced at
or after its first exposure to the experiment and before the end of the metric's window
(``first_exposure <= ts < first_exposure + window``), then summarised per arm:

* ``proportion``: ``y_i = 1`` when the unit has at least ``min_count`` events of the given
  type(s) in its window, else ``0`` (conversion rate, repeat-purchase rate).
* ``mean``: ``y_i`` = the sum of the events' ``value`` (``aggregate="sum"``) or the number
  of events (``aggregate="count"``) in the window; units with no event count as ``0``
  (revenue per user, orders per user).
* ``ratio``: ``Σ_i y_i / Σ_i d_i`` with a numerator and a denominator measure per unit
  (average order value = revenue / orders, click-through rate = clicks / impressions).
  Its variance uses the delta method because units, not events, are independent
  (Deng, Knoblich & Lu 2018, "Applying the Delta Method in Metric Analytics").

A measure's ``aggregate`` is one of

* ``sum``: Σ value of the matching events (missing values count as 0),
* ``count``: number of matching events,
* ``converted``: 1 when the unit has at least one matching event, else 0,
* ``hours_to_first``: hours from first exposure to the first matching event, 0 when there
  is none. Used as the numerator of *time to convert* over the ``converted`` denominator,
  which makes the metric the mean delay **among converters**: non-converters add 0 to both
  sums and so drop out of the ratio, while the delta method still treats the unit (not the
  converter, whose number is itself random) as the independent draw.

Caps (winsorisation) bound the per-unit numerator before it is summed: ``cap`` is an
absolute upper bound, ``cap_percentile`` the nearest-rank percentile of the non-zero
per-unit values pooled over all arms (computed in the database in a first pass). Capping
trades a small bias for a large variance reduction on heavy-tailed metrics such as revenue.

CUPED (Deng et al. 2013) uses as covariate the **same measure over a pre-period of the
same length** before first exposure: ``first - lookback <= ts < first`` where ``lookback``
is the metric's window (or ``lookback`` when set, 14 days when the metric has no window).
Proportion and mean metrics may add **covariates** (regression adjustment with several
covariates, :mod:`abkit.stats.regression`): the pre-period values of other metrics
(``"pre:orders_per_user"``) and a model's per-unit prediction supplied as events
(``"prediction:revenue_model"``, CUPAC); see :class:`Covariate`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Literal, get_args

from abkit.errors import ConfigError
from abkit.metrics.kinds import Kind, kind_names, kind_of
from abkit.timeutil import MICROS_PER_HOUR
from abkit.vocabulary import (
    COVARIATE_SOURCES,
    DIRECTIONS,
    METRIC_UNITS,
    ROLES,
    CovariateSource,
    Direction,
    MetricType,
    MetricUnit,
    QuantileOf,
    Role,
)

# How a measure reduces a unit's matching events (module docstring).
Aggregate = Literal["sum", "count", "converted", "hours_to_first"]
AGGREGATES: tuple[Aggregate, ...] = get_args(Aggregate)

DEFAULT_LOOKBACK_US = 14 * 24 * MICROS_PER_HOUR

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|min|h|d|w)\s*$")
_UNIT_US = {
    "us": 1,
    "ms": 1_000,
    "s": 1_000_000,
    "m": 60_000_000,
    "min": 60_000_000,
    "h": MICROS_PER_HOUR,
    "d": 24 * MICROS_PER_HOUR,
    "w": 7 * 24 * MICROS_PER_HOUR,
}


def parse_duration_us(value: Any, *, field_name: str = "window") -> int | None:
    """Microseconds of a duration given as ``timedelta``, hours (number) or ``"7d"``-style text.

    ``None`` (and the text ``"none"``) mean "no window": until the end of the analysis.
    """
    if value is None:
        return None
    if isinstance(value, timedelta):
        micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    elif isinstance(value, bool):
        raise ConfigError(f"expected a duration, got {value!r}", field=field_name)
    elif isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ConfigError(f"expected a finite number of hours, got {value!r}", field=field_name)
        micros = round(value * MICROS_PER_HOUR)
    elif isinstance(value, str):
        if value.strip().lower() == "none":
            return None
        match = _DURATION.match(value.lower())
        if not match:
            raise ConfigError(
                f"cannot read duration {value!r}: use e.g. '7d', '24h', '30min' or hours",
                field=field_name,
            )
        micros = round(float(match.group(1)) * _UNIT_US[match.group(2)])
    else:
        raise ConfigError(f"expected a duration, got {type(value).__name__}", field=field_name)
    if micros <= 0:
        raise ConfigError(f"a duration must be positive, got {value!r}", field=field_name)
    return int(micros)


@dataclass(frozen=True)
class Measure:
    """What is aggregated per unit: events of ``event_types`` reduced by ``aggregate``."""

    event_types: tuple[str, ...]
    aggregate: Aggregate = "sum"

    def __post_init__(self) -> None:
        if isinstance(self.event_types, str):
            object.__setattr__(self, "event_types", (self.event_types,))
        else:
            object.__setattr__(self, "event_types", tuple(self.event_types))
        if not self.event_types or not all(isinstance(t, str) and t for t in self.event_types):
            raise ConfigError("a measure needs at least one non-empty event type", field="event")
        if self.aggregate not in AGGREGATES:
            raise ConfigError(
                f"unknown aggregate {self.aggregate!r}; choose one of {', '.join(AGGREGATES)}",
                field="aggregate",
            )


@dataclass(frozen=True)
class Covariate:
    """A regression-adjustment covariate of a metric (CUPED with several covariates, CUPAC).

    Written ``"pre:<metric>"`` or ``"prediction:<event type>"`` (:meth:`parse`):

    * ``pre:<metric>``: the per-unit value of another proportion or mean metric over its
      own pre-period ``[first exposure - lookback, first exposure)`` (the metric's CUPED
      covariate: its numerator, as the 0/1 indicator for a proportion, with its absolute
      cap). The name is looked up among the analysed metrics, then the library
      (:func:`abkit.metrics.library.bind_covariates`), which fills ``measure``,
      ``min_count``, ``cap`` and ``lookback_us``.
    * ``prediction:<event type>``: a model's per-unit prediction (CUPAC), supplied as
      events of that type whose ``value`` is the prediction: the mean of their values
      **before the unit's first exposure** (one scoring row per unit is the usual case;
      a score written after exposure could be affected by the treatment and is ignored).
      A unit without a prediction gets 0.

    The metric's own pre-period value is always the first covariate; these come after it.
    """

    source: CovariateSource
    ref: str
    measure: Measure | None = None
    min_count: int | None = None
    cap: float | None = None
    lookback_us: int | None = None

    def __post_init__(self) -> None:
        if self.source not in COVARIATE_SOURCES:
            raise ConfigError(
                f"covariate source must be one of {', '.join(COVARIATE_SOURCES)}, "
                f"got {self.source!r}",
                field="covariates",
            )
        if not isinstance(self.ref, str) or not self.ref.strip():
            raise ConfigError(
                "a covariate names a metric (pre:<metric>) or an event type "
                "(prediction:<event type>)",
                field="covariates",
            )
        if self.source == "prediction" and self.measure is None:
            object.__setattr__(self, "measure", Measure((self.ref,), "sum"))

    @classmethod
    def parse(cls, value: Covariate | str) -> Covariate:
        """``"pre:orders_per_user"`` or ``"prediction:revenue_model"`` (or a Covariate)."""
        if isinstance(value, Covariate):
            return value
        if not isinstance(value, str) or ":" not in value:
            raise ConfigError(
                f"cannot read covariate {value!r}: write 'pre:<metric>' or "
                "'prediction:<event type>'",
                field="covariates",
            )
        source, _, ref = value.partition(":")
        return cls(source=source.strip(), ref=ref.strip())  # type: ignore[arg-type]

    @property
    def label(self) -> str:
        return f"{self.source}:{self.ref}"

    @property
    def bound(self) -> bool:
        """Whether what is computed per unit is known (a ``pre`` reference resolved)."""
        return self.measure is not None


@dataclass(frozen=True)
class Metric:
    """One metric; build with :func:`proportion`, :func:`mean`, :func:`ratio`, TOML, or directly:
    ``Metric(name="conversion", type="proportion", numerator=Measure("purchase", "count"))``.

    ``type`` is one of the registered kinds (:mod:`abkit.metrics.kinds`), the same word as the
    TOML ``type`` key. ``unit`` says what the figures are measured in (``"currency"``,
    ``"percent"``, ``"count"``, ``"duration"`` or a plain ``"number"``); ``currency`` is the
    ISO 4217 code of a money metric when known.

    ``window_us`` is the attribution window after first exposure (``None``: until the end
    of the analysis); ``mde`` is the smallest *relative* change worth detecting, used by
    the decision to say how much more sample is needed (default 5%). ``margin`` (guardrails)
    is the relative harm the team tolerates: with it, a guardrail must be shown
    non-inferior (``abkit.stats.guardrails.guardrail``) before its arm can ship.
    """

    name: str
    type: MetricType
    numerator: Measure
    denominator: Measure | None = None
    window_us: int | None = None
    min_count: int = 1
    cap: float | None = None
    cap_percentile: float | None = None
    direction: Direction = "higher"
    role: Role = "secondary"
    description: str = ""
    mde: float | None = None
    lookback_us: int | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)
    margin: float | None = None
    unit: MetricUnit = "number"
    currency: str = ""
    probability: float | None = None  # quantile metrics: 0.5 (median), 0.95 (p95), ...
    quantile_of: QuantileOf = "event"  # quantile metrics: each event's value, or per unit
    covariates: tuple[Covariate, ...] = ()  # regression adjustment beyond the own pre-period

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError("a metric needs a non-empty name", field="name")
        if self.type not in kind_names():
            raise ConfigError(
                f"metric {self.name!r}: unknown type {self.type!r}; "
                f"choose one of {', '.join(kind_names())}",
                field="type",
            )
        if self.direction not in DIRECTIONS:
            raise ConfigError(
                f"metric {self.name!r}: direction must be 'higher' or 'lower', got {self.direction!r}",
                field="direction",
            )
        if self.role not in ROLES:
            raise ConfigError(
                f"metric {self.name!r}: role must be one of {', '.join(ROLES)}, got {self.role!r}",
                field="role",
            )
        if self.unit not in METRIC_UNITS:
            raise ConfigError(
                f"metric {self.name!r}: unit must be one of {', '.join(METRIC_UNITS)}, "
                f"got {self.unit!r}",
                field="unit",
            )
        if not isinstance(self.currency, str) or (
            self.currency and not re.fullmatch(r"[A-Z]{3}", self.currency)
        ):
            raise ConfigError(
                f"metric {self.name!r}: currency must be an ISO 4217 code such as 'EUR', "
                f"got {self.currency!r}",
                field="currency",
            )
        if self.probability is not None:
            if "probability" not in self.kind_spec.parameters:
                raise ConfigError(
                    f"metric {self.name!r}: only quantile metrics have a probability",
                    field="probability",
                )
            if not (isinstance(self.probability, float) and 0 < self.probability < 1):
                raise ConfigError(
                    f"metric {self.name!r}: probability must be in (0, 1), got "
                    f"{self.probability!r}",
                    field="probability",
                )
        if "denominator" not in self.kind_spec.measures and self.denominator is not None:
            raise ConfigError(
                f"metric {self.name!r}: only ratio metrics have a denominator", field="denominator"
            )
        if not isinstance(self.min_count, int) or self.min_count < 1:
            raise ConfigError(
                f"metric {self.name!r}: min_count must be an integer >= 1", field="min_count"
            )
        if self.min_count != 1 and self.type != "proportion":
            # only a proportion counts events per unit against it: elsewhere it would be
            # accepted and change nothing
            raise ConfigError(
                f"metric {self.name!r}: min_count applies to proportion metrics only",
                field="min_count",
            )
        if self.quantile_of != "event" and "quantile_of" not in self.kind_spec.parameters:
            raise ConfigError(
                f"metric {self.name!r}: only quantile metrics have quantile_of",
                field="quantile_of",
            )
        if self.cap is not None and self.cap_percentile is not None:
            raise ConfigError(
                f"metric {self.name!r}: give cap or cap_percentile, not both", field="cap"
            )
        if self.cap is not None and (not math.isfinite(self.cap) or self.cap < 0):
            raise ConfigError(f"metric {self.name!r}: cap must be finite and >= 0", field="cap")
        if self.cap_percentile is not None and not 0 < self.cap_percentile < 100:
            raise ConfigError(
                f"metric {self.name!r}: cap_percentile must be in (0, 100)", field="cap_percentile"
            )
        if self.mde is not None and not (math.isfinite(self.mde) and self.mde > 0):
            raise ConfigError(f"metric {self.name!r}: mde must be > 0 (relative)", field="mde")
        if self.margin is not None and not (math.isfinite(self.margin) and self.margin > 0):
            raise ConfigError(
                f"metric {self.name!r}: margin must be > 0 (relative, e.g. 0.02)", field="margin"
            )
        for name in ("window_us", "lookback_us"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ConfigError(f"metric {self.name!r}: {name} must be a positive integer")
        object.__setattr__(self, "tags", tuple(self.tags))
        self._check_covariates()
        self.kind_spec.validate(self)

    def _check_covariates(self) -> None:
        raw = self.covariates
        if isinstance(raw, (str, Covariate)):
            raw = (raw,)
        try:
            parsed = [Covariate.parse(c) for c in raw]
        except ConfigError as exc:
            raise ConfigError(f"metric {self.name!r}: {exc.message}", field="covariates") from None
        # "pre:<this metric>" is the metric's own pre-period, always the first covariate
        parsed = [c for c in parsed if not (c.source == "pre" and c.ref == self.name)]
        labels = [c.label for c in parsed]
        if len(set(labels)) != len(labels):
            raise ConfigError(
                f"metric {self.name!r}: a covariate is listed twice", field="covariates"
            )
        if parsed and "covariates" not in self.kind_spec.parameters:
            raise ConfigError(
                f"metric {self.name!r}: covariates (regression adjustment) apply to proportion "
                f"and mean metrics, not {self.type} metrics",
                field="covariates",
            )
        object.__setattr__(self, "covariates", tuple(parsed))

    # ----------------------------------------------------------------- derived facts
    @property
    def kind_spec(self) -> Kind:
        """The kind object of ``type`` (what is computed per unit and per arm)."""
        return kind_of(self.type)

    @property
    def event_types(self) -> tuple[str, ...]:
        """Every event type the metric reads (numerator first)."""
        types = list(self.numerator.event_types)
        if self.denominator is not None:
            types += [t for t in self.denominator.event_types if t not in types]
        return tuple(types)

    @property
    def pre_period_us(self) -> int:
        """Length of the CUPED pre-period before first exposure."""
        return self.lookback_us or self.window_us or DEFAULT_LOOKBACK_US

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"

    def with_(self, **changes: Any) -> Metric:
        """A copy with some fields changed (``window`` accepted as a duration)."""
        if "window" in changes:
            changes["window_us"] = parse_duration_us(changes.pop("window"))
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description (the TOML keys)."""
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        out["numerator"] = {
            "event": list(self.numerator.event_types),
            "aggregate": self.numerator.aggregate,
        }
        if self.denominator is not None:
            out["denominator"] = {
                "event": list(self.denominator.event_types),
                "aggregate": self.denominator.aggregate,
            }
        out.update(
            window_hours=None if self.window_us is None else self.window_us / MICROS_PER_HOUR,
            min_count=self.min_count,
            cap=self.cap,
            cap_percentile=self.cap_percentile,
            direction=self.direction,
            role=self.role,
            description=self.description,
            mde=self.mde,
            margin=self.margin,
            unit=self.unit,
            currency=self.currency,
        )
        if self.probability is not None:
            out["probability"] = self.probability
            out["quantile_of"] = self.quantile_of
        if self.covariates:
            out["covariates"] = [c.label for c in self.covariates]
        return out


# --------------------------------------------------------------------- constructors
def as_event_types(event: str | Sequence[str]) -> tuple[str, ...]:
    return (event,) if isinstance(event, str) else tuple(event)


def proportion(
    name: str,
    event: str | Sequence[str],
    *,
    window: Any = None,
    min_count: int = 1,
    direction: Direction = "higher",
    role: Role = "secondary",
    description: str = "",
    mde: float | None = None,
    margin: float | None = None,
    unit: MetricUnit = "percent",
    currency: str = "",
    covariates: Sequence[Covariate | str] = (),
) -> Metric:
    """Share of units with at least ``min_count`` events of ``event`` in their window;
    ``covariates`` as :class:`Covariate` (e.g. ``("pre:revenue_per_user",)``)."""
    return Metric(
        name=name,
        type="proportion",
        numerator=Measure(as_event_types(event), "count"),
        window_us=parse_duration_us(window),
        min_count=min_count,
        direction=direction,
        role=role,
        description=description,
        mde=mde,
        margin=margin,
        unit=unit,
        currency=currency,
        covariates=tuple(covariates),  # type: ignore[arg-type]  # parsed in __post_init__
    )


def mean(
    name: str,
    event: str | Sequence[str],
    *,
    aggregate: Aggregate = "sum",
    window: Any = None,
    cap: float | None = None,
    cap_percentile: float | None = None,
    direction: Direction = "higher",
    role: Role = "secondary",
    description: str = "",
    mde: float | None = None,
    margin: float | None = None,
    unit: MetricUnit = "number",
    currency: str = "",
    covariates: Sequence[Covariate | str] = (),
) -> Metric:
    """Mean per exposed unit of the sum (or count) of ``event`` values; zeros included;
    ``covariates`` as :class:`Covariate` (e.g. ``("prediction:revenue_model",)``)."""
    return Metric(
        name=name,
        type="mean",
        numerator=Measure(as_event_types(event), aggregate),
        window_us=parse_duration_us(window),
        cap=cap,
        cap_percentile=cap_percentile,
        direction=direction,
        role=role,
        description=description,
        mde=mde,
        margin=margin,
        unit=unit,
        currency=currency,
        covariates=tuple(covariates),  # type: ignore[arg-type]  # parsed in __post_init__
    )


def ratio(
    name: str,
    numerator: tuple[str | Sequence[str], Aggregate],
    denominator: tuple[str | Sequence[str], Aggregate],
    *,
    window: Any = None,
    cap: float | None = None,
    cap_percentile: float | None = None,
    direction: Direction = "higher",
    role: Role = "secondary",
    description: str = "",
    mde: float | None = None,
    margin: float | None = None,
    unit: MetricUnit = "number",
    currency: str = "",
) -> Metric:
    """``Σ numerator / Σ denominator`` over units (delta method)."""
    return Metric(
        name=name,
        type="ratio",
        numerator=Measure(as_event_types(numerator[0]), numerator[1]),
        denominator=Measure(as_event_types(denominator[0]), denominator[1]),
        window_us=parse_duration_us(window),
        cap=cap,
        cap_percentile=cap_percentile,
        direction=direction,
        role=role,
        description=description,
        mde=mde,
        margin=margin,
        unit=unit,
        currency=currency,
    )


def quantile(
    name: str,
    event: str | Sequence[str],
    probability: float,
    *,
    window: Any = None,
    direction: Direction = "lower",
    role: Role = "guardrail",
    description: str = "",
    mde: float | None = None,
    margin: float | None = None,
    unit: MetricUnit = "duration",
    currency: str = "",
    of: QuantileOf = "event",
    aggregate: Aggregate = "sum",
) -> Metric:
    """The ``probability`` quantile of the values of ``event`` (e.g. p95 request latency),
    events clustered by unit; by default a latency guardrail (lower is better). ``of="unit"``
    ranks one value per unit instead: the unit's ``aggregate`` of ``event`` over its window
    (e.g. the p90 of revenue per user)."""
    return Metric(
        name=name,
        type="quantile",
        quantile_of=of,
        numerator=Measure(as_event_types(event), aggregate),
        window_us=parse_duration_us(window),
        direction=direction,
        role=role,
        description=description,
        mde=mde,
        margin=margin,
        unit=unit,
        currency=currency,
        probability=float(probability),
    )
