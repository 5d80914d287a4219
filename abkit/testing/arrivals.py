"""One simulated experiment's rows split into ingest batches, in the orders the
incremental-refresh tests replay: random arrival with resent duplicates, and time-sliced
arrival with late events.

A row is a tuple without its ``batch_id``: exposures ``(event_id, experiment, unit_id,
variant, ts_us, content_hash)``, events ``(event_id, unit_id, event_type, value, ts_us,
content_hash)`` (:data:`abkit.ingest.validate.EXPOSURE_COLUMNS` and :data:`EVENT_COLUMNS`
without ``batch_id``); a batch is ``(exposures, events)``.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
EVENT_COLUMNS = ["event_id", "unit_id", "event_type", "value", "ts_us", "content_hash", "batch_id"]

Row = tuple[Any, ...]
Batch = tuple[list[Row], list[Row]]


def _exposure_id(*parts: Any) -> str:
    # from the content, as a service's exposure ids are: a resent exposure is a duplicate
    return hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()


def simulation_rows(sim: Any) -> tuple[list[Row], list[Row]]:
    """A :func:`~abkit.simulate.simulate_experiment` result's exposures and events as rows."""
    key = sim.experiment.key
    ex = [
        (_exposure_id(key, u, v, int(ts)), key, u, v, int(ts), "0" * 32)
        for u, v, ts in zip(
            sim.exposures.unit_id, sim.exposures.variant, sim.exposures.ts_us, strict=True
        )
    ]
    ev = [
        (f"{key}/{i}", u, t, None if v is None or math.isnan(v) else float(v), int(ts), "0" * 32)
        for i, (u, t, v, ts) in enumerate(
            zip(
                sim.events.unit_id,
                sim.events.event_type,
                sim.events.value,
                sim.events.ts_us,
                strict=True,
            )
        )
    ]
    return ex, ev


def _split(rows: list[Row], cuts: list[int], n: int) -> list[list[Row]]:
    parts: list[list[Row]] = [[] for _ in range(n)]
    for row, cut in zip(rows, cuts, strict=True):
        parts[cut].append(row)
    return parts


def random_batches(
    exposures: list[Row], events: list[Row], seed: int, n: int, duplicates: float
) -> list[Batch]:
    """Rows in random order across ``n`` batches; a share ``duplicates`` of the rows sent
    before each batch resent in it."""
    rng = np.random.default_rng(seed)
    ex = _split(exposures, list(rng.integers(0, n, len(exposures))), n)
    ev = _split(events, list(rng.integers(0, n, len(events))), n)
    for b in range(1, n):
        for parts in (ex, ev):
            earlier = [r for p in parts[:b] for r in p]
            k = int(len(earlier) * duplicates)
            parts[b] += (
                [earlier[i] for i in rng.choice(len(earlier), k, replace=False)] if k else []
            )
    return list(zip(ex, ev, strict=True))


def timely_batches(
    exposures: list[Row], events: list[Row], seed: int, n: int, delay_hours: float
) -> list[Batch]:
    """Rows arriving in time order (batch = time slice), events delayed by up to
    ``delay_hours``: late, but within a lookback larger than the delay."""
    rng = np.random.default_rng(seed)
    times = [r[4] for r in exposures] + [r[4] for r in events]
    lo, hi = min(times), max(times) + 1
    edges = np.linspace(lo, hi + int(delay_hours * HOUR_US) + 1, n + 1)

    def batch(ts: float) -> int:
        return min(int(np.searchsorted(edges, ts, side="right")) - 1, n - 1)

    ex = _split(exposures, [batch(r[4]) for r in exposures], n)
    delays = rng.uniform(0, delay_hours * HOUR_US, len(events))
    ev = _split(events, [batch(r[4] + d) for r, d in zip(events, delays, strict=True)], n)
    return list(zip(ex, ev, strict=True))


def deduplicated(batches: list[Batch]) -> list[Batch]:
    """Each batch without the rows whose event id an earlier batch (or itself) already
    had: what an ingest that deduplicates by event id writes."""
    seen: set[str] = set()
    out: list[Batch] = []
    for exposures, events in batches:
        kept: list[list[Row]] = []
        for rows in (exposures, events):
            fresh = []
            for row in rows:
                if row[0] not in seen:
                    seen.add(row[0])
                    fresh.append(row)
            kept.append(fresh)
        out.append((kept[0], kept[1]))
    return out
