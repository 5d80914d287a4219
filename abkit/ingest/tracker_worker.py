"""The storing half of ``Tracker(worker="process")``: a child process that owns the store.

Why a process. CPython runs one thread's bytecode at a time. A tracker thread that
validates, hashes and inserts rows holds the interpreter lock for up to its switch interval
(5 ms) at a time, and longer inside C calls, so a request thread calling ``assign`` with the
tracker as its exposure hook waits for it: a p99.9 of milliseconds while the tracker
flushes. In a child process the ingest runs on another core under its own lock. The
service's side keeps no queue and runs no feeding thread: its request threads serialise each
row and copy it into a ring of shared memory (:mod:`abkit.ingest.ring`), with no system
call and no lock another thread holds for long.

The child is started with ``python -m abkit.ingest.tracker_worker`` (not ``multiprocessing``,
whose ``spawn`` re-imports the service's main module). It maps the ring (a file descriptor
it inherits) and talks over two pipes with :class:`multiprocessing.connection.Connection`
framing (pickled tuples):

* ring frames, in the order they were put (:func:`encode_exposure`, :func:`encode`):
  an exposure record, ``("exposures", row dict)``, ``("events", row dict)``,
  ``("experiments", [Experiment.to_dict()])``;
* parent to child, on the pipe: ``("flush", token)``, ``("close", token)``. Every frame put
  before the token was sent is taken before the child answers it;
* child to parent: ``("report", accepted, duplicates, quarantined, by_reason)`` after each
  ingest, ``("error", text)`` when an ingest or a registration failed (the rows are kept,
  in order, and retried every ``flush_interval``), ``("done", token)``.

The child takes what the ring holds every ``_POLL_SECONDS``, ingests when ``flush_every``
rows wait or ``flush_interval`` seconds passed, through :func:`abkit.ingest.ingestor.ingest`
exactly as the thread does, and exits at ``close`` or when the parent's end of the pipe
closes (the service died): what it holds is ingested first.
"""

from __future__ import annotations

import json
import marshal
import os
import pickle
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

from abkit.assignment.config import Experiment
from abkit.assignment.exposure import ExposureRecord
from abkit.ingest.ring import SharedRing

# how often the child takes what the ring holds: the longest a row waits in shared memory
_POLL_SECONDS = 0.01
# A ring frame is one tag byte, then the body. An exposure record, the frame of nearly
# every request, is a marshalled tuple (experiment, unit_id, variant, timestamp_us,
# attributes or None): a third of the cost of pickling it. The event id is derived here,
# in the child (Contract 1), not in the request path.
_EXPOSURE_TUPLE = b"x"
_PICKLED = b"p"  # a pickled (kind, item): an exposure row dict, an event row, experiments


def encode_exposure(record: Any) -> bytes:
    """The frame of an :class:`~abkit.assignment.exposure.ExposureRecord`."""
    attributes = record.attributes
    fields = (record.experiment, record.unit_id, record.variant, record.timestamp_us)
    try:
        return _EXPOSURE_TUPLE + marshal.dumps((*fields, dict(attributes) if attributes else None))
    except ValueError:  # marshal takes exact built-in types; an attribute was not one
        plain = {_plain(k): _plain(v) for k, v in (attributes or {}).items()}
        return _EXPOSURE_TUPLE + marshal.dumps((*map(_plain, fields), plain or None))


def _plain(value: Any) -> str | int | float | bool:
    """A scalar attribute as the built-in value it stands for: a member of a ``StrEnum``
    or ``IntEnum`` (or any ``str``, ``int``, ``float`` subclass) as its value, which is
    what the store's JSON holds for it when the thread worker stores it; anything else as
    its ``str``."""
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        return float.__float__(value)
    return str(value)


def encode(kind: str, item: Any) -> bytes:
    """The frame of anything else: ``("exposures", row)``, ``("events", row)``,
    ``("experiments", [Experiment.to_dict()])``."""
    return _PICKLED + pickle.dumps((kind, item), pickle.HIGHEST_PROTOCOL)


def decode(frame: bytes) -> tuple[str, Any]:
    """(kind, item) of a frame; an exposure comes back as its ingestible row."""
    if frame[:1] == _EXPOSURE_TUPLE:
        experiment, unit_id, variant, ts_us, attributes = marshal.loads(frame[1:])
        record = ExposureRecord(experiment, unit_id, variant, ts_us, attributes or {})
        return "exposures", record.to_dict()
    kind, item = pickle.loads(frame[1:])
    return kind, item


class _Pending:
    """Rows taken from the ring and not stored yet: at most ``bound`` of them, because the
    child takes only what fits (so a store that stays down fills the ring, and the
    service counts what it then refuses), never unbounded memory."""

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self.exposures: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self.exposures) + len(self.events)

    @property
    def room(self) -> int:
        return max(0, self.bound - len(self))


def serve(
    inbox: Connection,
    outbox: Connection,
    ring: SharedRing,
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
    pending = _Pending(int(options.get("max_queue", 100_000)))
    store = open_store(db)

    def flush() -> bool:
        """Ingest what is pending; False when the store failed (the rows are kept)."""
        ok = True
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
                ok = False
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
        return ok

    # frames taken from the ring behind a registration the store refused (an outage):
    # they wait, in order, and the registration is retried every flush_interval
    backlog: list[tuple[str, Any]] = []
    retry_registration_at = 0.0

    def register(experiments: list[dict[str, Any]]) -> bool:
        try:
            store.register_experiments([Experiment.from_dict(d) for d in experiments])
        except Exception as exc:
            outbox.send(("error", " ".join(str(exc).split())[:500]))
            return False
        return True

    def take(now: bool = False) -> None:
        """Move what the ring holds into ``pending``, registering experiments in order."""
        nonlocal retry_registration_at
        if backlog and not now and time.monotonic() < retry_registration_at:
            return
        items = backlog[:]
        backlog.clear()
        items += [decode(frame) for frame in ring.take(limit=max(0, pending.room - len(items)))]
        for i, (kind, item) in enumerate(items):
            if kind == "exposures":
                pending.exposures.append(item)
            elif kind == "events":
                pending.events.append(item)
            elif kind == "experiments" and not (flush() and register(item)):
                # rows put before this version are stored under the version they were
                # served with: ingest them first; the rows after it wait for it
                backlog.extend(items[i:])
                retry_registration_at = time.monotonic() + flush_interval
                return

    def store_all() -> None:
        """Store every frame put before now (more than ``pending`` may hold at once; not
        the frames put meanwhile, or a busy service would keep this from returning)."""
        mark = ring.written
        while ring.consumed < mark or backlog:
            if not flush() or not pending.room:  # the store is down: the rest waits
                return
            take(now=True)
            if backlog:  # the store refused a registration: the rest waits
                return
        flush()

    last = retry_at = time.monotonic()
    try:
        while True:
            message: tuple[Any, ...] | None = None
            wait = min(_POLL_SECONDS, max(0.0, flush_interval - (time.monotonic() - last)))
            if inbox.poll(wait):
                try:
                    message = inbox.recv()
                except EOFError:  # the service is gone: store what we hold, then stop
                    break
            take()
            if message is not None and message[0] in ("flush", "close"):
                store_all()
                last = time.monotonic()
                outbox.send(("done", message[1]))
                if message[0] == "close":
                    return
            now = time.monotonic()
            if (len(pending) >= flush_every or now - last >= flush_interval) and now >= retry_at:
                # after a failure, wait flush_interval before trying the store again
                retry_at = now if flush() else now + flush_interval
                last = now
        store_all()
    finally:
        store.close()
        ring.close()


def main(argv: list[str]) -> int:
    """``python -m abkit.ingest.tracker_worker INBOX_FD OUTBOX_FD CONFIG_JSON``."""
    inbox_fd, outbox_fd, config = int(argv[0]), int(argv[1]), json.loads(argv[2])
    ring = SharedRing(config.pop("ring_capacity"), fd=config.pop("ring_fd"))
    if hasattr(os, "nice"):
        # Background work: when cores are short, the service's request threads go first.
        os.nice(10)
    inbox = Connection(inbox_fd, writable=False)
    outbox = Connection(outbox_fd, readable=False)
    serve(inbox, outbox, ring, **config)
    return 0


if __name__ == "__main__":  # pragma: no cover - run as the child process
    sys.exit(main(sys.argv[1:]))
