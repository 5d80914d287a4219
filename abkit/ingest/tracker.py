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

``worker="process"`` stores from a child process instead (:mod:`abkit.ingest.tracker_worker`
says why: a storing thread holds the interpreter lock for milliseconds, which a request
thread calling ``assign`` then waits for). There is then no queue and no feeding thread
in the service: ``expose`` and ``track`` serialise the row and copy it into a ring of shared
memory (:mod:`abkit.ingest.ring`, about ``max_queue`` × 128 bytes), which the child drains;
the child ingests exactly as the thread does and sends its counts back, so
:meth:`Tracker.stats` and the warnings are the same. It needs a database URL (the child
opens its own connection); ``flush()`` then returns no reports (they stay in the child;
the totals are in ``stats()``).

Nothing is lost silently:

* **Back-pressure.** When ``max_queue`` rows of a kind wait (the database is down or
  slower than the service; with ``worker="process"``, when the shared ring is full), new
  rows are dropped and counted (:attr:`TrackerStats.dropped`);
  the first drop, then one per minute, is logged as a warning on ``abkit.ingest.tracker``.
  A flush that fails puts its rows back (as far as the bound allows) and retries.
* **Experiments.** Exposures of an experiment the store does not know are quarantined
  (``unknown_experiment``). Before storing exposures, the tracker registers the
  experiments it is given (``experiments=``: a registry, a ``LiveRegistry``, whose new
  versions it registers as they arrive, or any iterable of ``Experiment``) and, for any
  other key, the experiment that ``assign`` served in this process
  (:func:`abkit.assignment.exposure.served_experiment`), so the service path needs no
  separate registration step. (With ``worker="thread"``, a key the store already knows keeps
  its stored, declared version unless this process serves a variant it lacks.) It warns once per experiment it can neither find in the
  store nor register.
* **Quarantine.** Every quarantined row is counted (:attr:`TrackerStats.quarantined`, by
  reason) and logged as a warning (the first, then at most one a minute, and a summary
  at close); the rows themselves are in ``abkit quarantine`` as for any ingest.
* **Close.** ``close(timeout=30.0)`` waits at most that long; what is not stored by then,
  or cannot be (the store is down), is counted as dropped.
* **Fork.** A tracker made before ``fork`` (a pre-fork server) works in the child: it gets
  its own locks, queues, counts and thread, and with ``worker="process"`` its own storing
  process at its first row; the rows queued before the fork are the parent's.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import logging
import os
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal, get_args

from sqlalchemy import select

from abkit.assignment.config import Experiment
from abkit.assignment.exposure import ExposureRecord, served_experiment
from abkit.ingest.ingestor import IngestReport, ingest
from abkit.ingest.ring import SharedRing
from abkit.ingest.tracker_worker import encode, encode_exposure
from abkit.locations import default_store_url
from abkit.store.store import Store, open_store

LOGGER_NAME = __name__
_WARN_EVERY = 60.0  # seconds between repeated warnings of one kind

# Where the rows are validated and stored: a thread of the service's process, or a child
# process (abkit.ingest.tracker_worker), so the service's threads never wait for it.
TrackerWorker = Literal["thread", "process"]
TRACKER_WORKERS: tuple[TrackerWorker, ...] = get_args(TrackerWorker)
# worker="process": bytes of shared ring per row of max_queue (an exposure's frame takes
# 48-96 bytes with its header, an event with a few properties ~250), and how often the
# service-side thread takes in the child's counts: it holds the interpreter lock only then.
_RING_BYTES_PER_ROW = 128
_WATCH_SECONDS = 0.05
# a forked service whose storing process failed to start tries again after this long
_RELINK_SECONDS = 5.0


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
        worker: TrackerWorker = "thread",
    ) -> None:
        if flush_every < 1:
            raise ValueError("flush_every must be at least 1")
        if max_queue < flush_every:
            raise ValueError("max_queue must be at least flush_every")
        if not flush_interval > 0:
            raise ValueError("flush_interval must be a positive number of seconds")
        if worker not in TRACKER_WORKERS:
            raise ValueError(f"worker must be one of {', '.join(TRACKER_WORKERS)}, got {worker!r}")
        if worker == "process" and (isinstance(db, Store) or not background):
            raise ValueError(
                "worker='process' needs a database URL (the child process opens its own "
                "connection) and background=True"
            )
        self.worker = worker
        self._link: _WorkerLink | None = None
        self._owns_store = not isinstance(db, Store) and worker == "thread"
        self._store: Store | None = open_store(db) if worker == "thread" else None
        self.flush_every = flush_every
        self.max_queue = max_queue
        self.flush_interval = float(flush_interval)
        self.source_name = source_name
        self._experiments = experiments
        # a LiveRegistry (it has versions; a new one is registered before its exposures)
        self._versioned = hasattr(experiments, "version")
        self._events: deque[dict[str, Any]] = deque()
        self._exposures: deque[Any] = deque()
        self._flush_lock = threading.Lock()
        self._put_lock = threading.Lock()
        # worker="process": the ring while rows may go in (None once closed or the child
        # is gone), and how many of its frames were registrations, not rows
        self._ring: SharedRing | None = None
        self._control_frames = 0
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
        # worker="thread": rows a flush has taken from the queues and not stored or put
        # back yet (counted as dropped when close gives up waiting for that flush)
        self._in_flight = 0
        self._abandoned = 0  # of those, counted as dropped by a close that gave up on them
        self._unknown_warned: set[str] = set()
        self._last_warning: dict[str, float] = {}
        self._closed = False
        self._thread: threading.Thread | None = None
        self._background = background
        # worker="process" in a child forked from the service: a storing process of its own
        # is started at its first row (:meth:`_after_fork`)
        self._relink = False
        self._relink_at = 0.0  # time.monotonic() before which no new attempt is made
        if worker == "process":
            url = db if isinstance(db, str) else default_store_url(create=True)
            self._link_options: dict[str, Any] = {
                "url": url,
                "source_name": source_name,
                "flush_every": flush_every,
                "ring_bytes": max_queue * _RING_BYTES_PER_ROW,
                "flush_interval": flush_interval,
                "max_queue": max_queue,
            }
            self._link = _WorkerLink(**self._link_options)
            self._ring = self._link.ring
        self._register_given_experiments()
        self._start_thread()
        atexit.register(self.close)
        _TRACKERS.add(self)

    def _start_thread(self) -> None:
        if self._background:
            self._thread = threading.Thread(
                target=self._watch if self.worker == "process" else self._run,
                name=f"abkit-tracker:{self.source_name}",
                daemon=True,
            )
            self._thread.start()

    def _after_fork(self) -> None:
        """In a child forked from the service (a pre-fork server's worker, such as gunicorn
        with ``--preload``): the thread, the storing process and the rows queued belong to
        the parent, which stores them. The child starts afresh, with its own locks, queues,
        counts and thread, and (``worker="process"``) its own storing process and ring at
        its first row: two services putting into one ring would break its one-producer
        rule, and the parent's thread is not in the child to flush."""
        self._flush_lock = threading.Lock()
        self._put_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._wake = threading.Event()
        self._events = deque()
        self._exposures = deque()
        self.reports = deque(maxlen=1000)
        self._totals = {"accepted": 0, "duplicates": 0, "quarantined": 0}
        self._by_reason = {}
        self._dropped = self._flushes = self._flush_errors = self._control_frames = 0
        self._in_flight = self._abandoned = 0
        self._last_warning = {}
        self._thread = None
        if self._closed:
            return
        if self._store is not None:
            # the parent's pooled connections are the parent's (SQLAlchemy's advice)
            self._store.engine.dispose(close=False)
        if self._link is not None:
            self._link.forget()
            self._link = self._ring = None
            self._relink = True  # the thread starts with the link
            self._registered = set()
            self._registered_version = None
            return
        self._start_thread()

    def _start_link(self) -> SharedRing | None:
        """worker="process", after a fork, under the put lock: this process's storing
        child and ring (None when it cannot start: the row is then dropped and counted)."""
        now = time.monotonic()
        if now < self._relink_at:
            return None
        try:
            link = _WorkerLink(**self._link_options)
        except Exception as exc:  # tried again in a few seconds; the rows meanwhile dropped
            self._relink_at = now + _RELINK_SECONDS
            self._warn("worker", "abkit Tracker: cannot start the storing process: %s", exc)
            return None
        self._relink = False
        self._link, self._ring = link, link.ring
        self._start_thread()
        return link.ring

    @property
    def store(self) -> Store:
        """The store rows go to (``worker="thread"``; the child owns it otherwise)."""
        if self._store is None:
            raise AttributeError("a Tracker with worker='process' has no store in this process")
        return self._store

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
        if self.worker == "thread":
            self._enqueue(self._events, row)
        else:
            self._put(encode("events", row))

    def expose(self, record: Any) -> None:
        """Record an exposure (an ``ExposureRecord`` or its ``to_dict()``): an exposure hook.
        The record is turned into a row off the request path (by the worker)."""
        if self.worker == "thread":
            self._enqueue(self._exposures, record)
            return
        if type(record) is ExposureRecord:  # nearly every call
            key = record.experiment
            frame = encode_exposure(record)
        else:
            row = dict(record)
            key = str(row.get("experiment"))
            frame = encode("exposures", row)
        if (
            key not in self._registered
            or (
                self._versioned and self._experiments.version is not self._registered_version  # type: ignore[union-attr]
            )
        ) and not self._send_experiments({key}):
            # the ring had no room for the registration: the exposure must not overtake it
            # (it would be stored under the old version, or quarantined)
            self._drop()
            return
        self._put(frame)

    __call__ = expose

    def _enqueue(self, queue: deque[Any], row: object) -> None:
        if len(queue) >= self.max_queue or self._closed:
            self._drop()
            return
        queue.append(row)
        if len(queue) >= self.flush_every and not self._wake.is_set():
            self._wake.set()

    def _put(self, frame: bytes, row: bool = True) -> bool:
        """worker="process": copy one frame into the shared ring; a row that cannot go in
        (the ring is full, the tracker closed or the child gone) is dropped and counted."""
        with self._put_lock:
            ring = self._ring
            if ring is None and self._relink and not self._closed:
                ring = self._start_link()
            if ring is not None and ring.put(frame):
                if not row:
                    self._control_frames += 1
                return True
        if row:
            self._drop()
        return False

    def _drop(self) -> None:
        with self._count_lock:
            self._dropped += 1
        self._drop_warning()

    def _drop_warning(self) -> None:
        self._warn(
            "dropped",
            "abkit Tracker queue full (%d rows) or closed: %d rows dropped so far; the store is "
            "down or slower than the service (raise max_queue or flush more often)",
            self.max_queue,
            self._dropped,
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
        """Ingest everything queued now; returns the reports of this flush (none with
        ``worker="process"``: the child ingests, ``stats()`` has the totals)."""
        if self.worker == "process":
            with self._flush_lock:
                if self._link is not None:
                    self._link.sync("flush", self._handle)
            return []
        with self._flush_lock:
            return self._ingest_queued()

    def _ingest_queued(self) -> list[IngestReport]:
        """worker="thread", under the flush lock: ingest both queues."""
        try:
            return self._ingest_drained()
        finally:
            self._in_flight = 0

    def _reclaim(self, stored: int) -> None:
        """Rows that close counted as dropped (it gave up waiting for this flush) and that
        this flush then stored: no longer dropped."""
        with self._count_lock:
            self._in_flight = max(0, self._in_flight - stored)
            back = min(self._abandoned, stored)
            self._abandoned -= back
            self._dropped -= back

    def _ingest_drained(self) -> list[IngestReport]:
        reports = []
        exposures = _drain(self._exposures)
        self._in_flight = len(exposures)
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
                self._reclaim(len(rows))
            except Exception:
                self._requeue(self._exposures, exposures)
                raise
        events = _drain(self._events)
        self._in_flight = len(events)
        if events:
            try:
                reports.append(
                    ingest(events, db=self.store, kind="events", source_name=self.source_name)
                )
                self._reclaim(len(events))
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
        self._count(report.accepted, report.duplicates, report.quarantined, report.by_reason)

    def _count(
        self, accepted: int, duplicates: int, quarantined: int, by_reason: Mapping[str, int]
    ) -> None:
        with self._count_lock:
            self._flushes += 1
            self._totals["accepted"] += accepted
            self._totals["duplicates"] += duplicates
            self._totals["quarantined"] += quarantined
            for reason, count in by_reason.items():
                self._by_reason[reason] = self._by_reason.get(reason, 0) + count
            total = self._totals["quarantined"]
        if quarantined:
            reasons = ", ".join(f"{k}: {v}" for k, v in sorted(by_reason.items()))
            self._warn(
                "quarantine",
                "abkit Tracker: %d rows quarantined in this flush (%s); %d so far; "
                "see `abkit quarantine`",
                quarantined,
                reasons,
                total,
            )

    # -- worker="process": the watching thread ------------------------------------------
    def _watch(self) -> None:
        """Take in the child's counts and notice when it is gone."""
        link = self._link
        assert link is not None
        while not self._closed:
            self._wake.wait(_WATCH_SECONDS)
            if self._closed:
                return
            link.receive(self._handle)
            if link.dead or link.exit_code() is not None:
                link.dead = True
                with self._put_lock:
                    self._ring = None
                self._child_gone(link)
                return

    def _send_experiments(self, keys: set[str]) -> bool:
        """Before a key's first exposures: the experiment as given or as served here.
        False when the ring had no room for it (the next exposure of these keys tries
        again)."""
        given, missing = self._unregistered(keys)
        if not missing:
            return True
        found = [e for k in sorted(missing) if (e := given.get(k) or served_experiment(k))]
        if found and not self._put(encode("experiments", [e.to_dict() for e in found]), row=False):
            return False
        # a key found nowhere here may still be in the store; if not, its rows are
        # quarantined (unknown_experiment) and the quarantine warning says so
        self._registered |= missing
        return True

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "report":
            self._count(*message[1:])
        elif kind == "error":
            with self._count_lock:
                self._flush_errors += 1
            self._warn("flush", "abkit Tracker flush failed (will retry): %s", message[1])

    def _child_gone(self, link: _WorkerLink) -> None:
        self._warn(
            "worker",
            "abkit Tracker: the storing process stopped (exit code %s); rows are dropped and "
            "counted",
            link.exit_code(),
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
            if self.worker == "process":
                # each key before its first exposure of this version (:meth:`_send_
                # experiments`): one small frame per experiment, which a ring with any
                # room takes, instead of one of every experiment, which may never fit
                self._registered = set()
            else:
                self.store.register_experiments(list(given.values()))
                self._registered = set(given)
        self._registered_version = version

    def _unregistered(self, keys: set[str]) -> tuple[dict[str, Experiment], set[str]]:
        """(the experiments given, the ``keys`` not registered yet), after registering a new
        version of the given ones (a LiveRegistry swapped one in: store what services serve)."""
        version = getattr(self._experiments, "version", None)  # a LiveRegistry's, cheap
        if version is not None and version is not self._registered_version:
            self._register_given_experiments()
        missing = keys - self._registered
        # the common case (every key already registered) builds nothing: it runs per slice
        return (self._given()[1] if missing else {}), missing

    def _resolve_experiments(self, keys: set[str]) -> None:
        """Make sure the store knows ``keys`` before their exposures are ingested."""
        given, missing = self._unregistered(keys)
        if not missing:
            return
        table = self.store.tables.experiments
        with self.store.engine.connect() as conn:
            stored = {
                str(k): str(config)
                for k, config in conn.execute(
                    select(table.c.key, table.c.config).where(table.c.key.in_(missing))
                )
            }
        self._registered |= set(stored)
        # given experiments first, else the version this process serves (assign's hook).
        # A key the store knows keeps its stored version (the declared one, with its owner
        # and description) unless this process serves variants it lacks, whose exposures
        # it would quarantine (a newer spec with a variant added)
        to_register = [
            exp
            for k in sorted(missing)
            if (exp := given.get(k) or served_experiment(k)) is not None
            and (k not in stored or _serves_more(exp, stored[k]))
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
        """Rows waiting (with ``worker="process"``: in the ring, with registrations)."""
        if self.worker == "process":
            link = self._link
            return 0 if link is None else max(0, link.ring.frames - link.ring.taken)
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

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop the thread, ingest what is queued, release the store (idempotent).

        Waits at most ``timeout`` seconds (``None``: as long as it takes) for the worker
        to store what is queued: a service's shutdown has a grace period (30 s by default
        on Kubernetes), and a store that is locked or down must not turn it into a kill
        that loses everything. What is not stored by then is counted as dropped and
        logged. (With ``worker="thread"``, the final ingest, once started, can still wait
        for the database's own lock timeout.)"""
        if self._closed:
            return
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        with self._put_lock:  # from here on no request thread touches the ring
            self._closed = True
            self._ring = None
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(left())
        atexit.unregister(self.close)
        try:
            wait = left()
            if not self._flush_lock.acquire(timeout=-1 if wait is None else wait):
                raise TimeoutError(f"a flush was still running after {timeout} s")
            try:
                if self.worker == "thread":
                    self._ingest_queued()
                elif self._link is not None:
                    self._link.sync("close", self._handle, timeout=left())
            finally:
                self._flush_lock.release()
        except Exception as exc:
            self._warn("close", "abkit Tracker: final flush failed: %s", exc)
        finally:
            # whatever the worker could not store (the store down, the deadline passed,
            # the child gone) is counted, never lost silently
            if self.worker == "thread":
                with self._count_lock:  # in step with a flush that is still storing
                    # what is queued is taken here (a row is taken once: by this or by a
                    # flush), so none is both counted and stored
                    taken = len(_drain(self._events)) + len(_drain(self._exposures))
                    self._dropped += taken + self._in_flight
                    # that flush may store its rows after all: then no longer dropped
                    self._abandoned = self._in_flight
            else:
                lost = self._unaccounted()
                with self._count_lock:
                    self._dropped += lost
            self._events.clear()
            self._exposures.clear()
            if self._link is not None:
                self._link.close(timeout=left())
            stats = self.stats()
            if stats.dropped or stats.quarantined:
                logging.getLogger(LOGGER_NAME).warning(
                    "abkit Tracker closed: %d rows dropped (queue full or store unreachable), "
                    "%d quarantined (%s)",
                    stats.dropped,
                    stats.quarantined,
                    ", ".join(f"{k}: {v}" for k, v in sorted(stats.by_reason.items())) or "none",
                )
            if self._owns_store and self._store is not None:
                self._store.close()

    def _unaccounted(self) -> int:
        """Rows neither stored, quarantined, duplicate nor counted as dropped (what a
        failed final flush loses)."""
        if self.worker == "thread":
            return self.pending + self._in_flight
        if self._link is None:  # forked, and no row put since
            return 0
        with self._count_lock:
            told = sum(self._totals.values())
        return max(0, self._link.ring.frames - self._control_frames - told)

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _serves_more(experiment: Experiment, stored_config: str) -> bool:
    """Whether ``experiment`` has a variant that the stored config lacks."""
    try:
        names = {v["name"] for v in json.loads(stored_config)["variants"]}
    except (ValueError, KeyError, TypeError):  # unreadable: the served version is better
        return True
    return not set(experiment.variant_names) <= names


# Trackers of this process, for :meth:`Tracker._after_fork` (weakly: a tracker that is
# collected is simply gone).
_TRACKERS: weakref.WeakSet[Tracker] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for tracker in list(_TRACKERS):
        tracker._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _drain(queue: deque[Any]) -> list[Any]:
    """Pop what the queue holds now (appends racing with this stay for the next flush)."""
    popleft = queue.popleft
    return [popleft() for _ in range(len(queue))]


class _WorkerLink:
    """The child process of ``worker="process"``, the shared ring rows go through and the
    two pipes for control (parent to child: ``flush``/``close`` tokens) and counts (child
    to parent).

    Sends come from ``flush``/``close`` (a lock keeps messages whole); receives from the
    watching thread and from them (another lock). ``send`` returns False once the child is
    gone.
    """

    def __init__(
        self, url: str, source_name: str, flush_every: int, ring_bytes: int, **options: Any
    ) -> None:
        capacity = max(1 << 20, -(-ring_bytes // 4096) * 4096)
        self.ring = SharedRing(capacity)
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        config = {
            "db": url,
            "source_name": source_name,
            "flush_every": flush_every,
            "ring_fd": self.ring.fd,
            "ring_capacity": capacity,
            **options,
        }
        # The child imports abkit the way this process did, installed or from a checkout.
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "abkit.ingest.tracker_worker",
                str(to_child_r),
                str(from_child_w),
                json.dumps(config),
            ],
            pass_fds=(to_child_r, from_child_w, self.ring.fd),
            env=env,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._out = Connection(to_child_w, readable=False)
        self._in = Connection(from_child_r, writable=False)
        self._send_lock = threading.Lock()
        self._receive_lock = threading.Lock()
        self._tokens = itertools.count(1)
        self._done: set[int] = set()
        self.dead = False

    def send(self, message: tuple[Any, ...]) -> bool:
        if self.dead:
            return False
        try:
            with self._send_lock:
                self._out.send(message)
        except (OSError, ValueError):
            self.dead = True
        return not self.dead

    def receive(self, handle: Any, wait: float = 0.0) -> None:
        """Handle every message the child has sent (waiting up to ``wait`` for the first)."""
        with self._receive_lock:
            try:
                ready = self._in.poll(wait)
                while ready:
                    message = self._in.recv()
                    if message[0] == "done":
                        self._done.add(message[1])
                    else:
                        handle(message)
                    ready = self._in.poll()
            except (EOFError, OSError):
                self.dead = True

    def sync(self, what: str, handle: Any, timeout: float | None = None) -> None:
        """Ask the child to ingest what it holds (``flush``; ``close`` also ends it) and
        wait until it has (at most ``timeout`` seconds), handling its reports meanwhile."""
        token = next(self._tokens)
        if not self.send((what, token)):
            raise OSError(f"the storing process stopped (exit code {self.exit_code()})")
        deadline = None if timeout is None else time.monotonic() + timeout
        while token not in self._done:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"the storing process did not finish within {timeout} s")
            self.receive(handle, wait=0.1)
            if self.dead or (token not in self._done and self.process.poll() is not None):
                self.receive(handle)  # what it sent before it ended
                if token in self._done:
                    break
                raise OSError(f"the storing process stopped (exit code {self.exit_code()})")

    def exit_code(self) -> int | None:
        return self.process.poll()

    def forget(self) -> None:
        """In a forked child: drop this process's copies of the parent's pipe ends (the
        storing process sees the service end only once no copy of its pipe is open)."""
        self.dead = True
        for conn in (self._out, self._in):
            with contextlib.suppress(OSError):
                conn.close()

    def close(self, timeout: float | None = 30.0) -> None:
        for conn in (self._out, self._in):
            with contextlib.suppress(OSError):
                conn.close()
        try:
            self.process.wait(timeout=30 if timeout is None else min(30.0, timeout))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.ring.close()
