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
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from abkit.errors import ConfigError

MetricKind = Literal["proportion", "mean", "ratio"]
Aggregate = Literal["sum", "count", "converted", "hours_to_first"]
Direction = Literal["higher", "lower"]
Role = Literal["primary", "secondary", "guardrail"]

KINDS: tuple[str, ...] = ("proportion", "mean", "ratio")
AGGREGATES: tuple[str, ...] = ("sum", "count", "converted", "hours_to_first")
DIRECTIONS: tuple[str, ...] = ("higher", "lower")
ROLES: tuple[str, ...] = ("primary", "secondary", "guardrail")

MICROS_PER_HOUR = 3_600_000_000
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
class Metric:
    """One metric; build with :func:`proportion`, :func:`mean`, :func:`ratio` or TOML.

    ``window_us`` is the attribution window after first exposure (``None``: until the end
    of the analysis); ``mde`` is the smallest *relative* change worth detecting, used by
    the decision to say how much more sample is needed (default 5%). ``margin`` (guardrails)
    is the relative harm the team tolerates: with it, a guardrail must be shown
    non-inferior (``abkit.stats.guardrails.guardrail``) before its arm can ship.
    """

    name: str
    kind: MetricKind
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

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError("a metric needs a non-empty name", field="name")
        if self.kind not in KINDS:
            raise ConfigError(
                f"metric {self.name!r}: unknown type {self.kind!r}; choose one of {', '.join(KINDS)}",
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
        if self.kind == "ratio" and self.denominator is None:
            raise ConfigError(
                f"ratio metric {self.name!r} needs a denominator", field="denominator"
            )
        if self.kind != "ratio" and self.denominator is not None:
            raise ConfigError(
                f"metric {self.name!r}: only ratio metrics have a denominator", field="denominator"
            )
        if self.kind == "mean" and self.numerator.aggregate == "converted":
            raise ConfigError(
                f"metric {self.name!r}: a 0/1 'converted' mean is a proportion; use type = 'proportion'",
                field="aggregate",
            )
        if not isinstance(self.min_count, int) or self.min_count < 1:
            raise ConfigError(
                f"metric {self.name!r}: min_count must be an integer >= 1", field="min_count"
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
        if self.kind == "proportion" and (self.cap is not None or self.cap_percentile is not None):
            raise ConfigError(
                f"metric {self.name!r}: a proportion is already bounded; remove the cap",
                field="cap",
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

    # ----------------------------------------------------------------- derived facts
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
    def supports_cuped(self) -> bool:
        """Whether the metric takes the single pre-period covariate ``x`` of a mean metric.

        Ratio metrics answer False here: their CUPED uses a pre-period numerator and
        denominator instead (``RatioStats`` covariate sums, requested separately by
        ``analyze`` through ``ratio_cuped``)."""
        return self.kind != "ratio"

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
        out: dict[str, Any] = {"name": self.name, "type": self.kind}
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
        )
        return out


# --------------------------------------------------------------------- constructors
def _types(event: str | Sequence[str]) -> tuple[str, ...]:
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
) -> Metric:
    """Share of units with at least ``min_count`` events of ``event`` in their window."""
    return Metric(
        name=name,
        kind="proportion",
        numerator=Measure(_types(event), "count"),
        window_us=parse_duration_us(window),
        min_count=min_count,
        direction=direction,
        role=role,
        description=description,
        mde=mde,
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
) -> Metric:
    """Mean per exposed unit of the sum (or count) of ``event`` values; zeros included."""
    return Metric(
        name=name,
        kind="mean",
        numerator=Measure(_types(event), aggregate),
        window_us=parse_duration_us(window),
        cap=cap,
        cap_percentile=cap_percentile,
        direction=direction,
        role=role,
        description=description,
        mde=mde,
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
) -> Metric:
    """``Σ numerator / Σ denominator`` over units (delta method)."""
    return Metric(
        name=name,
        kind="ratio",
        numerator=Measure(_types(numerator[0]), numerator[1]),
        denominator=Measure(_types(denominator[0]), denominator[1]),
        window_us=parse_duration_us(window),
        cap=cap,
        cap_percentile=cap_percentile,
        direction=direction,
        role=role,
        description=description,
        mde=mde,
    )


# ---------------------------------------------------------------------------- TOML
_METRIC_KEYS = {
    "name",
    "type",
    "builtin",
    "event",
    "aggregate",
    "numerator",
    "denominator",
    "window",
    "window_hours",
    "lookback",
    "min_count",
    "cap",
    "cap_percentile",
    "direction",
    "role",
    "description",
    "mde",
    "margin",
    "tags",
}


def _measure_from(raw: Any, where: dict[str, Any], field_name: str) -> Measure:
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{field_name} must be a table like {{ event = 'purchase', aggregate = 'sum' }}",
            field=field_name,
            **where,
        )
    unknown = set(raw) - {"event", "aggregate"}
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(sorted(unknown))} in {field_name}",
            field=f"{field_name}.{sorted(unknown)[0]}",
            **where,
        )
    if "event" not in raw:
        raise ConfigError(f"{field_name} needs an event", field=f"{field_name}.event", **where)
    try:
        return Measure(_types(raw["event"]), raw.get("aggregate", "sum"))
    except ConfigError as exc:
        raise ConfigError(
            exc.message, field=f"{field_name}.{exc.location.field}", **where
        ) from None


def metric_from_dict(
    raw: Mapping[str, Any], *, file: str | None = None, row: int | None = None
) -> Metric:
    """Build a :class:`Metric` from one ``[[metric]]`` table; errors name file, line, field.

    ``builtin = "revenue_per_user"`` starts from the library metric and applies the other
    keys as overrides (a ``name`` key renames it).
    """
    from abkit.metrics.library import builtin_metric

    where: dict[str, Any] = {"file": file, "row": row}
    unknown = set(raw) - _METRIC_KEYS
    if unknown:
        first = sorted(unknown)[0]
        raise ConfigError(
            f"unknown key {first!r}; allowed: {', '.join(sorted(_METRIC_KEYS))}",
            field=first,
            **where,
        )
    try:
        if "builtin" in raw:
            try:
                base = builtin_metric(raw["builtin"])
            except KeyError as exc:
                raise ConfigError(str(exc.args[0]), field="builtin") from None
            changes: dict[str, Any] = {}
            for key, value in raw.items():
                if key in {"builtin", "type", "event", "aggregate", "numerator", "denominator"}:
                    if key != "builtin":
                        raise ConfigError(
                            f"{key!r} cannot be overridden on a builtin metric; define a new one",
                            field=key,
                        )
                    continue
                changes.update(_scalar_option(key, value))
            return replace(base, **changes)
        if "name" not in raw:
            raise ConfigError("a metric needs a name", field="name")
        if "type" not in raw:
            raise ConfigError(
                "a metric needs a type ('proportion', 'mean' or 'ratio')", field="type"
            )
        kind = raw["type"]
        options: dict[str, Any] = {}
        for key, value in raw.items():
            if key in {"name", "type", "event", "aggregate", "numerator", "denominator"}:
                continue
            options.update(_scalar_option(key, value))
        if kind == "ratio":
            for key in ("event", "aggregate"):
                if key in raw:
                    raise ConfigError(
                        f"a ratio metric takes numerator and denominator tables, not {key!r}",
                        field=key,
                    )
            if "numerator" not in raw or "denominator" not in raw:
                missing = "numerator" if "numerator" not in raw else "denominator"
                raise ConfigError(f"a ratio metric needs a {missing}", field=missing)
            numerator = _measure_from(raw["numerator"], {}, "numerator")
            denominator = _measure_from(raw["denominator"], {}, "denominator")
            return Metric(
                name=raw["name"],
                kind="ratio",
                numerator=numerator,
                denominator=denominator,
                **options,
            )
        if "event" not in raw:
            raise ConfigError(f"a {kind} metric needs an event", field="event")
        default_aggregate = "count" if kind == "proportion" else "sum"
        aggregate = raw.get("aggregate", default_aggregate)
        if kind == "proportion" and aggregate != "count":
            raise ConfigError(
                "a proportion counts events (use min_count); remove 'aggregate'", field="aggregate"
            )
        return Metric(
            name=raw["name"],
            kind=kind,
            numerator=Measure(_types(raw["event"]), aggregate),
            **options,
        )
    except ConfigError as exc:
        if exc.location.file is None:
            raise ConfigError(exc.message, file=file, row=row, field=exc.location.field) from None
        raise
    except TypeError as exc:  # a value of the wrong type deep in a constructor
        raise ConfigError(str(exc), **where) from None


def _scalar_option(key: str, value: Any) -> dict[str, Any]:
    """Translate one TOML key to ``Metric`` keyword arguments, checking its type."""
    if key == "name":
        return {"name": value}
    if key in {"window", "window_hours"}:
        return {"window_us": parse_duration_us(value, field_name=key)}
    if key == "lookback":
        return {"lookback_us": parse_duration_us(value, field_name=key)}
    if key in {"cap", "cap_percentile", "mde", "margin"}:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}", field=key)
        return {key: float(value)}
    if key == "min_count":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"min_count must be an integer, got {value!r}", field=key)
        return {key: value}
    if key in {"direction", "role", "description"}:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be text, got {value!r}", field=key)
        return {key: value}
    if key == "tags":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError("tags must be a list of strings", field=key)
        return {"tags": tuple(value)}
    raise ConfigError(f"unknown key {key!r}", field=key)  # pragma: no cover - guarded above


def _table_lines(text: str, header: str) -> list[int]:
    """1-based line numbers of each ``[[header]]`` table, to locate errors."""
    pattern = re.compile(r"^\s*\[\[\s*" + re.escape(header) + r"\s*\]\]")
    return [i for i, line in enumerate(text.splitlines(), start=1) if pattern.match(line)]


def _read_toml(text: str, file: str) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        raise ConfigError(
            f"not valid TOML: {exc}", file=file, row=int(match.group(1)) if match else None
        ) from None


def load_metrics(source: str | Path, *, text: str | None = None) -> list[Metric]:
    """Read metrics from a TOML file (``[[metric]]`` tables); errors name file, line, field.

    ``text`` parses a string instead (``source`` then only names it in messages). Example::

        [[metric]]
        name = "conversion_rate"
        type = "proportion"
        event = "purchase"
        window = "7d"
        role = "primary"

        [[metric]]
        builtin = "revenue_per_user"      # from abkit.metrics.library, with overrides
        cap_percentile = 99
    """
    file = str(source)
    if text is None:
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError("metrics file not found", file=file) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read metrics file: {exc}", file=file) from None
    data = _read_toml(text, file)
    unknown = set(data) - {"metric"}
    if unknown:
        raise ConfigError(
            f"unknown top-level key {sorted(unknown)[0]!r}; metrics go in [[metric]] tables",
            file=file,
            field=sorted(unknown)[0],
        )
    tables = data.get("metric")
    if not isinstance(tables, list) or not tables:
        raise ConfigError("no [[metric]] tables found", file=file, field="metric")
    lines = _table_lines(text, "metric")
    metrics: list[Metric] = []
    seen: dict[str, int | None] = {}
    for index, raw in enumerate(tables):
        line = lines[index] if index < len(lines) else None
        metric = metric_from_dict(raw, file=file, row=line)
        if metric.name in seen:
            raise ConfigError(
                f"metric {metric.name!r} is defined twice (first at line {seen[metric.name]})",
                file=file,
                row=line,
                field="name",
            )
        seen[metric.name] = line
        metrics.append(metric)
    return metrics
