"""Where a report is written, and how: checked destinations and atomic, link-proof writes.

Two promises (issue 13):

* **No planted link is followed.** :func:`write_atomic` creates a *new*, uniquely named
  temporary file in the destination folder (``tempfile.mkstemp``: ``O_CREAT | O_EXCL``, so
  an existing name, a symbolic link included, is never opened), writes and flushes it,
  then renames it over the destination with :func:`os.replace`. A rename replaces a link
  at the destination itself; it never writes through it. Readers see the old file or the
  new one, never half of one.
* **Nothing precious is overwritten.** :func:`check_destination` refuses the store itself
  (whatever ``--force`` says) and, without ``force``, any existing file whose content is
  not the kind being written (an HTML report, or a notebook for ``--save-notebook``), and
  anything that is not a regular file.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from pathlib import Path

from abkit.errors import ConfigError

__all__ = ["check_destination", "database_file", "looks_like", "write_atomic"]

# Enough of a file's start to recognise an HTML document or a notebook.
_SNIFF_BYTES = 4096


def database_file(url: str | None) -> Path | None:
    """The local file a SQLite or DuckDB URL names; ``None`` for servers and memory."""
    if not url:
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # an unparsable URL is the store's error to give
        return None
    if not parsed.drivername.startswith(("sqlite", "duckdb")):
        return None
    if parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def looks_like(path: Path, kind: str) -> bool:
    """Whether the regular file at ``path`` holds an HTML document (``"html"``) or a
    Jupyter notebook (``"notebook"``): the only files a report may replace unasked."""
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    text = head.decode("utf-8", "replace").lstrip("\ufeff \t\r\n").lower()
    if kind == "html":
        return text.startswith(("<!doctype html", "<html"))
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(document, dict) and "nbformat" in document and "cells" in document


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def check_destination(
    path: Path, *, kind: str, store: Path | None, force: bool, option: str = "out"
) -> Path:
    """``path`` if a report of ``kind`` (``"html"``/``"notebook"``) may be written there.

    Refused with a :class:`~abkit.errors.ConfigError` naming the file and the option:
    the store's own file (never replaced, even with ``force``); a folder, device or pipe;
    an existing file of another kind unless ``force``.
    """
    if store is not None and (path.exists() or path.is_symlink()) and _same_file(path, store):
        raise ConfigError(
            "is the database this report reads; choose another output file",
            file=str(path),
            field=option,
        )
    try:
        info = os.stat(path)  # follows a link: what a reader of the path would see
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise ConfigError(
            f"cannot check the output file: {exc.strerror or exc}", file=str(path), field=option
        ) from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(
            "is a folder; give the report's file name (for example reports/KEY.html)",
            file=str(path),
            field=option,
        )
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(
            "is not a regular file; choose another output file", file=str(path), field=option
        )
    if not force and not looks_like(path, kind):
        what = "an HTML report" if kind == "html" else "a notebook"
        raise ConfigError(
            f"exists and is not {what}; pass --force to replace it, or choose another name",
            file=str(path),
            field=option,
        )
    return path


def _mode() -> int:
    # mkstemp creates 0600; a report gets the permissions a plain open() would give.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: Path, data: bytes, *, option: str = "out") -> None:
    """Write ``data`` to ``path`` through a fresh temporary file and an atomic rename."""
    tmp_name: str | None = None
    try:
        fd, tmp_name = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name[:80]}.", suffix=".tmp"
        )
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, _mode())
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as exc:
        raise ConfigError(
            f"cannot write the report: {exc.strerror or exc}", file=str(path), field=option
        ) from None
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
