"""``Tracker``: record events and exposures from a running service, stored in the background.

>>> registry = LiveRegistry("experiments.toml")                             # doctest: +SKIP
>>> tracker = Tracker(db="sqlite:///abkit.db", experiments=registry)        # doctest: +SKIP
>>> add_exposure_hook(tracker.expose)                                       # doctest: +SKIP
>>> tracker.track("user-1", "purchase", 12.5, currency="EUR", plan="pro")   # doctest: +SKIP
>>> tracker.close()                                                         # doctest: +SKIP

``track`` and ``expose`` only append to a bounded in-memory queue (a ``deque`` append: no
lock, no I/O), so an exposure hook never makes ``assign`` wait on a database. A daemon
thread ingests the queue every ``flush_interval`` seconds, or as soon as ``flush_every``
rows wait, through exactly the same validation, idempotence and accounting as a file
(:func:`abkit.ingest.ingestor.ingest`), one batch per kind per flush. ``flush()`` ingests
now; ``close()`` (also run at interpreter exit, and by ``with``) stops the thread and
ingests what is left.

Nothing is lost silently:

* **Back-pressure.** When ``max_queue`` rows of a kind wait (the database is down or
  slower than the service), new rows are dropped and counted (:attr:`TrackerStats.dropped`);
  the first drop, then one per minute, is logged as a warning on ``abkit.ingest.tracker``.
  A flush that fails puts its rows back (as far as the bound allows) and retries.
* **Experiments.** Exposures of an experiment the store does not know are quarantined
  (``unknown_experiment``). Before storing exposures, the tracker registers the
  experiments it is given (``experiments=``: a registry, a ``LiveRegistry``, whose new
  versions it registers as they arrive, or any iterable of ``Experiment``) and, for any
  other key, the experiment that ``assign`` served in this process
  (:func:`abkit.assignment.exposure.served_experiment`), so the service path needs no
  separate registration step. It warns once per experiment it can neither find in the
  store nor register.
* **Quarantine.** Every quarantined row is counted (:attr:`TrackerStats.quarantined`, by
  reason) and logged as a warning (the first, then at most one a minute, and a summary
  at close); the rows themselves are in ``abkit quarantine`` as for any ingest.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select

from abkit.assignment.config import Experiment
from abkit.assignment.exposure import served_experiment
from abkit.ingest.ingestor import IngestReport, ingest
from abkit.store.store import Store, open_store

LOGGER_NAME = __name__
_WARN_EVERY = 60.0  # seconds between repeated warnings of one kind


@dataclass(frozen=True)
class TrackerStats:
    """Totals since the tracker started (``Tracker.stats()``)."""

    queued: int  # rows waiting now
    accepted: int
    duplicates: int
    quarantined: int
    dropped: int  # refused because the queue was full
    flushes: int
    flush_errors: int
    by_reason: Mapping[str, int] = field(default_factory=dict)


class Tracker:
    """Queues ``track``/``expose`` calls and ingests them on a background thread."""

    def __init__(
        self,
        db: str | Store | None = None,
        flush_every: int = 1000,
        *,
        source_name: str = "tracker",
        experiments: Mapping[str, Experiment] | Iterable[Experiment] | None = None,
        max_queue: int = 100_000,
        flush_interval: float = 1.0,
        background: bool = True,
    ) -> None:
        if flush_every < 1:
            raise ValueError("flush_every must be at least 1")
        if max_queue < flush_every:
            raise ValueError("max_queue must be at least flush_every")
        if not flush_interval > 0:
            raise ValueError("flush_interval must be a positive number of seconds")
        self._owns_store = not isinstance(db, Store)
        self.store = open_store(db)
        self.flush_every = flush_every
        self.max_queue = max_queue
        self.flush_interval = float(flush_interval)
        self.source_name = source_name
        self._experiments = experiments
        self._events: deque[dict[str, Any]] = deque()
        self._exposures: deque[Any] = deque()
        self._flush_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._wake = threading.Event()
        #: The last ingest reports (at most 1,000; :meth:`stats` has the totals).
        self.reports: deque[IngestReport] = deque(maxlen=1000)
        self._totals = {"accepted": 0, "duplicates": 0, "quarantined": 0}
        self._by_reason: dict[str, int] = {}
        self._dropped = 0
        self._flushes = 0
        self._flush_errors = 0
        self._registered: set[str] = set()
        self._registered_version: object = None
        self._unknown_warned: set[str] = set()
        self._last_warning: dict[str, float] = {}
        self._closed = False
        self._thread: threading.Thread | None = None
        self._register_given_experiments()
        if background:
            self._thread = threading.Thread(
                target=self._run, name=f"abkit-tracker:{source_name}", daemon=True
            )
            self._thread.start()
        atexit.register(self.close)

    # -- the request path: append only ------------------------------------------------
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
        self._enqueue(self._events, row)

    def expose(self, record: Any) -> None:
        """Record an exposure (an ``ExposureRecord`` or its ``to_dict()``): an exposure hook.
        The record is turned into a row on the background thread."""
        self._enqueue(self._exposures, record)

    __call__ = expose

    def _enqueue(self, queue: deque[Any], row: object) -> None:
        if len(queue) >= self.max_queue or self._closed:
            self._drop()
            return
        queue.append(row)
        if len(queue) >= self.flush_every and not self._wake.is_set():
            self._wake.set()

    def _drop(self) -> None:
        with self._count_lock:
            self._dropped += 1
            dropped = self._dropped
        self._warn(
            "dropped",
            "abkit Tracker queue full (%d rows) or closed: %d rows dropped so far; the store is "
            "down or slower than the service (raise max_queue or flush more often)",
            self.max_queue,
            dropped,
        )

    # -- the background thread ----------------------------------------------------------
    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            if self._closed:
                return
            self._flush_safely()

    def _flush_safely(self) -> list[IngestReport]:
        try:
            return self.flush()
        except Exception as exc:  # the thread must survive a database outage
            with self._count_lock:
                self._flush_errors += 1
            self._warn("flush", "abkit Tracker flush failed (will retry): %s", exc)
            return []

    def flush(self) -> list[IngestReport]:
        """Ingest everything queued now; returns the reports of this flush."""
        with self._flush_lock:
            reports = []
            exposures = _drain(self._exposures)
            if exposures:
                rows = [r if isinstance(r, Mapping) else r.to_dict() for r in exposures]
                try:
                    self._resolve_experiments({str(r.get("experiment")) for r in rows})
                    reports.append(
                        ingest(
                            rows,
                            db=self.store,
                            kind="exposures",
                            source_name=f"{self.source_name}:exposures",
                        )
                    )
                except Exception:
                    self._requeue(self._exposures, exposures)
                    raise
            events = _drain(self._events)
            if events:
                try:
                    reports.append(
                        ingest(events, db=self.store, kind="events", source_name=self.source_name)
                    )
                except Exception:
                    self._requeue(self._events, events)
                    raise
            for report in reports:
                self._account(report)
            return reports

    def _requeue(self, queue: deque[Any], rows: list[Any]) -> None:
        room = max(0, self.max_queue - len(queue))
        queue.extendleft(reversed(rows[:room]))
        lost = len(rows) - min(room, len(rows))
        if lost:
            with self._count_lock:
                self._dropped += lost

    def _account(self, report: IngestReport) -> None:
        self.reports.append(report)
        with self._count_lock:
            self._flushes += 1
            self._totals["accepted"] += report.accepted
            self._totals["duplicates"] += report.duplicates
            self._totals["quarantined"] += report.quarantined
            for reason, count in report.by_reason.items():
                self._by_reason[reason] = self._by_reason.get(reason, 0) + count
            total = self._totals["quarantined"]
        if report.quarantined:
            reasons = ", ".join(f"{k}: {v}" for k, v in sorted(report.by_reason.items()))
            self._warn(
                "quarantine",
                "abkit Tracker: %d rows quarantined in this flush (%s); %d so far; "
                "see `abkit quarantine`",
                report.quarantined,
                reasons,
                total,
            )

    # -- experiments ------------------------------------------------------------------
    def _given(self) -> tuple[object, dict[str, Experiment]]:
        """(version marker, experiments by key) of the ``experiments`` argument now."""
        source = self._experiments
        if source is None:
            return None, {}
        version = getattr(source, "version", None)  # a LiveRegistry's current version
        if isinstance(source, Mapping):
            return version, {str(k): v for k, v in source.items()}
        items: Iterable[Experiment] = source
        return version, {e.key: e for e in items}

    def _register_given_experiments(self) -> None:
        version, given = self._given()
        if given:
            self.store.register_experiments(list(given.values()))
            self._registered = set(given)
        self._registered_version = version

    def _resolve_experiments(self, keys: set[str]) -> None:
        """Make sure the store knows ``keys`` before their exposures are ingested."""
        version, given = self._given()
        if version is not None and version is not self._registered_version:
            # a LiveRegistry swapped in a new version: store what services now serve
            self._register_given_experiments()
        missing = keys - self._registered
        if not missing:
            return
        table = self.store.tables.experiments
        with self.store.engine.connect() as conn:
            known = {
                str(k) for (k,) in conn.execute(select(table.c.key).where(table.c.key.in_(missing)))
            }
        self._registered |= known
        # given experiments first, else the version this process serves (assign's hook)
        to_register = [
            exp
            for k in sorted(missing - known)
            if (exp := given.get(k) or served_experiment(k)) is not None
        ]
        if to_register:
            self.store.register_experiments(to_register)
            self._registered |= {e.key for e in to_register}
        for key in sorted(missing - self._registered - self._unknown_warned):
            self._unknown_warned.add(key)
            logging.getLogger(LOGGER_NAME).warning(
                "abkit Tracker: experiment %r is not registered in the store, so its exposures "
                "are quarantined (unknown_experiment); pass experiments=... to Tracker or "
                "register it (abkit ingest --experiments FILE)",
                key,
            )

    # -- reporting and shutdown ---------------------------------------------------------
    def stats(self) -> TrackerStats:
        with self._count_lock:
            return TrackerStats(
                queued=self.pending,
                accepted=self._totals["accepted"],
                duplicates=self._totals["duplicates"],
                quarantined=self._totals["quarantined"],
                dropped=self._dropped,
                flushes=self._flushes,
                flush_errors=self._flush_errors,
                by_reason=dict(self._by_reason),
            )

    @property
    def pending(self) -> int:
        return len(self._events) + len(self._exposures)

    @property
    def dropped(self) -> int:
        return self._dropped

    def _warn(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        last = self._last_warning.get(kind)
        if last is not None and now - last < _WARN_EVERY:
            return
        self._last_warning[kind] = now
        logging.getLogger(LOGGER_NAME).warning(message, *args)

    def close(self) -> None:
        """Stop the thread, ingest what is queued, release the store (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        atexit.unregister(self.close)
        try:
            self.flush()
        except Exception as exc:
            self._warn("close", "abkit Tracker: final flush failed: %s", exc)
            with self._count_lock:
                self._dropped += self.pending
            self._events.clear()
            self._exposures.clear()
        finally:
            stats = self.stats()
            if stats.dropped or stats.quarantined:
                logging.getLogger(LOGGER_NAME).warning(
                    "abkit Tracker closed: %d rows dropped (queue full or store unreachable), "
                    "%d quarantined (%s)",
                    stats.dropped,
                    stats.quarantined,
                    ", ".join(f"{k}: {v}" for k, v in sorted(stats.by_reason.items())) or "none",
                )
            if self._owns_store:
                self.store.close()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _drain(queue: deque[Any]) -> list[Any]:
    """Pop what the queue holds now (appends racing with this stay for the next flush)."""
    popleft = queue.popleft
    return [popleft() for _ in range(len(queue))]
