"""A compile-only SQLAlchemy dialect for Spark SQL, and its rules for abkit's constructs.

The analysis statements are SQLAlchemy Core; this dialect turns them into Spark SQL text
with **named parameter markers** (``:name``), which :class:`abkit.engines.spark.SparkRunner`
binds through Spark's own parameter binding (``spark.sql(text, args={...})``). Nothing is
ever formatted into the text from a user value, so a key such as ``a\\'; DROP TABLE x; --``
stays a string literal on the server side (SQLAlchemy's literal rendering would mangle a
backslash: Spark reads ``\\`` in a string literal as an escape).

It is the default compiler with Spark's spellings:

* every identifier quoted with backticks (Spark SQL's delimited identifiers);
* types as Spark names them: ``STRING`` (Spark rejects a bare ``VARCHAR``), ``DOUBLE``,
  ``BIGINT``, ``INT``;
* :class:`~abkit.analysis.constructs.DayBucket`: Spark's ``/`` is a double division, so the
  UTC day is computed with integer arithmetic: ``(us - pmod(us, D)) DIV D`` is
  ``floor(us / D)`` exactly, negative times included (``DIV`` alone truncates toward zero);
* :class:`~abkit.analysis.constructs.NearestRank`: Spark's ordered-set aggregate
  ``percentile_disc(p) WITHIN GROUP (ORDER BY v)`` (Spark >= 3.5), whose definition is the
  nearest rank (the smallest value whose cumulative share reaches ``p``). The portable form,
  ``ROW_NUMBER() OVER (ORDER BY v)`` with no partition, would sort every value in one task;
* :class:`~abkit.analysis.constructs.EpochMicros` of a native timestamp:
  ``unix_micros(x)`` (a ``TIMESTAMP`` is an instant in Spark; ``TIMESTAMP_NTZ`` is read as
  UTC by casting it to an instant in the session's zone, so sessions run with UTC).

The dialect has no DBAPI: it only compiles. ``has_table`` and reflection are not used.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Double, cast, func, literal, select
from sqlalchemy import types as sqltypes
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import GenericTypeCompiler, IdentifierPreparer, SQLCompiler
from sqlalchemy.sql.elements import ColumnElement

from abkit.analysis.constructs import (
    MICROS_PER_DAY,
    DayBucket,
    EpochMicros,
    NearestRank,
)


class SparkIdentifierPreparer(IdentifierPreparer):
    """Backtick-quotes every identifier: Spark's keyword list changes with its ANSI mode
    and version, and a quoted name means the same in all of them."""

    def __init__(
        self,
        dialect: Dialect,
        initial_quote: str = "`",
        final_quote: str | None = None,
        escape_quote: str = "`",
        quote_case_sensitive_collations: bool = True,
        omit_schema: bool = False,
    ) -> None:
        super().__init__(
            dialect,
            initial_quote=initial_quote,
            final_quote=final_quote,
            escape_quote=escape_quote,
            quote_case_sensitive_collations=quote_case_sensitive_collations,
            omit_schema=omit_schema,
        )

    def _requires_quotes(self, value: str) -> bool:
        return True


class SparkTypeCompiler(GenericTypeCompiler):
    def visit_string(self, type_: sqltypes.String, **kw: Any) -> str:
        return "STRING"

    def visit_VARCHAR(self, type_: sqltypes.String, **kw: Any) -> str:
        return "STRING"

    def visit_TEXT(self, type_: sqltypes.Text, **kw: Any) -> str:
        return "STRING"

    def visit_text(self, type_: sqltypes.Text, **kw: Any) -> str:
        return "STRING"

    def visit_unicode(self, type_: sqltypes.Unicode, **kw: Any) -> str:
        return "STRING"

    def visit_double(self, type_: sqltypes.Double[Any], **kw: Any) -> str:
        return "DOUBLE"

    def visit_float(self, type_: sqltypes.Float[Any], **kw: Any) -> str:
        return "DOUBLE"

    def visit_integer(self, type_: sqltypes.Integer, **kw: Any) -> str:
        return "INT"

    def visit_big_integer(self, type_: sqltypes.BigInteger, **kw: Any) -> str:
        return "BIGINT"


class SparkCompiler(SQLCompiler):
    """The default compiler; Spark's own spellings come from the construct rules below.

    Table hints (``select.with_hint(t, "BROADCAST(%(name)s)", "spark")``) become Spark's
    hint comment after ``SELECT``: ``SELECT /*+ BROADCAST(`t`) */ ...``."""

    def get_select_hint_text(self, byfroms: dict[Any, str]) -> str | None:
        return f"/*+ {', '.join(byfroms.values())} */" if byfroms else None


class SparkDialect(DefaultDialect):
    """Compile-only Spark SQL dialect (named ``:param`` markers, backtick identifiers)."""

    name = "spark"
    paramstyle = "named"
    positional = False
    statement_compiler = SparkCompiler
    type_compiler_cls = SparkTypeCompiler
    preparer = SparkIdentifierPreparer
    supports_statement_cache = True
    # Spark's ``/`` is a true division whatever the operand types: never let SQLAlchemy
    # render an integer ``//`` as ``/``
    div_is_floordiv = False
    supports_native_boolean = True
    default_paramstyle = "named"


@compiles(DayBucket, "spark")
def _day_spark(element: DayBucket, compiler: SQLCompiler, **kw: Any) -> str:
    (us,) = element.clauses
    inner = compiler.process(us, **kw)
    return f"(({inner} - pmod({inner}, {MICROS_PER_DAY})) DIV {MICROS_PER_DAY})"


@compiles(NearestRank, "spark")
def _rank_spark(element: NearestRank, compiler: SQLCompiler, **kw: Any) -> str:
    v = element.values.c[element.column]
    fraction: ColumnElement[float] = literal(element.percent / 100.0, Double())
    chosen = select(func.percentile_disc(fraction).within_group(v)).select_from(element.values)
    return compiler.process(chosen.scalar_subquery(), **kw)


@compiles(EpochMicros, "spark")
def _epoch_spark(element: EpochMicros, compiler: SQLCompiler, **kw: Any) -> str:
    (value,) = element.clauses
    if element.encoding == "timestamp":
        return f"unix_micros(CAST({compiler.process(value, **kw)} AS TIMESTAMP))"
    factor = {"us": 1, "ms": 1_000, "s": 1_000_000}[element.encoding]
    scaled = value if factor == 1 else func.round(value * literal(factor, BigInteger()))
    return compiler.process(cast(scaled, BigInteger()), **kw)
