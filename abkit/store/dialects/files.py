"""Exclusive locks for stores that are one local file (SQLite, DuckDB): ``flock`` files.

Each lock is a file in a folder beside the store (``abkit.db.locks/``), named by a hash
of the lock's key and locked with ``flock(2)``. The kernel releases the lock when the
holding process dies, whatever its pid, host name or container, so a lock that cannot be
taken means a live holder: this is what makes batch ownership robust to pid reuse. The
lock files are tiny and left in place (deleting a file another process may be waiting
on would let two processes lock two different files).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from abkit.errors import StoreError
from abkit.store.dialects.base import Dialect

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock
    fcntl = None  # type: ignore[assignment]


def lock_folder(database: str) -> Path:
    """Where the lock files of the store file ``database`` live."""
    return Path(os.path.abspath(database) + ".locks")


@contextmanager
def file_lock(folder: Path, key: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the file for ``key`` in ``folder``; wait if taken."""
    if fcntl is None:  # pragma: no cover
        raise StoreError("exclusive locks on a file store need a POSIX system (fcntl.flock)")
    name = hashlib.sha256(key.encode("utf-8")).hexdigest()[:40] + ".lock"
    try:
        folder.mkdir(exist_ok=True)
        handle = os.open(folder / name, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot create the lock file in {folder}: {exc.strerror or exc}") from exc
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # closing the descriptor releases the lock


class FileDialect(Dialect):
    """A store that is one local file: exclusive locks are ``flock`` files beside it."""

    file_based = True
    cross_process_locks = True

    @contextmanager
    def exclusive(self, key: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        database = self.engine.url.database
        if not database or database == ":memory:":  # lives in this process only
            with super().exclusive(key, on_wait):
                yield
            return
        with file_lock(lock_folder(database), key, on_wait):
            yield
