"""Row validation: raw rows in, store rows and quarantine entries out.

Every rejected row gets a stable reason code (the contract with dashboards and with
``abkit quarantine --reason``) and a message naming the source, the row and the field:

=========================  ==========================================================
code                       meaning
=========================  ==========================================================
``malformed_row``          wrong number of CSV fields, invalid JSON, not an object
``missing_unit_id``        unit id absent or blank
``missing_event_type``     event type absent or blank (events)
``missing_experiment``     experiment absent or blank (exposures)
``missing_variant``        variant absent or blank (exposures)
``missing_timestamp``      timestamp absent or blank
``id_too_long``            unit id / event type / experiment / variant longer than 255
                           characters, event id longer than 128, currency longer than 16
``invalid_character``      NUL or an unencodable (lone surrogate) character in a value
``bad_timestamp``          not ISO 8601 and not epoch seconds/milliseconds, or out of range
``naive_timestamp``        no UTC offset and no timezone configured
``ambiguous_local_time``   a naive local time that occurs twice (DST fall-back)
``nonexistent_local_time`` a naive local time skipped by a DST spring-forward
``future_timestamp``       more than ``max_future`` ahead of the ingest clock
``non_numeric_value``      ``value`` is text that is not a number (or a boolean)
``non_finite_value``       ``value`` is NaN or infinity
``bad_attributes``         exposure ``attributes`` is not an object / JSON object
``unknown_experiment``     exposure of an experiment not registered in the store
``unknown_variant``        exposure of a variant not in the registered experiment
``conflict``               event id already used for different content
=========================  ==========================================================

Ids and hashes (documented recipe, stable across versions):

* ``content_hash`` = hex of MurmurHash3 x64 128-bit (seed 0, UTF-8) of the row's
  canonical form, fields joined by ``\\x1f`` (unit separator):
  events ``unit_id, event_type, repr(value) or "", currency or "", ts_us, properties``;
  exposures ``experiment, unit_id, variant, ts_us, attributes``, where properties and
  attributes are JSON with sorted keys and compact separators (empty string when none).
* ids given as numbers are text in decimal; an integral float is its integer (``1.0`` is
  ``"1"``: pandas makes an integer column with a gap float64).
* a missing event id is derived from content: for events the ``content_hash`` itself
  (so identical rows collapse into one event, by design); for exposures the Contract 1
  id, hex of MurmurHash3 x64 128 of ``experiment \\x1f unit_id \\x1f variant \\x1f ts_us``,
  so a file of exposures and the assignment hook agree on ids.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any

import mmh3

from abkit.ingest.readers import Chunk
from abkit.store.schema import EVENT_ID_LENGTH, ID_LENGTH, KEY_LENGTH
from abkit.timeutil import EPOCH, MICROS_PER_DAY, to_us

CURRENCY_LENGTH = 16
EVENT_COLUMNS = (
    "event_id",
    "unit_id",
    "event_type",
    "value",
    "currency",
    "ts_us",
    "properties",
    "content_hash",
    "batch_id",
)
EXPOSURE_COLUMNS = (
    "event_id",
    "experiment",
    "unit_id",
    "variant",
    "ts_us",
    "content_hash",
    "batch_id",
)
ATTRIBUTE_COLUMNS = ("event_id", "name", "value")
REQUIRED = {
    "events": ("unit_id", "event_type", "timestamp"),
    "exposures": ("unit_id", "experiment", "variant", "timestamp"),
}
KNOWN = {
    "events": ("event_id", "unit_id", "event_type", "value", "currency", "timestamp", "properties"),
    "exposures": ("event_id", "experiment", "unit_id", "variant", "timestamp", "attributes"),
}
# Epoch numbers: below 1e11 they are seconds (1e11 s is the year 5138), below 1e14
# milliseconds (1e11 ms is 1973-03-03, so earlier millisecond stamps are misread and
# flagged by range checks downstream); larger numbers (µs, ns) are refused, not guessed.
EPOCH_SECONDS_LIMIT = 1e11
EPOCH_MILLIS_LIMIT = 1e14
_SECONDS_LIMIT = Decimal(int(EPOCH_SECONDS_LIMIT))
_MILLIS_LIMIT = Decimal(int(EPOCH_MILLIS_LIMIT))
# ASCII digits only: ``\d`` and ``str.isdigit`` also accept other scripts' digits (and
# superscripts, which ``int()`` then refuses), which are no epoch a pipeline writes.
_EPOCH_RE = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")
_UTC = timezone.utc
_MICRO = timedelta(microseconds=1)
_OFFSET_END = frozenset("Z0123456789")
_NON_FINITE = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


class Rejected(Exception):
    """A row failed a check: stable ``code``, the abkit ``field`` and a human ``detail``."""

    def __init__(self, code: str, field: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.field = field
        self.detail = detail


def hash_hex(text: str) -> str:
    """Hex MurmurHash3 x64 128-bit (seed 0) of UTF-8 ``text``, 32 characters.

    Encoded here, not by mmh3: mmh3 5.x crashes the interpreter (SIGSEGV) on a ``str``
    holding a lone surrogate (``"\\ud800"`` is valid JSON), where ``encode`` raises a
    ``UnicodeEncodeError`` the validator turns into ``invalid_character``.
    """
    return "%032x" % mmh3.hash128(  # noqa: UP031
        text.encode("utf-8"), seed=0, x64arch=True, signed=False
    )


def _unencodable(candidates: Mapping[str, Any]) -> Rejected:
    """The ``invalid_character`` rejection naming the first field that is not UTF-8-encodable."""
    for name, value in candidates.items():
        text = (
            value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        )
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return Rejected(
                "invalid_character", name, "contains an unencodable character (a lone surrogate)"
            )
    return Rejected("invalid_character", "unit_id", "contains an unencodable character")


def raw_json(value: Any) -> str:
    """The raw row as JSON text for quarantine, storable whatever it holds.

    Lone surrogates cannot be stored as UTF-8; ``ensure_ascii`` writes them as
    ``\\udXXX`` escapes, which read back to the same string.
    """
    text = (
        canonical_json(value)
        if not isinstance(value, str)
        else json.dumps(value, ensure_ascii=False)
    )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return text


def exposure_event_id(experiment: str, unit_id: str, variant: str, ts_us: int) -> str:
    """Contract 1's deterministic exposure id."""
    return hash_hex(f"{experiment}\x1f{unit_id}\x1f{variant}\x1f{ts_us}")


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass(frozen=True)
class Quarantined:
    row_number: int | None
    raw: Any
    code: str
    field: str | None
    reason: str


@dataclass
class Validated:
    """One chunk after validation: rows for the store and rows for quarantine."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    row_numbers: list[int] = field(default_factory=list)
    raws: list[Any] = field(default_factory=list)
    attributes: list[list[tuple[str, str, str | None]]] = field(default_factory=list)
    rejected: list[Quarantined] = field(default_factory=list)
    # Later rows of the chunk reusing an event id: (event id, content hash, row number,
    # raw, row number of the first use). They are resolved after the write, against the
    # version that won (stored before, or the first use): same content is a duplicate,
    # other content a conflict. Deciding against the first use alone would call a row
    # identical to the stored event a conflict when the first use was the odd one out.
    repeats: list[tuple[str, str, int, Any, int]] = field(default_factory=list)
    # The quarantine id each row was exported from (``_abkit_quarantine_id``), or None;
    # aligned with ``rows`` and ``repeats``: accepted or duplicate rows resolve it.
    origins: list[int | None] = field(default_factory=list)
    repeat_origins: list[int | None] = field(default_factory=list)


def parse_timestamp(value: Any, tz: tzinfo | None, field_name: str = "timestamp") -> int:
    """UTC epoch microseconds of an ISO 8601 string, epoch s/ms number, or datetime."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise Rejected("missing_timestamp", field_name, "is empty")
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise Rejected("missing_timestamp", field_name, "is empty")
        if len(text) >= 10 and text[4] == "-":
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                moment = None
            if moment is None and text[-1:] in ("Z", "z"):
                # Python 3.10's fromisoformat does not know the "Z" suffix.
                try:
                    moment = datetime.fromisoformat(text[:-1] + "+00:00")
                except ValueError:
                    moment = None
            if moment is None:
                raise Rejected(
                    "bad_timestamp", field_name, f"{text[:64]!r} is not a valid ISO 8601 timestamp"
                ) from None
        elif _EPOCH_RE.fullmatch(text):
            return _epoch(Decimal(text) if "." in text else int(text), text, field_name)
        else:
            raise Rejected(
                "bad_timestamp",
                field_name,
                f"{text[:64]!r} is neither ISO 8601 nor epoch seconds/milliseconds",
            )
    elif isinstance(value, datetime):
        moment = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise Rejected("bad_timestamp", field_name, f"{value!r} is not a time")
        return _epoch(
            Decimal(repr(value)) if isinstance(value, float) else value, repr(value), field_name
        )
    else:
        raise Rejected("bad_timestamp", field_name, f"a {type(value).__name__} is not a timestamp")
    if moment.tzinfo is None or moment.utcoffset() is None:
        if tz is None:
            raise Rejected(
                "naive_timestamp",
                field_name,
                f"{str(value)[:64]!r} has no UTC offset; add one (Z, +02:00) or set a timezone "
                "(--timezone Europe/Paris)",
            )
        moment = _localise(moment, tz, value, field_name)
    try:
        return to_us(moment)
    except OverflowError:  # pragma: no cover - datetime arithmetic never overflows here
        raise Rejected("bad_timestamp", field_name, f"{value!r} is out of range") from None


def _localise(moment: datetime, tz: tzinfo, value: Any, field_name: str) -> datetime:
    """Attach ``tz`` to a naive wall-clock time, refusing DST gaps and overlaps."""
    early = moment.replace(tzinfo=tz, fold=0)
    late = moment.replace(tzinfo=tz, fold=1)
    if early.utcoffset() != late.utcoffset():
        # In a gap the round trip through UTC changes the wall time; in an overlap it does not.
        back = early.astimezone(_UTC).astimezone(tz).replace(tzinfo=None)
        if back != moment.replace(tzinfo=None):
            raise Rejected(
                "nonexistent_local_time",
                field_name,
                f"{str(value)[:64]!r} does not exist in {tz} (skipped by a daylight-saving change)",
            )
        raise Rejected(
            "ambiguous_local_time",
            field_name,
            f"{str(value)[:64]!r} happens twice in {tz} (daylight-saving fall-back); give an offset",
        )
    return early


def _epoch(number: int | Decimal, text: str, field_name: str) -> int:
    # Exact comparisons (int and Decimal against Decimal): a float limit could round a
    # number just below the boundary onto it.
    magnitude: int | Decimal = -number if number < 0 else number
    if magnitude < _SECONDS_LIMIT:
        micros = number * 1_000_000
    elif magnitude < _MILLIS_LIMIT:
        micros = number * 1_000
    else:
        raise Rejected(
            "bad_timestamp",
            field_name,
            f"{text[:64]} is too large for epoch seconds or milliseconds "
            "(microsecond/nanosecond epochs are not accepted)",
        )
    if isinstance(micros, Decimal):
        micros = int(micros.to_integral_value())
    return int(micros)


def parse_value(value: Any) -> float | None:
    """A finite float, or None when absent."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            raise Rejected("non_numeric_value", "value", f"{text[:64]!r} is not a number") from None
        if not math.isfinite(number):
            raise Rejected("non_finite_value", "value", f"{text!r} is not a finite number")
        return number
    if isinstance(value, bool):
        raise Rejected("non_numeric_value", "value", f"{value!r} is a boolean, not a number")
    if isinstance(value, (int, float)) or hasattr(value, "__float__"):
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise Rejected("non_numeric_value", "value", f"{value!r} is not a number") from None
        if not math.isfinite(number):
            raise Rejected("non_finite_value", "value", f"{value!r} is not a finite number")
        return number
    raise Rejected("non_numeric_value", "value", f"a {type(value).__name__} is not a number")


def _id_text(value: Any) -> str:
    """An identifier as text; an integral float is written as the integer it holds.

    pandas turns an integer column with one missing value into float64, so without this
    the ids 1, 2 of such a DataFrame would be stored as "1.0", "2.0" and silently fail
    to join the "1", "2" of the assignment hook and of every other source.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _text(
    row: Mapping[str, Any], column: str | None, field_name: str, limit: int, code: str
) -> str:
    """A required identifier: present, not blank, bounded, storable."""
    value = row.get(column) if column is not None else None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise Rejected(code, field_name, "is empty")
    text = _id_text(value)
    if not text.strip():
        raise Rejected(code, field_name, "is empty")
    if len(text) > limit:
        raise Rejected("id_too_long", field_name, f"has {len(text)} characters (limit {limit})")
    if "\x00" in text:
        raise Rejected("invalid_character", field_name, "contains a NUL character")
    return text


def _check_encodable(text: str, field_name: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Rejected(
            "invalid_character", field_name, "contains an unencodable character (a lone surrogate)"
        ) from None


def _optional_text(
    row: Mapping[str, Any], column: str | None, field_name: str, limit: int
) -> str | None:
    value = row.get(column) if column is not None else None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = _id_text(value)
    if not text.strip():
        return None
    if len(text) > limit:
        raise Rejected("id_too_long", field_name, f"has {len(text)} characters (limit {limit})")
    if "\x00" in text:
        raise Rejected("invalid_character", field_name, "contains a NUL character")
    return text


@dataclass
class Validator:
    """Validates chunks of one source for one kind of row.

    ``columns`` maps each abkit field to the input column holding it (after the user's
    column map); ``extras`` are the other input columns (properties or attributes).
    """

    kind: str
    source: str
    columns: Mapping[str, str]
    extras: tuple[str, ...]
    batch_id: int
    tz: tzinfo | None
    now_us: int
    max_future: timedelta
    experiments: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # JSON Lines and Python records have no header: ``extras`` only lists the keys seen
    # in the first rows, so every key no field reads is kept (a key first seen at row
    # 5,000 would otherwise be dropped from properties without a word).
    open_schema: bool = False

    def __post_init__(self) -> None:
        self._future_limit = self.now_us + int(self.max_future / timedelta(microseconds=1))
        if self.open_schema:
            # a row's key named like a field is that field even when the first rows, from
            # which the plan was made, lacked it (1,000 views, then a purchase's value)
            taken = set(self.columns.values())
            fallback = {
                name: name
                for name in KNOWN[self.kind]
                if name not in self.columns and name not in taken
            }
            self.columns = {**fallback, **self.columns}
        get = self.columns.get
        # Required fields: the plan guarantees a column for each (default: the field name).
        self._c_unit = get("unit_id", "unit_id")
        self._c_type, self._c_ts = get("event_type", "event_type"), get("timestamp", "timestamp")
        self._c_value, self._c_currency, self._c_id = get("value"), get("currency"), get("event_id")
        self._has_properties = bool(self.extras) or "properties" in self.columns or self.open_schema
        self._used = frozenset(self.columns.values())

    def input_column(self, field_name: str | None) -> str | None:
        """The input column name of an abkit field (for messages)."""
        if field_name is None:
            return None
        return self.columns.get(field_name, field_name)

    def reason(self, row_number: int | None, field_name: str | None, detail: str) -> str:
        where = f"{self.source} row {row_number}" if row_number is not None else self.source
        if field_name is None:
            return f"{where}: {detail}"
        column = self.input_column(field_name)
        label = repr(column) if column == field_name else f"{column!r} ({field_name})"
        return f"{where}, field {label}: {detail}"

    def validate(self, chunk: Chunk) -> Validated:
        out = Validated()
        for row_number, raw, detail in chunk.malformed:
            out.rejected.append(
                Quarantined(
                    row_number, raw, "malformed_row", None, self.reason(row_number, None, detail)
                )
            )
        check = self._event if self.kind == "events" else self._exposure
        seen: dict[str, tuple[str, int]] = {}
        id_index = 0
        hash_index = 7 if self.kind == "events" else 5
        # Readers record origins up to the last row that had one: pad the rest.
        origins = chunk.origins + [None] * (len(chunk.rows) - len(chunk.origins))
        for raw, row_number, origin in zip(chunk.rows, chunk.row_numbers, origins, strict=True):
            try:
                row, attrs = check(raw)
            except Rejected as exc:
                out.rejected.append(
                    Quarantined(
                        row_number,
                        raw,
                        exc.code,
                        self.input_column(exc.field),
                        self.reason(row_number, exc.field, exc.detail),
                    )
                )
                continue
            event_id = row[id_index]
            previous = seen.get(event_id)
            if previous is not None:
                out.repeats.append((event_id, row[hash_index], row_number, raw, previous[1]))
                out.repeat_origins.append(origin)
                continue
            seen[event_id] = (row[hash_index], row_number)
            out.rows.append(row)
            out.row_numbers.append(row_number)
            out.raws.append(raw)
            out.origins.append(origin)
            if attrs is not None:
                out.attributes.append(attrs)
        return out

    def _timestamp(self, row: Mapping[str, Any]) -> int:
        raw = row.get(self._c_ts)
        ts_us = None
        if raw.__class__ is str:
            # Fast paths: ISO 8601 with an offset, and whole epoch seconds.
            if len(raw) >= 20 and raw[4] == "-" and raw[-1] in _OFFSET_END:
                try:
                    moment = datetime.fromisoformat(raw)
                except ValueError:
                    moment = None
                if moment is not None and moment.tzinfo is not None:
                    ts_us = (moment - EPOCH) // _MICRO
            elif raw.isascii() and raw.isdigit() and len(raw) <= 10:
                ts_us = int(raw) * 1_000_000
        if ts_us is None:
            ts_us = parse_timestamp(raw, self.tz)
        if ts_us > self._future_limit:
            ahead = (ts_us - self.now_us) / MICROS_PER_DAY
            raise Rejected(
                "future_timestamp",
                "timestamp",
                f"is {ahead:,.1f} days in the future (more than "
                f"{self.max_future.total_seconds() / 86_400:g} days ahead of the ingest clock)",
            )
        if ts_us < -62_135_596_800_000_000:  # pragma: no cover - datetime cannot go lower
            raise Rejected("bad_timestamp", "timestamp", "is before year 1")
        return ts_us

    def _event(self, row: Mapping[str, Any]) -> tuple[tuple[Any, ...], None]:
        # The common case (clean strings) is inlined: this loop runs once per input row
        # and is most of the ingest's Python time. Anything unusual falls back to the
        # general helpers, which also produce the rejection messages.
        cols = self.columns
        unit_id = row.get(self._c_unit)
        if not (
            unit_id.__class__ is str
            and 0 < len(unit_id) <= ID_LENGTH
            and not unit_id.isspace()
            and "\x00" not in unit_id
        ):
            unit_id = _text(row, self._c_unit, "unit_id", ID_LENGTH, "missing_unit_id")
        event_type = row.get(self._c_type)
        if not (
            event_type.__class__ is str
            and 0 < len(event_type) <= KEY_LENGTH
            and not event_type.isspace()
            and "\x00" not in event_type
        ):
            event_type = _text(row, self._c_type, "event_type", KEY_LENGTH, "missing_event_type")
        ts_us = self._timestamp(row)
        value = row.get(self._c_value) if self._c_value is not None else None
        if value == "":
            value = None
        elif value is not None:
            value = parse_value(value)
        currency = row.get(self._c_currency) if self._c_currency is not None else None
        if currency is not None:
            currency = _optional_text(row, self._c_currency, "currency", CURRENCY_LENGTH)
        properties = self._properties(row) if self._has_properties else None
        try:
            content_hash = hash_hex(
                f"{unit_id}\x1f{event_type}\x1f{'' if value is None else repr(value)}\x1f"
                f"{currency or ''}\x1f{ts_us}\x1f{properties or ''}"
            )
        except UnicodeEncodeError:
            raise _unencodable(
                {
                    "unit_id": unit_id,
                    "event_type": event_type,
                    "currency": currency or "",
                    "properties": properties or "",
                }
            ) from None
        event_id = row.get(self._c_id) if self._c_id is not None else None
        if event_id is not None and not (
            event_id.__class__ is str
            and 0 < len(event_id) <= EVENT_ID_LENGTH
            and "\x00" not in event_id
            and not event_id.isspace()  # blank: no id given (the content hash is used)
        ):
            event_id = _optional_text(row, cols.get("event_id"), "event_id", EVENT_ID_LENGTH)
        if event_id is not None and not event_id.isascii():
            _check_encodable(event_id, "event_id")
        return (
            (
                event_id or content_hash,
                unit_id,
                event_type,
                value,
                currency,
                ts_us,
                properties,
                content_hash,
                self.batch_id,
            ),
            None,
        )

    def _properties(self, row: Mapping[str, Any]) -> str | None:
        props: dict[str, Any] = {}
        nested_column = self.columns.get("properties")
        if nested_column is not None:
            nested = row.get(nested_column)
            if isinstance(nested, str) and nested.strip():
                try:
                    nested = json.loads(nested)
                except ValueError:
                    nested = {"properties": nested}
            if isinstance(nested, Mapping):
                props.update(nested)
            elif nested not in (None, ""):
                props["properties"] = nested
        for column, value in self._extra_items(row):
            if isinstance(value, float) and not math.isfinite(value):
                value = None  # JSON has no NaN; pandas' NaN means missing here
            props[column] = value
        return canonical_json(props) if props else None

    def _extra_items(self, row: Mapping[str, Any]) -> list[tuple[str, Any]]:
        """(column, value) of the row's columns that no abkit field reads."""
        if self.open_schema:
            used = self._used
            return [
                (str(k), val)
                for k, val in row.items()
                if k not in used and not str(k).startswith("_abkit_")  # export metadata
            ]
        return [(column, row[column]) for column in self.extras if column in row]

    def _exposure(
        self, row: Mapping[str, Any]
    ) -> tuple[tuple[Any, ...], list[tuple[str, str, str | None]]]:
        cols = self.columns
        experiment = _text(
            row, cols.get("experiment"), "experiment", KEY_LENGTH, "missing_experiment"
        )
        unit_id = _text(row, cols.get("unit_id"), "unit_id", ID_LENGTH, "missing_unit_id")
        variant = _text(row, cols.get("variant"), "variant", KEY_LENGTH, "missing_variant")
        ts_us = self._timestamp(row)
        variants = self.experiments.get(experiment)
        if variants is None:
            raise Rejected(
                "unknown_experiment",
                "experiment",
                f"experiment {experiment!r} is not registered in the store "
                "(register it first: abkit ingest --experiments FILE, or Store.register_experiments)",
            )
        if variant not in variants:
            raise Rejected(
                "unknown_variant",
                "variant",
                f"{variant!r} is not a variant of {experiment!r} (variants: {', '.join(sorted(variants))})",
            )
        attributes = self._attributes(row)
        attributes_json = canonical_json(attributes) if attributes else ""
        try:
            derived = exposure_event_id(experiment, unit_id, variant, ts_us)
            content_hash = hash_hex(f"{derived}\x1f{attributes_json}")
        except UnicodeEncodeError:
            raise _unencodable(
                {
                    "experiment": experiment,
                    "unit_id": unit_id,
                    "variant": variant,
                    "attributes": attributes_json,
                }
            ) from None
        event_id = _optional_text(row, cols.get("event_id"), "event_id", EVENT_ID_LENGTH) or derived
        if not event_id.isascii():
            _check_encodable(event_id, "event_id")
        attrs = [
            (event_id, name[:KEY_LENGTH], _attribute_text(value))
            for name, value in attributes.items()
        ]
        return (event_id, experiment, unit_id, variant, ts_us, content_hash, self.batch_id), attrs

    def _attributes(self, row: Mapping[str, Any]) -> dict[str, Any]:
        attributes: dict[str, Any] = {}
        nested_column = self.columns.get("attributes")
        if nested_column is not None:
            nested = row.get(nested_column)
            if isinstance(nested, str) and nested.strip():
                try:
                    nested = json.loads(nested)
                except ValueError:
                    raise Rejected("bad_attributes", "attributes", "is not a JSON object") from None
            if isinstance(nested, Mapping):
                attributes.update({str(k): v for k, v in nested.items()})
            elif nested not in (None, ""):
                raise Rejected(
                    "bad_attributes", "attributes", f"is a {type(nested).__name__}, not an object"
                )
        for column, value in self._extra_items(row):
            if value is not None and value != "":
                attributes[column] = value
        return attributes


def _attribute_text(value: Any) -> str | None:
    """Attribute values are stored as text: strings as-is, everything else as JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return canonical_json(value)


__all__ = [
    "ATTRIBUTE_COLUMNS",
    "EVENT_COLUMNS",
    "EXPOSURE_COLUMNS",
    "KNOWN",
    "REQUIRED",
    "Quarantined",
    "Rejected",
    "Validated",
    "Validator",
    "canonical_json",
    "exposure_event_id",
    "hash_hex",
    "parse_timestamp",
    "parse_value",
    "raw_json",
]
