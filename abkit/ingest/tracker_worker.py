"""The storing half of ``Tracker(worker="process")``: a child process that owns the store.

Why a process. CPython runs one thread's bytecode at a time. A tracker thread that
validates, hashes and inserts rows holds the interpreter lock for up to its switch interval
(5 ms) at a time, and longer inside C calls, so a request thread calling ``assign`` with the
tracker as its exposure hook waits for it: a p99.9 of milliseconds while the tracker
flushes. In a child process the ingest runs on another core under its own lock; the
service's side only turns each record into a tuple and writes small slices of them to a
pipe, releasing the lock at every write.

The child is started with ``python -m abkit.ingest.tracker_worker`` (not ``multiprocessing``,
whose ``spawn`` re-imports the service's main module) and talks over two pipes with
:class:`multiprocessing.connection.Connection` framing (pickled tuples):

* parent to child: ``("experiments", [Experiment.to_dict()])``, ``("exposures", [tuple])``
  (:func:`exposure_tuple`), ``("events", [row dict])``, ``("flush", token)``,
  ``("close", token)``;
* child to parent: ``("report", accepted, duplicates, quarantined, by_reason)`` after each
  ingest, ``("error", text)`` when an ingest failed (its rows are kept and retried),
  ``("dropped", n)`` when rows kept for a retry exceed the bound, ``("done", token)``.

The child ingests when ``flush_every`` rows wait or ``flush_interval`` seconds passed, through
:func:`abkit.ingest.ingestor.ingest` exactly as the thread does, and exits at ``close`` or when
the parent's end of the pipe closes (the service died): what it holds is ingested first.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from abkit.assignment.config import Experiment
from abkit.timeutil import from_us

# (event_id, experiment, unit_id, variant, timestamp_us, attributes or None)
ExposureTuple = tuple[str, str, str, str, int, dict[str, Any] | None]


def exposure_tuple(record: Any) -> ExposureTuple:
    """The compact form of an :class:`~abkit.assignment.exposure.ExposureRecord` sent to the
    child (cheap to build and to pickle: it is built on the service's side)."""
    attributes = record.attributes
    return (
        record.event_id,
        record.experiment,
        record.unit_id,
        record.variant,
        record.timestamp_us,
        dict(attributes) if attributes else None,
    )


def _exposure_row(item: ExposureTuple | dict[str, Any]) -> dict[str, Any]:
    if isinstance(item, dict):  # a record's to_dict() given to Tracker.expose
        return item
    event_id, experiment, unit_id, variant, ts_us, attributes = item
    return {
        "event_id": event_id,
        "experiment": experiment,
        "unit_id": unit_id,
        "variant": variant,
        "timestamp": from_us(ts_us).isoformat(),
        "attributes": attributes or {},
    }


class _Pending:
    """Rows waiting in the child, bounded: a store that stays down costs counted drops,
    not unbounded memory."""

    def __init__(self, bound: int, send: Callable[[tuple[Any, ...]], None]) -> None:
        self.bound = bound
        self.send = send
        self.exposures: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self.exposures) + len(self.events)

    def add(self, rows: list[dict[str, Any]], kind: str) -> None:
        target = self.exposures if kind == "exposures" else self.events
        target.extend(rows)
        over = len(target) - self.bound
        if over > 0:
            del target[:over]  # the oldest go first; counted in the parent's stats
            self.send(("dropped", over))


def serve(
    inbox: Connection,
    outbox: Connection,
    db: str,
    source_name: str,
    flush_every: int,
    **options: Any,
) -> None:
    """The child's loop (module docstring). ``options``: ``flush_interval`` (seconds),
    ``max_queue`` (rows kept per kind while the store is unreachable)."""
    from abkit.ingest.ingestor import ingest
    from abkit.store.store import open_store

    flush_interval = float(options.get("flush_interval", 1.0))
    pending = _Pending(int(options.get("max_queue", 100_000)), outbox.send)
    store = open_store(db)

    def flush() -> None:
        for kind, rows, name in (
            ("exposures", pending.exposures, f"{source_name}:exposures"),
            ("events", pending.events, source_name),
        ):
            if not rows:
                continue
            try:
                report = ingest(list(rows), db=store, kind=kind, source_name=name)
            except Exception as exc:  # the store is down: keep the rows, say so, retry later
                outbox.send(("error", " ".join(str(exc).split())[:500]))
                continue
            rows.clear()
            outbox.send(
                (
                    "report",
                    report.accepted,
                    report.duplicates,
                    report.quarantined,
                    dict(report.by_reason),
                )
            )

    last = time.monotonic()
    try:
        while True:
            message: tuple[Any, ...] | None = None
            if inbox.poll(max(0.0, flush_interval - (time.monotonic() - last))):
                try:
                    message = inbox.recv()
                except EOFError:  # the service is gone: store what we hold, then stop
                    break
            if message is not None:
                kind = message[0]
                if kind == "exposures":
                    pending.add([_exposure_row(item) for item in message[1]], "exposures")
                elif kind == "events":
                    pending.add(list(message[1]), "events")
                elif kind == "experiments":
                    store.register_experiments([Experiment.from_dict(d) for d in message[1]])
                elif kind in ("flush", "close"):
                    flush()
                    last = time.monotonic()
                    outbox.send(("done", message[1]))
                    if kind == "close":
                        return
            if len(pending) >= flush_every or time.monotonic() - last >= flush_interval:
                flush()
                last = time.monotonic()
        flush()
    finally:
        store.close()


def main(argv: list[str]) -> int:
    """``python -m abkit.ingest.tracker_worker INBOX_FD OUTBOX_FD CONFIG_JSON``."""
    inbox_fd, outbox_fd, config = int(argv[0]), int(argv[1]), json.loads(argv[2])
    if hasattr(os, "nice"):
        # Background work: when cores are short, the service's request threads go first.
        os.nice(10)
    inbox = Connection(inbox_fd, writable=False)
    outbox = Connection(outbox_fd, readable=False)
    serve(inbox, outbox, **config)
    return 0


if __name__ == "__main__":  # pragma: no cover - run as the child process
    sys.exit(main(sys.argv[1:]))
