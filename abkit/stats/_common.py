"""Names every statistics module shares: result statuses, alternatives, interval type."""

from __future__ import annotations

ALTERNATIVES: tuple[str, ...] = ("two-sided", "larger", "smaller")
OK = "ok"
NOT_ENOUGH_DATA = "not enough data"

# Smallest positive double: a p-value that underflows even the survival function is
# reported as this (with a note), never as 0.
P_FLOOR = 5e-324

Interval = tuple[float | None, float | None]
