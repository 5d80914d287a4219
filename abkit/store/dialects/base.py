"""What every store dialect provides, with the portable implementation of each part.

A dialect module subclasses :class:`Dialect`, overrides what its database does better, and
registers the class under SQLAlchemy's dialect name (``abkit.store.dialects.register``).
Anything unregistered (a warehouse reached through its own SQLAlchemy dialect) gets this
base class: correct for one writer, with no cross-process lock.

The parts:

* **connection preparation**: URL checks before connecting, engine options, listeners;
* **schema lock**: serialises concurrent first opens that would race on ``CREATE TABLE``;
* **bulk insert**: insert the rows whose key is new, count them exactly;
* **conflict detection**: among the skipped rows, ids stored with another content hash;
* **exclusive locks**: a lock the owning process actually holds for as long as it lives,
  released by the operating system or the server when it dies (ingest batch ownership).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.engine import URL, Connection, Engine

from abkit.errors import StoreError

# Keys per ``IN (...)`` lookup: well under SQLite's 32766-variable limit.
LOOKUP_SLICE = 5_000
Row = Sequence[Any]


@dataclass(frozen=True)
class InsertResult:
    """Outcome of :meth:`Dialect.insert_new`.

    ``inserted + duplicates + len(conflicts) == rows given``; ``conflicts`` are indexes
    into the rows given whose key already exists with a different content hash, and
    ``stored_hashes`` the content hash stored under each conflicting id (by id).
    """

    inserted: int
    duplicates: int
    conflicts: tuple[int, ...] = ()
    stored_hashes: Mapping[str, str] = field(default_factory=dict)


class Dialect:
    """The portable dialect; subclasses override the parts their database does better."""

    name: ClassVar[str] = "generic"
    # A store that is one local file (SQLite, DuckDB): a missing file is refused when
    # reading, and exclusive locks are files beside it.
    file_based: ClassVar[bool] = False
    # Surrogate keys through explicit sequences (engines without SERIAL/AUTOINCREMENT).
    sequences: ClassVar[bool] = False
    # True when :meth:`exclusive` excludes other processes, not only other threads.
    cross_process_locks: ClassVar[bool] = False

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- connection preparation ---------------------------------------------------------
    @classmethod
    def engine_options(cls, url: URL, *, readonly: bool) -> dict[str, Any]:
        """Keyword arguments for ``create_engine`` (none by default)."""
        return {}

    def prepare_engine(self, *, readonly: bool) -> None:
        """Install connection listeners (pragmas, read-only sessions...)."""

    def lock_schema(self, conn: Connection) -> None:
        """Serialise schema creation and upgrades inside ``conn``'s transaction."""

    # -- bulk writes ----------------------------------------------------------------------
    def insert_new(
        self,
        conn: Connection,
        table: Table,
        columns: Sequence[str],
        rows: Sequence[Row],
        key: Sequence[str] | None,
    ) -> InsertResult:
        """Insert the rows whose ``key`` is not in ``table`` yet; count and classify the rest.

        ``rows`` are tuples in ``columns`` order with distinct keys. ``key=None`` appends
        every row. After a write that skipped rows of a table with ``content_hash``, rows
        whose id is stored with a *different* hash are reported as conflicts.
        """
        if not rows:
            return InsertResult(0, 0)
        names = tuple(columns)
        key_names = tuple(key) if key else ()
        inserted, staged = self._insert(conn, table, names, rows, key_names)
        if not 0 <= inserted <= len(rows):
            raise StoreError(
                f"{table.name}: the driver reported {inserted} new rows out of {len(rows)}"
            )
        conflicts: tuple[int, ...] = ()
        stored: dict[str, str] = {}
        if inserted < len(rows) and key_names == ("event_id",) and "content_hash" in table.c:
            stored = self._conflicts(conn, table, names, rows, staged)
            id_pos = names.index("event_id")
            conflicts = tuple(i for i, row in enumerate(rows) if row[id_pos] in stored)
        return InsertResult(inserted, len(rows) - inserted - len(conflicts), conflicts, stored)

    def append_columns(
        self, conn: Connection, table: Table, data: Mapping[str, Sequence[Any]]
    ) -> int:
        """Append rows given column-wise (name -> equal-length values); returns the count.

        For bulk loads of rows known to be new (simulated data): no key check.
        """
        names = list(data)
        count = len(data[names[0]]) if names else 0
        if count:
            conn.execute(
                insert(table),
                [
                    dict(zip(names, values, strict=True))
                    for values in zip(*data.values(), strict=True)
                ],
            )
        return count

    def _insert(
        self,
        conn: Connection,
        table: Table,
        columns: tuple[str, ...],
        rows: Sequence[Row],
        key: tuple[str, ...],
    ) -> tuple[int, Table | None]:
        """Look up existing keys, insert the rest: correct for a single writer.

        Returns the number of new rows and, for dialects that stage rows, the staging
        table that :meth:`_conflicts` may join against (``None`` here).
        """
        if key:
            positions = [columns.index(k) for k in key]
            existing = self._existing_keys(conn, table, key, [row[positions[0]] for row in rows])
            rows = [row for row in rows if tuple(row[p] for p in positions) not in existing]
        if rows:
            conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])
        return len(rows), None

    def _existing_keys(
        self, conn: Connection, table: Table, key: tuple[str, ...], first_values: list[Any]
    ) -> set[tuple[Any, ...]]:
        found: set[tuple[Any, ...]] = set()
        stmt = select(*[table.c[k] for k in key]).where(
            table.c[key[0]].in_(bindparam("values", expanding=True))
        )
        unique = list(dict.fromkeys(first_values))
        for start in range(0, len(unique), LOOKUP_SLICE):
            part = unique[start : start + LOOKUP_SLICE]
            found.update(tuple(r) for r in conn.execute(stmt, {"values": part}))
        return found

    def _stored_hashes(self, conn: Connection, table: Table, ids: list[Any]) -> dict[str, str]:
        """The content hash stored under each of ``ids`` that exists (id -> hash)."""
        stmt = select(table.c.event_id, table.c.content_hash).where(
            table.c.event_id.in_(bindparam("ids", expanding=True))
        )
        stored: dict[str, str] = {}
        for start in range(0, len(ids), LOOKUP_SLICE):
            part = ids[start : start + LOOKUP_SLICE]
            stored.update({r[0]: r[1] for r in conn.execute(stmt, {"ids": part})})
        return stored

    def _conflicts(
        self,
        conn: Connection,
        table: Table,
        columns: tuple[str, ...],
        rows: Sequence[Row],
        staged: Table | None,
    ) -> dict[str, str]:
        """Ids among ``rows`` stored with another content hash (id -> stored hash)."""
        id_pos = columns.index("event_id")
        hash_pos = columns.index("content_hash")
        stored = self._stored_hashes(conn, table, [row[id_pos] for row in rows])
        return {
            row[id_pos]: stored[row[id_pos]]
            for row in rows
            if stored.get(row[id_pos], row[hash_pos]) != row[hash_pos]
        }

    # -- exclusive locks -----------------------------------------------------------------
    @contextmanager
    def exclusive(self, key: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold the lock named ``key`` for the duration of the block.

        Waits when another holder has it, calling ``on_wait`` once first. This base
        version excludes threads of this process only: stores reached through an
        unregistered dialect have no lock shared between processes.
        """
        with _LOCAL_LOCKS_GUARD:
            lock = _LOCAL_LOCKS.setdefault((id(self.engine), key), threading.Lock())
        if not lock.acquire(blocking=False):
            if on_wait is not None:
                on_wait()
            lock.acquire()
        try:
            yield
        finally:
            lock.release()


_LOCAL_LOCKS: dict[tuple[int, str], threading.Lock] = {}
_LOCAL_LOCKS_GUARD = threading.Lock()


_REGISTRY: dict[str, type[Dialect]] = {}
D = TypeVar("D", bound=type[Dialect])


def register(cls: D) -> D:
    """Class decorator: use ``cls`` for engines whose SQLAlchemy dialect name is ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def registered(name: str) -> type[Dialect]:
    """The dialect registered under ``name``, or the portable base class."""
    return _REGISTRY.get(name, Dialect)
