"""Sources: where the exposures and events an analysis reads live.

abkit's own store is the default source. A :class:`Source` declares the user's tables (or SQL
queries) instead, with a column mapping, and the analysis reads them where they are:

.. code-block:: toml

    [exposures]
    table = "analytics.ab_exposures"        # or: query = "SELECT ... WHERE region = :region"
    unit = "customer_id"
    experiment = "test_name"
    variant = "arm"
    timestamp = "exposed_at"
    timestamp_encoding = "timestamp"         # "timestamp" (native) | "s" | "ms" | "us"
    attributes = ["platform", "country"]     # columns usable as segments
    event_id = "exposure_id"                 # optional

    [events]
    table = "analytics.orders"
    unit = "customer_id"
    event_type = "kind"                       # or: event_type_value = "purchase" (one type)
    timestamp = "ordered_at"
    value = "amount"                          # optional
    currency = "currency"                     # optional

    [params]                                  # bound parameters of the queries
    region = "EU"

Table and column names are validated identifiers (letters, digits, ``_``, ``$``; a table may
be qualified ``catalog.schema.table``) and quoted by the dialect; a query is a ``text()``
subquery whose ``:name`` parameters are bound from ``params``, never formatted into SQL.
Timestamps are converted to epoch microseconds inside the query (:class:`~abkit.analysis.
constructs.EpochMicros`). Reading a source issues only ``SELECT`` statements: no table is
created or written, so a role with ``SELECT`` privileges is enough.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Column, MetaData, String, Table, literal, select, text
from sqlalchemy.sql.selectable import FromClause

from abkit.analysis.constructs import TIME_ENCODINGS, TimeEncoding, epoch_micros, to_double
from abkit.errors import ConfigError
from abkit.metrics.files import read_toml
from abkit.store.schema import Tables


@dataclass(frozen=True)
class Relations:
    """The three relations the analysis SQL reads, with abkit's column names.

    ``exposures``: ``unit_id, experiment, variant, ts_us, event_id``; ``events``:
    ``unit_id, event_type, value, ts_us``; ``attributes`` (long form, optional):
    ``event_id, name, value``; ``attribute_columns``: segment name -> a column of
    ``exposures`` (wide form, for the user's tables).
    """

    exposures: FromClause
    events: FromClause
    attributes: FromClause | None = None
    attribute_columns: Mapping[str, str] = field(default_factory=dict)
    currency: bool = False  # whether ``events`` has a ``currency`` column


def store_relations(tables: Tables) -> Relations:
    """abkit's own store tables (``abkit.store.schema.Tables``) as a source."""
    return Relations(
        exposures=tables.exposures,
        events=tables.events,
        attributes=tables.exposure_attributes,
        currency=True,
    )


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


def _identifier(name: Any, *, field_name: str, file: str | None) -> str:
    if not isinstance(name, str) or not _IDENTIFIER.match(name) or len(name) > 128:
        raise ConfigError(
            f"{name!r} is not a valid column or table name (letters, digits, '_' and '$', "
            "starting with a letter or '_')",
            file=file,
            field=field_name,
        )
    return name


@dataclass(frozen=True)
class TableRef:
    """A table, optionally qualified by schema (and catalog): ``catalog.schema.table``."""

    name: str
    schema: str | None = None

    @classmethod
    def parse(cls, text_: Any, *, field_name: str, file: str | None = None) -> TableRef:
        if not isinstance(text_, str):
            raise ConfigError(f"a table name is text, got {text_!r}", file=file, field=field_name)
        parts = text_.split(".")
        if not 1 <= len(parts) <= 3:
            raise ConfigError(
                f"{text_!r}: give table, schema.table or catalog.schema.table",
                file=file,
                field=field_name,
            )
        for part in parts:
            _identifier(part, field_name=field_name, file=file)
        return cls(name=parts[-1], schema=".".join(parts[:-1]) or None)


@dataclass(frozen=True)
class ExposureMapping:
    """Where exposures live and which column holds what."""

    unit: str
    experiment: str
    variant: str
    timestamp: str
    table: TableRef | None = None
    query: str | None = None
    timestamp_encoding: TimeEncoding = "timestamp"
    event_id: str | None = None
    attributes: tuple[str, ...] = ()


@dataclass(frozen=True)
class EventMapping:
    """Where events live and which column holds what (``event_type_value`` when the
    relation holds one event type and has no type column)."""

    unit: str
    timestamp: str
    table: TableRef | None = None
    query: str | None = None
    timestamp_encoding: TimeEncoding = "timestamp"
    event_type: str | None = None
    event_type_value: str | None = None
    value: str | None = None
    currency: str | None = None


@dataclass(frozen=True)
class Source:
    """The user's exposures and events (module docstring); ``params`` binds query values."""

    exposures: ExposureMapping
    events: EventMapping
    params: Mapping[str, Any] = field(default_factory=dict)
    name: str = "source"

    def __post_init__(self) -> None:
        for where, mapping in (("exposures", self.exposures), ("events", self.events)):
            if (mapping.table is None) == (mapping.query is None):
                raise ConfigError(f"give {where}.table or {where}.query (one of them)", field=where)
            if mapping.timestamp_encoding not in TIME_ENCODINGS:
                raise ConfigError(
                    f"{where}.timestamp_encoding must be one of {', '.join(TIME_ENCODINGS)}",
                    field=f"{where}.timestamp_encoding",
                )
        if (self.events.event_type is None) == (self.events.event_type_value is None):
            raise ConfigError(
                "give events.event_type (a column) or events.event_type_value (one type)",
                field="events.event_type",
            )

    def relations(self) -> Relations:
        """The relations with abkit's column names, converted inside the query."""
        ex = self.exposures
        ex_from = _relation(ex.table, ex.query, self._columns(ex), self.params, "abkit_src_exp")
        exposures = select(
            ex_from.c[ex.unit].label("unit_id"),
            ex_from.c[ex.experiment].label("experiment"),
            ex_from.c[ex.variant].label("variant"),
            epoch_micros(ex_from.c[ex.timestamp], ex.timestamp_encoding).label("ts_us"),
            (ex_from.c[ex.event_id] if ex.event_id else literal(None, String())).label("event_id"),
            *[ex_from.c[a].label(f"attr_{a}") for a in ex.attributes],
        ).subquery("abkit_exposures")
        ev = self.events
        ev_from = _relation(ev.table, ev.query, self._columns(ev), self.params, "abkit_src_ev")
        event_type = (
            ev_from.c[ev.event_type]
            if ev.event_type is not None
            else literal(ev.event_type_value, String())
        )
        value = to_double(ev_from.c[ev.value]) if ev.value else literal(None)
        cols = [
            ev_from.c[ev.unit].label("unit_id"),
            event_type.label("event_type"),
            value.label("value"),
            epoch_micros(ev_from.c[ev.timestamp], ev.timestamp_encoding).label("ts_us"),
        ]
        if ev.currency:
            cols.append(ev_from.c[ev.currency].label("currency"))
        events = select(*cols).subquery("abkit_events")
        return Relations(
            exposures=exposures,
            events=events,
            attribute_columns={a: f"attr_{a}" for a in ex.attributes},
            currency=ev.currency is not None,
        )

    @staticmethod
    def _columns(mapping: ExposureMapping | EventMapping) -> list[str]:
        if isinstance(mapping, ExposureMapping):
            names = [mapping.unit, mapping.experiment, mapping.variant, mapping.timestamp]
            names += [mapping.event_id] if mapping.event_id else []
            names += list(mapping.attributes)
        else:
            names = [mapping.unit, mapping.timestamp]
            names += [n for n in (mapping.event_type, mapping.value, mapping.currency) if n]
        return list(dict.fromkeys(names))

    def describe(self) -> str:
        def one(m: ExposureMapping | EventMapping) -> str:
            if m.table is not None:
                return ".".join(p for p in (m.table.schema, m.table.name) if p)
            return "query"

        return f"{self.name} (exposures: {one(self.exposures)}, events: {one(self.events)})"


def _without_closing(query: str) -> str:
    """``query`` without a statement's closing ``;`` and what follows it when that is only
    blanks and comments. The text is scanned as SQL (quoted strings and identifiers,
    ``--`` and ``/* */`` comments), so a ``;`` or ``--`` inside a string stays."""
    closing = None  # where the last ";" outside quotes and comments is
    after = False  # whether anything but blanks and comments follows it
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        if c in "'\"":  # a quoted string or identifier; doubled quotes escape
            end = i + 1
            while end < n:
                if query[end] == c:
                    if end + 1 < n and query[end + 1] == c:
                        end += 2
                        continue
                    break
                end += 1
            i, after = end + 1, closing is not None
            continue
        if query.startswith("--", i):
            newline = query.find("\n", i)
            i = n if newline == -1 else newline + 1
            continue
        if query.startswith("/*", i):
            close = query.find("*/", i + 2)
            i = n if close == -1 else close + 2
            continue
        if c == ";":
            closing, after = i, False
        elif not c.isspace() and closing is not None:
            after = True
        i += 1
    if closing is None or after:
        return query.rstrip()
    return query[:closing].rstrip()


def _relation(
    table: TableRef | None,
    query: str | None,
    columns: Sequence[str],
    params: Mapping[str, Any],
    alias: str,
) -> FromClause:
    if table is not None:
        return Table(
            table.name, MetaData(), *[Column(c) for c in columns], schema=table.schema
        ).alias(alias)
    assert query is not None
    # the query becomes a subquery: a statement's closing ";" has no place there, and a
    # closing "-- comment" would swallow the parenthesis after it without a line end
    stmt = text(_without_closing(query) + "\n")
    used = set(stmt._bindparams)
    missing = used - set(params)
    if missing:
        raise ConfigError(
            f"the query uses :{sorted(missing)[0]} but params gives no value for it",
            field="params",
        )
    stmt = stmt.bindparams(**{k: v for k, v in params.items() if k in used})
    return stmt.columns(*[Column(c) for c in columns]).subquery(alias)


# ------------------------------------------------------------------------------ files
def _mapping_kwargs(
    raw: Any, where: str, required: Sequence[str], optional: Sequence[str], file: str
) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"[{where}] must be a table", file=file, field=where)
    allowed = {*required, *optional, "table", "query", "timestamp_encoding"}
    unknown = set(raw) - allowed
    if unknown:
        first = sorted(unknown)[0]
        raise ConfigError(
            f"unknown key {first!r} in [{where}]; allowed: {', '.join(sorted(allowed))}",
            file=file,
            field=f"{where}.{first}",
        )
    out: dict[str, Any] = {}
    for key in required:
        if key not in raw:
            raise ConfigError(f"[{where}] needs {key!r}", file=file, field=f"{where}.{key}")
    for key, value in raw.items():
        name = f"{where}.{key}"
        if key == "table":
            out["table"] = TableRef.parse(value, field_name=name, file=file)
        elif key == "query":
            if not isinstance(value, str) or not value.strip():
                raise ConfigError("a query is non-empty SQL text", file=file, field=name)
            out["query"] = value
        elif key == "timestamp_encoding":
            if value not in TIME_ENCODINGS:
                raise ConfigError(
                    f"timestamp_encoding must be one of {', '.join(TIME_ENCODINGS)}",
                    file=file,
                    field=name,
                )
            out[key] = value
        elif key == "attributes":
            if not isinstance(value, list):
                raise ConfigError("attributes is a list of column names", file=file, field=name)
            out[key] = tuple(_identifier(v, field_name=name, file=file) for v in value)
        elif key == "event_type_value":
            if not isinstance(value, str) or not value:
                raise ConfigError("event_type_value is a non-empty text", file=file, field=name)
            out[key] = value
        else:
            out[key] = _identifier(value, field_name=name, file=file)
    return out


def source_from_dict(raw: Mapping[str, Any], *, file: str = "<source>") -> Source:
    """A :class:`Source` from its TOML/JSON form (module docstring); errors name file and field."""
    unknown = set(raw) - {"exposures", "events", "params", "name"}
    if unknown:
        first = sorted(unknown)[0]
        raise ConfigError(f"unknown key {first!r} in a source", file=file, field=first)
    for key in ("exposures", "events"):
        if key not in raw:
            raise ConfigError(f"a source needs an [{key}] table", file=file, field=key)
    params = raw.get("params", {})
    if not isinstance(params, Mapping):
        raise ConfigError("[params] must be a table", file=file, field="params")
    try:
        return Source(
            exposures=ExposureMapping(
                **_mapping_kwargs(
                    raw["exposures"],
                    "exposures",
                    ("unit", "experiment", "variant", "timestamp"),
                    ("event_id", "attributes"),
                    file,
                )
            ),
            events=EventMapping(
                **_mapping_kwargs(
                    raw["events"],
                    "events",
                    ("unit", "timestamp"),
                    ("event_type", "event_type_value", "value", "currency"),
                    file,
                )
            ),
            params=dict(params),
            name=str(raw.get("name", Path(file).stem)),
        )
    except ConfigError as exc:
        if exc.location.file is None:
            raise ConfigError(exc.message, file=file, field=exc.location.field) from None
        raise


def load_source(path: str | Path) -> Source:
    """Read a source file (TOML, module docstring)."""
    file = str(path)
    try:
        content = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("source file not found", file=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read source file: {exc}", file=file) from None
    return source_from_dict(read_toml(content, file), file=file)
