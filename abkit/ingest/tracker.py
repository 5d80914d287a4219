"""``Tracker``: record events and exposures from a running service, flushed in batches.

>>> tracker = Tracker(db="sqlite:///abkit.db", flush_every=1000)   # doctest: +SKIP
>>> tracker.track("user-1", "purchase", 12.5, currency="EUR", plan="pro")  # doctest: +SKIP
>>> add_exposure_hook(tracker.expose)                              # doctest: +SKIP
>>> tracker.close()                                                # doctest: +SKIP

Buffered rows go through exactly the same validation, idempotence and accounting as a
file (:func:`abkit.ingest.ingestor.ingest`), one batch per kind per flush. The tracker is
thread-safe; a flush happens when a buffer reaches ``flush_every`` rows, on ``flush()``,
on ``close()`` and at interpreter exit.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from abkit.ingest.ingestor import IngestReport, ingest
from abkit.store.store import Store, open_store


class Tracker:
    """Buffers ``track``/``expose`` calls and ingests them every ``flush_every`` rows."""

    def __init__(
        self,
        db: str | Store | None = None,
        flush_every: int = 1000,
        *,
        source_name: str = "tracker",
    ) -> None:
        if flush_every < 1:
            raise ValueError("flush_every must be at least 1")
        self._owns_store = not isinstance(db, Store)
        self.store = open_store(db)
        self.flush_every = flush_every
        self.source_name = source_name
        self._events: list[dict[str, Any]] = []
        self._exposures: list[dict[str, Any]] = []
        self._lock = threading.RLock()
        self.reports: list[IngestReport] = []
        self._closed = False
        atexit.register(self.close)

    def track(
        self,
        unit_id: str,
        event_type: str,
        value: float | None = None,
        *,
        timestamp: datetime | None = None,
        event_id: str | None = None,
        currency: str | None = None,
        **properties: Any,
    ) -> None:
        """Record that ``unit_id`` did ``event_type`` (worth ``value``) at ``timestamp`` (now)."""
        row: dict[str, Any] = {
            "unit_id": unit_id,
            "event_type": event_type,
            "value": value,
            "timestamp": timestamp or datetime.now(timezone.utc),
        }
        if event_id is not None:
            row["event_id"] = event_id
        if currency is not None:
            row["currency"] = currency
        if properties:
            row["properties"] = properties
        with self._lock:
            self._events.append(row)
            if len(self._events) >= self.flush_every:
                self._flush_events()

    def expose(self, record: Any) -> None:
        """Record an exposure (an ``ExposureRecord`` or its ``to_dict()``): an exposure hook."""
        row = dict(record) if isinstance(record, Mapping) else record.to_dict()
        with self._lock:
            self._exposures.append(row)
            if len(self._exposures) >= self.flush_every:
                self._flush_exposures()

    __call__ = expose

    def _flush_events(self) -> IngestReport | None:
        rows, self._events = self._events, []
        if not rows:
            return None
        report = ingest(rows, db=self.store, kind="events", source_name=self.source_name)
        self.reports.append(report)
        return report

    def _flush_exposures(self) -> IngestReport | None:
        rows, self._exposures = self._exposures, []
        if not rows:
            return None
        report = ingest(
            rows, db=self.store, kind="exposures", source_name=f"{self.source_name}:exposures"
        )
        self.reports.append(report)
        return report

    def flush(self) -> list[IngestReport]:
        """Ingest everything buffered now; returns the reports of this flush."""
        with self._lock:
            return [r for r in (self._flush_exposures(), self._flush_events()) if r is not None]

    @property
    def pending(self) -> int:
        return len(self._events) + len(self._exposures)

    def close(self) -> None:
        """Flush and release the store (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self.flush()
            self._closed = True
            atexit.unregister(self.close)
            if self._owns_store:
                self.store.close()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
