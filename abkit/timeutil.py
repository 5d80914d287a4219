"""Time in abkit: UTC epoch microseconds, one home for the conversions and constants.

Every stored timestamp is an integer count of microseconds since 1970-01-01T00:00:00Z.
Integer time makes windows (``ts_us - first_us <= window``) and daily buckets
(``ts_us // MICROS_PER_DAY``) the same exact arithmetic in Python, SQLite, PostgreSQL,
DuckDB and warehouses. This module is stdlib-only, so the assignment core may import it.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MICROS_PER_SECOND = 1_000_000
MICROS_PER_HOUR = 3_600 * MICROS_PER_SECOND
MICROS_PER_DAY = 24 * MICROS_PER_HOUR
_ONE_MICROSECOND = timedelta(microseconds=1)


def to_us(moment: datetime) -> int:
    """UTC epoch microseconds of a timezone-aware datetime.

    ``timedelta // timedelta`` is integer arithmetic on days, seconds and microseconds,
    so the result is exact (no float rounding, whatever the year). A naive datetime has
    no single instant and is refused with :class:`ValueError`.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: give a timezone-aware one")
    return (moment - EPOCH) // _ONE_MICROSECOND


def from_us(micros: int) -> datetime:
    """Inverse of :func:`to_us`: the UTC datetime ``micros`` after the epoch."""
    return EPOCH + timedelta(microseconds=int(micros))


def now_us() -> int:
    """The wall clock now, as UTC epoch microseconds."""
    return time.time_ns() // 1_000


__all__ = [
    "EPOCH",
    "MICROS_PER_DAY",
    "MICROS_PER_HOUR",
    "MICROS_PER_SECOND",
    "from_us",
    "now_us",
    "to_us",
]
