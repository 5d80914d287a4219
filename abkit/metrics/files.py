"""Metric files: ``[[metric]]`` tables in TOML, read with errors that name file, line and field.

A table gives ``name`` and ``type`` (a registered kind: ``proportion``, ``mean``, ``ratio``),
then ``event`` (and ``aggregate``) for one-measure kinds or ``numerator`` and ``denominator``
tables for ratios, and the options of :class:`~abkit.metrics.definitions.Metric` (``window``,
``cap_percentile``, ``direction``, ``role``, ``unit``, ``currency``, ``covariates``, ...).
``builtin = "name"`` starts from a library metric (:mod:`abkit.metrics.library`) and
overrides its options. ``covariates = ["pre:orders_per_user", "prediction:revenue_model"]``
adds regression-adjustment covariates (:class:`~abkit.metrics.definitions.Covariate`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from abkit.errors import ConfigError
from abkit.metrics.definitions import Measure, Metric, as_event_types, parse_duration_us
from abkit.metrics.kinds import kind_of
from abkit.metrics.library import builtin_metric

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
    "unit",
    "currency",
    "probability",
    "quantile_of",
    "covariates",
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
        return Measure(as_event_types(raw["event"]), raw.get("aggregate", "sum"))
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
        if "window" in raw and "window_hours" in raw:  # one would silently win
            raise ConfigError("give window or window_hours, not both", field="window_hours")
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
        kind = kind_of(raw["type"])
        options: dict[str, Any] = {}
        for key, value in raw.items():
            if key in {"name", "type", "event", "aggregate", "numerator", "denominator"}:
                continue
            options.update(_scalar_option(key, value))
        if "denominator" in kind.measures:
            for key in ("event", "aggregate"):
                if key in raw:
                    raise ConfigError(
                        f"a {kind.name} metric takes numerator and denominator tables, not {key!r}",
                        field=key,
                    )
            if "numerator" not in raw or "denominator" not in raw:
                missing = "numerator" if "numerator" not in raw else "denominator"
                raise ConfigError(f"a {kind.name} metric needs a {missing}", field=missing)
            return Metric(
                name=raw["name"],
                type=raw["type"],
                numerator=_measure_from(raw["numerator"], {}, "numerator"),
                denominator=_measure_from(raw["denominator"], {}, "denominator"),
                **options,
            )
        for key in ("numerator", "denominator"):
            if key in raw:
                raise ConfigError(
                    f"a {kind.name} metric takes an event (and aggregate), not {key!r}", field=key
                )
        if "event" not in raw:
            raise ConfigError(f"a {kind.name} metric needs an event", field="event")
        return Metric(
            name=raw["name"],
            type=raw["type"],
            numerator=Measure(
                as_event_types(raw["event"]), raw.get("aggregate", kind.default_aggregate)
            ),
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
    if key in {"cap", "cap_percentile", "mde", "margin", "probability"}:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}", field=key)
        return {key: float(value)}
    if key == "min_count":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"min_count must be an integer, got {value!r}", field=key)
        return {key: value}
    if key in {"direction", "role", "description", "unit", "currency", "quantile_of"}:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be text, got {value!r}", field=key)
        return {key: value}
    if key == "covariates":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(
                "covariates must be a list such as ['pre:orders_per_user', "
                "'prediction:revenue_model']",
                field=key,
            )
        return {"covariates": tuple(value)}
    if key == "tags":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError("tags must be a list of strings", field=key)
        return {"tags": tuple(value)}
    raise ConfigError(f"unknown key {key!r}", field=key)  # pragma: no cover - guarded above


def _table_lines(text: str, header: str) -> list[int]:
    """1-based line numbers of each ``[[header]]`` table, to locate errors."""
    pattern = re.compile(r"^\s*\[\[\s*" + re.escape(header) + r"\s*\]\]")
    return [i for i, line in enumerate(text.splitlines(), start=1) if pattern.match(line)]


def read_toml(text: str, file: str) -> dict[str, Any]:
    """Parse TOML text; a syntax error is a ConfigError naming the file and line."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib
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
    data = read_toml(text, file)
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
