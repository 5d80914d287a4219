"""Every SQL construct whose spelling differs between engines, with its ``@compiles`` rules.

The analysis statements are written once in SQLAlchemy Core; what one engine spells
differently from another lives here, as a small construct with a default rendering and
per-dialect rules. Another engine adds its rule in its own module
(``@compiles(DayBucket, "spark")``) without touching the statements.

* :class:`DayBucket` - the UTC day of an epoch-microsecond time, ``floor(us / 86_400_000_000)``
  as an integer. SQLite and PostgreSQL divide integers exactly with ``/``; DuckDB's
  ``/`` is a double division, which SQLAlchemy's DuckDB dialect already wraps in ``FLOOR``;
  Spark-family dialects render ``//`` as ``/`` (a double), which would give every unit its
  own "day", so each engine states its integer division explicitly. The result is a BIGINT
  on every engine.
* :class:`ToDouble` - a cast to the engine's double-precision type, so every engine sums
  the same IEEE doubles (an untyped ``1.0`` is NUMERIC on PostgreSQL: exact but slow).
* :class:`EpochMicros` - a source's time column as BIGINT epoch microseconds: native
  ``TIMESTAMP`` / ``TIMESTAMP WITH TIME ZONE`` (naive values are read as UTC) or epoch
  seconds / milliseconds / microseconds, converted inside the query.
* :class:`NearestRank` - the nearest-rank ``p``-th percentile of one column of a subquery
  (percentile_disc semantics: the smallest value ``v_(r)`` whose rank satisfies
  ``100·r >= p·N``; Hyndman & Fan 1996, definition 1). Default: ``ROW_NUMBER()`` over the
  sorted values (every engine has it); PostgreSQL and DuckDB use their ordered-set aggregate
  ``percentile_disc``, which avoids materialising the ranks.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from sqlalchemy import BigInteger, Double, cast, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.sql.selectable import Subquery

from abkit.errors import ConfigError
from abkit.timeutil import MICROS_PER_DAY

TimeEncoding = Literal["us", "ms", "s", "timestamp"]
TIME_ENCODINGS: tuple[TimeEncoding, ...] = get_args(TimeEncoding)
_EPOCH_FACTOR = {"us": 1, "ms": 1_000, "s": 1_000_000}


class DayBucket(FunctionElement[int]):
    """``floor(us / 86_400_000_000)``: the UTC day number of an epoch-microsecond time."""

    type = BigInteger()
    inherit_cache = True
    name = "abkit_day_bucket"


@compiles(DayBucket)
def _day_default(element: DayBucket, compiler: SQLCompiler, **kw: object) -> str:
    # SQLAlchemy renders integer // as each dialect's integer division (``/`` on SQLite and
    # PostgreSQL, ``FLOOR(a / b)`` on DuckDB): the rendering every stored day was computed with
    (us,) = element.clauses
    return compiler.process(us // literal(MICROS_PER_DAY, BigInteger()), **kw)


@compiles(DayBucket, "duckdb")
def _day_duckdb(element: DayBucket, compiler: SQLCompiler, **kw: object) -> str:
    # DuckDB's FLOOR of a double division returns a double: cast the day back to an integer
    return f"CAST({_day_default(element, compiler, **kw)} AS BIGINT)"


def day_bucket(us: Any) -> DayBucket:
    return DayBucket(us)


class ToDouble(FunctionElement[float]):
    """``CAST(x AS <double>)`` in the engine's double-precision type."""

    type = Double()
    inherit_cache = True
    name = "abkit_to_double"


@compiles(ToDouble)
def _double_default(element: ToDouble, compiler: SQLCompiler, **kw: object) -> str:
    (value,) = element.clauses
    return compiler.process(cast(value, Double()), **kw)


def to_double(value: Any) -> ToDouble:
    return ToDouble(value)


class EpochMicros(FunctionElement[int]):
    """A time column as BIGINT epoch microseconds (``encoding`` says what it holds)."""

    type = BigInteger()
    inherit_cache = False  # the encoding is not a clause: never share a cached rendering
    name = "abkit_epoch_us"

    def __init__(self, value: Any, encoding: TimeEncoding) -> None:
        if encoding not in TIME_ENCODINGS:
            raise ConfigError(
                f"unknown time encoding {encoding!r}; choose one of {', '.join(TIME_ENCODINGS)}",
                field="timestamp_encoding",
            )
        self.encoding = encoding
        super().__init__(value)


@compiles(EpochMicros)
def _epoch_default(element: EpochMicros, compiler: SQLCompiler, **kw: object) -> str:
    (value,) = element.clauses
    if element.encoding == "us":
        return compiler.process(cast(value, BigInteger()), **kw)
    if element.encoding != "timestamp":
        factor = literal(_EPOCH_FACTOR[element.encoding], BigInteger())
        # whole units multiply exactly; fractional seconds are rounded to the microsecond
        return compiler.process(cast(func.round(value * factor), BigInteger()), **kw)
    # EXTRACT(EPOCH ...) reads TIMESTAMP as UTC and TIMESTAMPTZ at its instant (SQL standard,
    # PostgreSQL); the numeric result keeps the microseconds
    inner = compiler.process(value, **kw)
    return f"CAST(round(EXTRACT(EPOCH FROM {inner}) * 1000000) AS BIGINT)"


@compiles(EpochMicros, "duckdb")
def _epoch_duckdb(element: EpochMicros, compiler: SQLCompiler, **kw: object) -> str:
    if element.encoding != "timestamp":
        return _epoch_default(element, compiler, **kw)
    (value,) = element.clauses
    return f"epoch_us({compiler.process(value, **kw)})"


@compiles(EpochMicros, "sqlite")
def _epoch_sqlite(element: EpochMicros, compiler: SQLCompiler, **kw: object) -> str:
    if element.encoding != "timestamp":
        return _epoch_default(element, compiler, **kw)
    (value,) = element.clauses
    inner = compiler.process(value, **kw)
    # SQLite keeps times as ISO-8601 text; its date functions apply a "+HH:MM" offset and
    # resolve milliseconds ('%f' is SS.SSS), which is the precision this engine offers
    return (
        f"(CAST(strftime('%s', {inner}) AS INTEGER) * 1000000"
        f" + CAST(substr(strftime('%f', {inner}), 4) AS INTEGER) * 1000)"
    )


def epoch_micros(value: ColumnElement[Any], encoding: TimeEncoding) -> ColumnElement[Any]:
    """``value`` as epoch microseconds; a column already in microseconds is used as is."""
    if encoding == "us":
        return value
    return EpochMicros(value, encoding)


class NearestRank(ColumnElement[float]):
    """Scalar subquery: the nearest-rank ``percent``-th percentile of ``values.c[column]``.

    ``NULL`` when the subquery has no row (nothing to take a percentile of).
    """

    inherit_cache = False
    type = Double()

    def __init__(self, values: Subquery, column: str, percent: float) -> None:
        if not 0 < percent < 100:
            raise ConfigError(f"a percentile must be in (0, 100), got {percent!r}")
        self.values = values
        self.column = column
        self.percent = float(percent)


@compiles(NearestRank)
def _rank_default(element: NearestRank, compiler: SQLCompiler, **kw: object) -> str:
    v = element.values.c[element.column]
    ranked = select(
        v.label("v"),
        func.row_number().over(order_by=v).label("rn"),
        func.count().over().label("cnt"),
    ).subquery("abkit_ranked")
    # rn·100 >= p·N in doubles, as percentile_disc compares cume_dist with p / 100
    chosen = select(func.min(ranked.c.v)).where(
        ranked.c.rn * 100 >= cast(ranked.c.cnt, Double()) * literal(element.percent, Double())
    )
    return compiler.process(chosen.scalar_subquery(), **kw)


def _rank_ordered_set(element: NearestRank, compiler: SQLCompiler, **kw: object) -> str:
    v = element.values.c[element.column]
    chosen = select(
        func.percentile_disc(literal(element.percent / 100.0, Double())).within_group(v)
    ).select_from(element.values)
    return compiler.process(chosen.scalar_subquery(), **kw)


compiles(NearestRank, "postgresql")(_rank_ordered_set)
compiles(NearestRank, "duckdb")(_rank_ordered_set)


def nearest_rank(values: Subquery, column: str, percent: float) -> NearestRank:
    return NearestRank(values, column, percent)
