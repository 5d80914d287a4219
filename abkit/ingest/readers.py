"""Streaming readers: every source yields chunks of raw rows with their row numbers.

A reader never holds more than one chunk of rows, so memory stays flat whatever the
file size. Row numbers are what a person would look for: the physical line where the
record starts for CSV and JSON Lines (the CSV header is line 1; blank lines are skipped
and not counted as rows), and the 1-based record position for Parquet, DataFrames and
Python iterables. Columns whose name starts with ``_abkit_`` (added by
``abkit quarantine --export``) are dropped, so an exported file re-ingests cleanly.

Compressed files (``.gz`` or gzip magic bytes) are verified end to end before the first
row is handed out: a truncated or corrupt gzip stream is reported with its first
incomplete line, and nothing of that file is written (partial rows at a cut are
indistinguishable from real ones, so loading "what was readable" could store a silently
clipped value).

Memory is bounded whatever the input (:class:`ReadLimits`): a line longer than
``max_line_bytes`` (a 1 GB single-line CSV, a gzip bomb of zeros), a field over the csv
module's limit, or more than ``max_columns`` distinct columns or JSON keys is refused
with a :class:`~abkit.errors.DataError` naming the file and line, found by the pre-flight
scan before anything is written; a gzip stream is decompressed in bounded steps.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import json
import os
import sys
import zlib
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, TextIO

from abkit.errors import DataError

EXPORT_PREFIX = "_abkit_"
# The quarantine row an exported row came from: read back so that accepting the fixed
# row marks the quarantine entry resolved.
QUARANTINE_ID_COLUMN = "_abkit_quarantine_id"
_GZIP_MAGIC = b"\x1f\x8b"
_DELIMITERS = (",", "\t", ";", "|")
MAX_LINE_BYTES = 16 * 1024 * 1024  # long JSON cells are legitimate; a 1 GB line is not
MAX_COLUMNS = 4096
# Decompressed bytes per step when verifying gzip: a bomb never expands all at once.
_INFLATE_STEP = 1 << 20
# A field cannot be longer than its line; multi-line quoted fields are bounded by this too.
csv.field_size_limit(MAX_LINE_BYTES)


@dataclass(frozen=True)
class ReadLimits:
    """What one input may hold before it is refused: bytes per line, distinct columns."""

    max_line_bytes: int = MAX_LINE_BYTES
    max_columns: int = MAX_COLUMNS

    def __post_init__(self) -> None:
        if self.max_line_bytes < 1 or self.max_columns < 1:
            raise ValueError(f"read limits must be positive: {self}")


DEFAULT_LIMITS = ReadLimits()


@dataclass
class Chunk:
    """Raw rows (original column names) and where each came from.

    ``malformed`` holds rows that could not even be split into columns (wrong number of
    fields, invalid JSON): ``(row_number, raw_text_or_value, message)``.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    row_numbers: list[int] = field(default_factory=list)
    malformed: list[tuple[int, Any, str]] = field(default_factory=list)
    # The fraction of the source read when this chunk was cut (progress of committed rows).
    fraction: float | None = None
    # ``_abkit_quarantine_id`` of each row, aligned with ``rows`` (empty: no such column).
    origins: list[int | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows) + len(self.malformed)


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def file_digest(path: Path) -> str:
    """SHA-256 of the file's bytes (what makes two runs "the same file")."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_gzip(
    path: Path, display: str, text: bool = False, limits: ReadLimits = DEFAULT_LIMITS
) -> None:
    """Decompress the whole stream once; raise a located DataError if it is cut or corrupt.

    Every decompressed byte is counted before a cut is detected, so the error names the
    first incomplete line. Output comes in steps of at most 1 MiB, so a gzip bomb costs
    time, not memory. With ``text`` the bytes are also checked as UTF-8 lines no longer
    than ``limits.max_line_bytes`` (see :class:`_TextCheck`).
    """
    checker = _TextCheck(display, limits.max_line_bytes if text else None, utf8=text)
    inflater = zlib.decompressobj(wbits=31)
    try:
        with open(path, "rb") as raw:
            for block in iter(lambda: raw.read(1 << 16), b""):
                pending = block
                while pending:
                    checker.feed(inflater.decompress(pending, _INFLATE_STEP))
                    pending = inflater.unconsumed_tail
                    if inflater.eof:
                        rest = inflater.unused_data + pending
                        if rest[:2] == _GZIP_MAGIC:  # the next member of a multi-member file
                            inflater = zlib.decompressobj(wbits=31)
                            pending = rest
                        elif rest.strip(b"\x00"):
                            raise zlib.error("data after the end of the gzip stream")
                        else:
                            pending = b""
            if not inflater.eof:
                while not inflater.eof and (tail := inflater.flush(_INFLATE_STEP)):
                    checker.feed(tail)
                raise EOFError("the compressed stream ended before the end-of-stream marker")
    except (EOFError, zlib.error) as exc:
        complete = checker.lines
        raise DataError(
            f"the gzip stream is truncated or corrupt: line {complete + 1} is incomplete "
            f"({exc}); nothing from this file was written - re-send the complete file",
            file=display,
            row=complete + 1,
        ) from exc
    except OSError as exc:
        raise DataError(f"cannot read the file ({exc.strerror or exc})", file=display) from exc
    checker.finish()


class _TextCheck:
    """Incremental checks of a text file's bytes that know the line of the first fault.

    * UTF-8 (``utf8``): decoding happens in 64 KiB blocks, so the text reader's own
      UnicodeDecodeError cannot say which line is at fault, and it would only surface
      mid-run after earlier chunks were committed. Checking up front refuses the file
      whole, like a cut gzip.
    * line length (``max_line``): a line longer than this many bytes is refused before
      any reader tries to hold it in memory.
    """

    def __init__(self, display: str, max_line: int | None, *, utf8: bool = True) -> None:
        self.display = display
        self.decoder = codecs.getincrementaldecoder("utf-8")() if utf8 else None
        self.max_line = max_line
        self.lines = 0  # complete lines seen
        self.current = 0  # bytes of the line being read
        self._cr_ended = False  # the last block ended with a CR (maybe half a CRLF)

    def _line_ends(self, block: bytes) -> bytes:
        """``block`` with each line end as ``\n``: the readers split lines on ``\r\n``,
        ``\r`` (old Mac exports) and ``\n`` alike (``newline=""``), and so must the check."""
        if self._cr_ended and block[:1] == b"\n":  # the rest of a CRLF cut between blocks
            block = block[1:]
        self._cr_ended = block[-1:] == b"\r"
        if b"\r" in block:
            block = block.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        return block

    def feed(self, block: bytes, final: bool = False) -> None:
        if self.decoder is not None:
            pending = len(self.decoder.getstate()[0])  # a cut multi-byte character
            try:
                self.decoder.decode(block, final)
            except UnicodeDecodeError as exc:
                before = block[: max(exc.start - pending, 0)]
                ends = before.count(b"\n") + before.count(b"\r") - before.count(b"\r\n")
                line = self.lines + ends + 1
                raise DataError(
                    f"not UTF-8 text ({exc.reason}: byte 0x{exc.object[exc.start]:02x}); "
                    "nothing from this file was written - re-encode the file as UTF-8",
                    file=self.display,
                    row=line,
                ) from None
        block = self._line_ends(block)
        if self.max_line is not None:
            self._check_lengths(block)
        else:
            self.lines += block.count(b"\n")

    def _check_lengths(self, block: bytes) -> None:
        limit = self.max_line
        assert limit is not None
        start = 0
        while True:
            end = block.find(b"\n", start)
            stop = len(block) if end == -1 else end
            self.current += stop - start
            if self.current > limit:
                raise DataError(
                    f"line {self.lines + 1} is longer than {limit:,} bytes; nothing from "
                    "this file was written - split the record or raise the line limit",
                    file=self.display,
                    row=self.lines + 1,
                )
            if end == -1:
                return
            self.lines += 1
            self.current = 0
            start = end + 1
            # Lines shorter than the limit cannot be longer within one block: skip ahead
            # to the last newline when the rest of the block is under the limit.
            if len(block) - start <= limit:
                last = block.rfind(b"\n", start)
                if last != -1:
                    self.lines += block.count(b"\n", start, last + 1)
                    start = last + 1
                self.current = len(block) - start
                return

    def finish(self) -> None:
        self.feed(b"", final=True)


def verify_utf8(path: Path, display: str, limits: ReadLimits = DEFAULT_LIMITS) -> str:
    """Check a plain file is UTF-8 with lines within the limit (raising a DataError with
    the line) and return its SHA-256.

    One pass does all three, so the pre-flight check costs no extra read of the file.
    """
    checker = _TextCheck(display, limits.max_line_bytes)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
            checker.feed(block)
    checker.finish()
    return digest.hexdigest()


# Python 3.10's csv module refuses a NUL byte ("line contains NUL"); 3.11 reads it. While
# parsing, a Unicode noncharacter (reserved for internal use, never in interchanged text)
# stands in for NUL, so validation quarantines such a row on every version alike.
_CSV_REFUSES_NUL = sys.version_info < (3, 11)
_NUL_STANDIN = "\ufdd0"


def _nul_standins(lines: Iterable[str]) -> Iterator[str]:
    for line in lines:
        yield line.replace("\x00", _NUL_STANDIN) if "\x00" in line else line


class Reader(ABC):
    """Base class: ``columns`` (after peeking), ``chunks(size, skip)``, progress."""

    display: str = "records"
    path: Path | None = None
    format: str = "records"
    empty: bool = False

    @abstractmethod
    def columns(self) -> list[str]:
        """Column names, after peeking at the input."""

    def content_hash(self) -> str | None:
        return None

    @abstractmethod
    def chunks(self, size: int, skip: int = 0) -> Generator[Chunk, None, None]:
        """Rows in chunks of ``size``, skipping the first ``skip`` rows (resume)."""

    def fraction_done(self) -> float | None:
        return None

    def sample_rows(self, limit: int = 500) -> list[dict[str, Any]]:
        """The first rows (for column types); re-opens the source, consumes nothing."""
        chunks = self.chunks(limit)
        try:
            first = next(chunks, None)
        finally:
            chunks.close()  # closes the file now, before the real read opens it again
        return first.rows[:limit] if first is not None else []

    def close(self) -> None:  # noqa: B027 - optional hook; most readers hold nothing open
        """Release the underlying file, if any."""


def _origin(value: object) -> int | None:
    """A ``_abkit_quarantine_id`` cell as an id (anything else: no origin)."""
    text = str(value).strip() if value is not None else ""
    return int(text) if text.isascii() and text.isdigit() else None


# what a CSV line holds when every field of it is empty (or blank), whatever the delimiter
_BLANK_LINE = " \t\r\n" + "".join(_DELIMITERS)


def _clean_columns(names: list[str], display: str) -> list[str]:
    cleaned = []
    seen: set[str] = set()
    for position, name in enumerate(names, start=1):
        name = (name or "").strip()
        if not name:
            name = f"column_{position}"
        if name in seen:
            raise DataError(
                f"column {name!r} appears twice in the header", file=display, row=1, field=name
            )
        seen.add(name)
        cleaned.append(name)
    return cleaned


def _bounded_lines(text: TextIO, limits: ReadLimits, display: str) -> Iterator[str]:
    """The lines of ``text``, refusing (DataError with the line) one over the limit.

    ``readline(n)`` never holds more than ``n`` characters, so an endless line costs at
    most the limit in memory. The limit is in bytes; a character is at least one byte,
    so a line within the byte limit always passes.
    """
    limit = limits.max_line_bytes
    number = 0
    while True:
        line = text.readline(limit + 1)
        if not line:
            return
        number += 1
        if len(line) > limit:
            raise DataError(
                f"line {number} is longer than {limit:,} bytes; split the record or raise "
                "the line limit",
                file=display,
                row=number,
            )
        yield line


def _too_many_columns(count: int, limits: ReadLimits, display: str, line: int) -> DataError:
    return DataError(
        f"{count:,} distinct columns, more than the limit of {limits.max_columns:,}; "
        "is this the right file?",
        file=display,
        row=line,
    )


class _FileReader(Reader):
    def __init__(
        self, path: Path, display: str | None = None, limits: ReadLimits = DEFAULT_LIMITS
    ) -> None:
        self.path = path
        self.limits = limits
        self.display = display or str(path)
        if not path.exists():
            raise DataError("no such file", file=self.display)
        if path.is_dir():
            raise DataError("is a directory, not a file", file=self.display)
        try:
            self.size = path.stat().st_size
            self.gzip = self.size >= 2 and _is_gzip(path)
            if self.size < 2:
                open(path, "rb").close()  # an unreadable file fails here, not mid-run
        except OSError as exc:
            raise DataError(
                f"cannot read the file ({exc.strerror or exc})", file=self.display
            ) from exc
        self.empty = self.size == 0
        self._raw: Any = None
        self._hash: str | None = None

    path: Path

    def content_hash(self) -> str:
        if self._hash is None:
            self._hash = file_digest(self.path)
        return self._hash

    def verify(self) -> None:
        """Pre-flight: a cut gzip stream, or (text formats) bytes that are not UTF-8 or a
        line over the limit."""
        text = self.format in {"csv", "jsonl"}
        if self.gzip:
            verify_gzip(self.path, self.display, text=text, limits=self.limits)
        elif text:
            self._hash = verify_utf8(self.path, self.display, self.limits)

    def _open_text(self) -> TextIO:
        self._raw = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        stream: Any = gzip.GzipFile(fileobj=self._raw, mode="rb") if self.gzip else self._raw
        # utf-8-sig drops a byte-order mark; newline="" is what the csv module needs.
        return io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")

    def fraction_done(self) -> float | None:
        raw = self._raw
        if raw is None or not self.size:
            return None
        try:  # the reading thread may close the file at any moment
            return min(1.0, raw.tell() / self.size)
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        if self._raw is not None:
            self._raw.close()


class CsvReader(_FileReader):
    format = "csv"

    def __init__(
        self,
        path: Path,
        display: str | None = None,
        delimiter: str | None = None,
        limits: ReadLimits = DEFAULT_LIMITS,
    ) -> None:
        super().__init__(path, display, limits)
        self.delimiter = delimiter
        self._header: list[str] | None = None

    def _sniff(self, first_line: str) -> str:
        # The candidate that splits the header into the most fields; a header with none
        # of them is a one-column file, read with commas.
        counts = {d: first_line.count(d) for d in _DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] > 0 else ","

    def columns(self) -> list[str]:
        if self._header is None:
            if self.empty:
                self._header = []
                return self._header
            with self._open_text() as text:
                try:
                    # the header is the first line with something besides blanks and
                    # delimiters (a record of empty fields is blank to the reader too)
                    first = next(
                        (
                            line
                            for line in _bounded_lines(text, self.limits, self.display)
                            if line.strip(_BLANK_LINE)
                        ),
                        "",
                    )
                except UnicodeDecodeError as exc:
                    raise DataError(f"not UTF-8 text ({exc})", file=self.display, row=1) from exc
            self.close()
            if not first.strip():
                self.empty = True
                self._header = []
                return self._header
            if self.delimiter is None:
                self.delimiter = self._sniff(first)
            try:
                names = next(csv.reader([first], delimiter=self.delimiter))
            except csv.Error as exc:  # a header field over the csv module's limit
                raise DataError(f"unreadable CSV header ({exc})", file=self.display, row=1) from exc
            if len(names) > self.limits.max_columns:
                raise _too_many_columns(len(names), self.limits, self.display, 1)
            self._header = _clean_columns(names, self.display)
        return self._header

    def chunks(self, size: int, skip: int = 0) -> Generator[Chunk, None, None]:
        header = self.columns()
        if not header:
            return
        keep = [i for i, name in enumerate(header) if not name.startswith(EXPORT_PREFIX)]
        names = [header[i] for i in keep]
        origin_at = header.index(QUARANTINE_ID_COLUMN) if QUARANTINE_ID_COLUMN in header else None
        width = len(header)
        text = self._open_text()
        try:
            bounded = _bounded_lines(text, self.limits, self.display)
            lines = _nul_standins(bounded) if _CSV_REFUSES_NUL else bounded
            reader = csv.reader(lines, delimiter=self.delimiter or ",")
            # the header, after any blank lines (row numbers still count them)
            next(record for record in reader if "".join(record).strip(_BLANK_LINE))
            chunk = Chunk()
            last_line = reader.line_num
            seen = 0
            try:
                for record in reader:
                    line = last_line + 1
                    last_line = reader.line_num
                    if _CSV_REFUSES_NUL:
                        record = [f.replace(_NUL_STANDIN, "\x00") for f in record]
                    if not record or (len(record) == 1 and not record[0].strip() and width > 1):
                        continue  # blank line: not a record
                    seen += 1
                    if seen <= skip:
                        continue
                    if len(record) != width:
                        chunk.malformed.append(
                            (
                                line,
                                self.delimiter.join(record) if self.delimiter else record,
                                f"has {len(record)} fields but the header has {width} "
                                f"(delimiter {self.delimiter!r})",
                            )
                        )
                    elif len(keep) == width:
                        chunk.rows.append(dict(zip(names, record, strict=True)))
                        chunk.row_numbers.append(line)
                    else:
                        chunk.rows.append({names[j]: record[i] for j, i in enumerate(keep)})
                        chunk.row_numbers.append(line)
                        if origin_at is not None:
                            chunk.origins.extend(
                                [None] * (len(chunk.rows) - 1 - len(chunk.origins))
                            )
                            chunk.origins.append(_origin(record[origin_at]))
                    if len(chunk) >= size:
                        chunk.fraction = self.fraction_done()
                        yield chunk
                        chunk = Chunk()
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"not UTF-8 text ({exc})", file=self.display, row=last_line + 1
                ) from exc
            except csv.Error as exc:
                raise DataError(
                    f"unreadable CSV ({exc})", file=self.display, row=last_line + 1
                ) from exc
            if len(chunk):
                yield chunk
        finally:
            text.close()
            self.close()


class JsonLinesReader(_FileReader):
    format = "jsonl"

    def __init__(
        self,
        path: Path,
        display: str | None = None,
        peek_rows: int = 1000,
        limits: ReadLimits = DEFAULT_LIMITS,
    ) -> None:
        super().__init__(path, display, limits)
        self._columns: list[str] | None = None
        self.peek_rows = peek_rows

    def columns(self) -> list[str]:
        # JSON Lines has no header: the union of keys of the first rows stands in for it.
        if self._columns is None:
            names: dict[str, None] = {}
            seen = 0
            if not self.empty:
                with self._open_text() as text:
                    for line, raw_line in enumerate(
                        _bounded_lines(text, self.limits, self.display), start=1
                    ):
                        if not raw_line.strip():
                            continue
                        try:
                            value = json.loads(raw_line)
                        except (ValueError, RecursionError):  # nested past the parser's depth
                            value = None
                        if isinstance(value, dict):
                            names.update(dict.fromkeys(value))
                            if len(names) > self.limits.max_columns:
                                raise _too_many_columns(len(names), self.limits, self.display, line)
                        seen += 1
                        if seen >= self.peek_rows:
                            break
                self.close()
            self.empty = self.empty or seen == 0
            self._columns = [n for n in names if not n.startswith(EXPORT_PREFIX)]
        return self._columns

    def chunks(self, size: int, skip: int = 0) -> Generator[Chunk, None, None]:
        text = self._open_text()
        try:
            chunk = Chunk()
            seen = 0
            line = 0
            try:
                for line, raw_line in enumerate(
                    _bounded_lines(text, self.limits, self.display), start=1
                ):
                    if not raw_line.strip():
                        continue
                    seen += 1
                    if seen <= skip:
                        continue
                    try:
                        value = json.loads(raw_line)
                    except (ValueError, RecursionError) as exc:  # too deep: malformed too
                        chunk.malformed.append(
                            (line, raw_line.rstrip("\r\n"), f"is not valid JSON ({exc})")
                        )
                    else:
                        if isinstance(value, dict) and len(value) > self.limits.max_columns:
                            chunk.malformed.append(
                                (
                                    line,
                                    f"{{...{len(value):,} keys...}}",
                                    f"has {len(value):,} keys, more than the limit of "
                                    f"{self.limits.max_columns:,}",
                                )
                            )
                        elif isinstance(value, dict):
                            if QUARANTINE_ID_COLUMN in value:
                                chunk.origins.extend(
                                    [None] * (len(chunk.rows) - len(chunk.origins))
                                )
                                chunk.origins.append(_origin(value[QUARANTINE_ID_COLUMN]))
                            if any(k.startswith(EXPORT_PREFIX) for k in value):
                                value = {
                                    k: v
                                    for k, v in value.items()
                                    if not k.startswith(EXPORT_PREFIX)
                                }
                            chunk.rows.append(value)
                            chunk.row_numbers.append(line)
                        else:
                            chunk.malformed.append(
                                (line, value, f"is a JSON {type(value).__name__}, not an object")
                            )
                    if len(chunk) >= size:
                        chunk.fraction = self.fraction_done()
                        yield chunk
                        chunk = Chunk()
            except UnicodeDecodeError as exc:
                raise DataError(f"not UTF-8 text ({exc})", file=self.display, row=line + 1) from exc
            if len(chunk):
                yield chunk
        finally:
            text.close()
            self.close()


class ParquetReader(_FileReader):
    format = "parquet"

    def _file(self) -> Any:
        import pyarrow.parquet as pq

        self._raw = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        handle: Any = gzip.GzipFile(fileobj=self._raw, mode="rb") if self.gzip else self._raw
        try:
            return pq.ParquetFile(handle)
        except Exception as exc:  # pyarrow raises ArrowInvalid and friends
            self.close()
            raise DataError(f"not a readable Parquet file ({exc})", file=self.display) from exc

    def columns(self) -> list[str]:
        if self.empty:
            return []
        parquet = self._file()
        try:
            names = list(parquet.schema_arrow.names)
            # no rows but a schema is a header-only file: its columns are checked too
            self.empty = not names
        finally:
            self.close()
        return [n for n in names if not n.startswith(EXPORT_PREFIX)]

    def chunks(self, size: int, skip: int = 0) -> Generator[Chunk, None, None]:
        if self.empty:
            return
        names = self.columns()
        parquet = self._file()
        position = 0
        try:
            batches = parquet.iter_batches(batch_size=size, columns=names)
            while True:
                try:  # damage past the footer shows only when its pages are decoded
                    batch = next(batches, None)
                    if batch is None:
                        break
                    rows = batch.to_pylist()
                except Exception as exc:  # pyarrow raises OSError, ArrowInvalid and friends
                    raise DataError(
                        f"unreadable Parquet data after row {position:,} ({exc}); the rows "
                        "before it were stored - repair or re-export the file and ingest it again",
                        file=self.display,
                        row=position + 1,
                    ) from exc
                start = position
                position += len(rows)
                if position <= skip:
                    continue
                if start < skip:
                    rows = rows[skip - start :]
                    start = skip
                yield Chunk(
                    rows=rows,
                    row_numbers=list(range(start + 1, start + 1 + len(rows))),
                    fraction=position / parquet.metadata.num_rows,
                )
        finally:
            self.close()


class FrameReader(Reader):
    """A pandas DataFrame, sliced into chunks (pandas' NaN/NaT/NA mean "missing")."""

    format = "dataframe"

    def __init__(self, frame: Any, display: str = "dataframe") -> None:
        self.frame = frame
        self.display = display
        self.empty = len(frame.columns) == 0
        self._position = 0

    def columns(self) -> list[str]:
        names = [str(c) for c in self.frame.columns]
        seen: set[str] = set()
        for name in names:
            if name in seen:  # two columns of one name (or 1 and "1"): one hides the other
                raise DataError(f"column {name!r} appears twice", file=self.display, field=name)
            seen.add(name)
        return [c for c in names if not c.startswith(EXPORT_PREFIX)]

    def chunks(self, size: int, skip: int = 0) -> Generator[Chunk, None, None]:
        import pandas as pd

        names = self.columns()
        frame = self.frame.rename(columns=str)[names]
        for start in range(skip, len(frame), size):
            part = frame.iloc[start : start + size]
            # astype(object) + where(notna) turns NaN/NaT/NA into None in one pass.
            part = part.astype(object).where(pd.notna(part), None)
            rows = part.to_dict("records")
            self._position = start + len(rows)
            yield Chunk(
                rows=rows,
                row_numbers=list(range(start + 1, start + 1 + len(rows))),
                fraction=self.fraction_done(),
            )

    def fraction_done(self) -> float | None:
        return self._position / len(self.frame) if len(self.frame) else None


class RecordsReader(Reader):
    """Python records: mappings, ``ExposureRecord`` objects (``to_dict()``) or dataclasses."""

    format = "records"

    def __init__(self, records: Iterable[Any], display: str = "records") -> None:
        self.display = display
        self._iterator = iter(records)
        self._peeked: list[dict[str, Any]] = []
        self._columns: list[str] | None = None

    @staticmethod
    def _as_dict(record: Any) -> Any:
        if isinstance(record, Mapping):
            return dict(record)
        if hasattr(record, "to_dict"):
            return record.to_dict()
        return record

    def columns(self) -> list[str]:
        if self._columns is None:
            names: dict[str, None] = {}
            for record in self._iterator:
                row = self._as_dict(record)
                self._peeked.append(row)
                if isinstance(row, dict):
                    names.update(dict.fromkeys(row))
                    if len(names) > MAX_COLUMNS:
                        raise _too_many_columns(
                            len(names), DEFAULT_LIMITS, self.display, len(self._peeked)
                        )
                if len(self._peeked) >= 1000:
                    break
            self.empty = not self._peeked
            self._columns = [n for n in names if not str(n).startswith(EXPORT_PREFIX)]
        return self._columns

    def sample_rows(self, limit: int = 500) -> list[dict[str, Any]]:
        self.columns()
        return [row for row in self._peeked[:limit] if isinstance(row, dict)]

    def chunks(self, size: int, skip: int = 0) -> Generator[Chunk, None, None]:
        self.columns()
        chunk = Chunk()

        def all_rows() -> Iterator[Any]:
            yield from self._peeked
            for record in self._iterator:
                yield self._as_dict(record)

        for position, row in enumerate(all_rows(), start=1):
            if isinstance(row, dict):
                chunk.rows.append(row)
                chunk.row_numbers.append(position)
            else:
                chunk.malformed.append(
                    (position, repr(row), f"is a {type(row).__name__}, not a mapping")
                )
            if len(chunk) >= size:
                yield chunk
                chunk = Chunk()
        if len(chunk):
            yield chunk


def _format_of(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last in {".jsonl", ".ndjson", ".json"}:
        return "jsonl"
    if last in {".parquet", ".pq"}:
        return "parquet"
    return "csv"  # .csv, .tsv, .txt and anything else


def open_reader(
    source: Any,
    *,
    delimiter: str | None = None,
    display: str | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> Reader:
    """A reader for a path, a DataFrame or an iterable of records."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        fmt = _format_of(path)
        if fmt == "jsonl":
            return JsonLinesReader(path, display, limits=limits)
        if fmt == "parquet":
            return ParquetReader(path, display, limits)
        if delimiter is None and path.suffix.lower() == ".tsv":
            delimiter = "\t"
        return CsvReader(path, display, delimiter, limits)
    if type(source).__name__ == "DataFrame" and hasattr(source, "iloc"):
        return FrameReader(source, display or "dataframe")
    if isinstance(source, Iterable) and not isinstance(source, (bytes, Mapping)):
        return RecordsReader(source, display or "records")
    raise DataError(f"cannot ingest a {type(source).__name__}: give a path, a DataFrame or records")


def describe_type(values: list[Any]) -> str:
    """A coarse type for drift reports: integer, number, timestamp, boolean, object, string."""
    kinds: set[str] = set()
    for value in values:
        if value is None or value == "":
            continue
        if isinstance(value, bool):
            kinds.add("boolean")
        elif isinstance(value, int):
            kinds.add("integer")
        elif isinstance(value, float):
            kinds.add("number")
        elif isinstance(value, (datetime, date)):
            kinds.add("timestamp")
        elif isinstance(value, (dict, list)):
            kinds.add("object")
        else:
            text = str(value).strip()
            lowered = text.lower()
            if lowered in {"true", "false"}:
                kinds.add("boolean")
                continue
            try:
                int(text)
                kinds.add("integer")
                continue
            except ValueError:
                pass
            try:
                float(text)
                kinds.add("number")
                continue
            except ValueError:
                pass
            if len(text) >= 10 and text[4:5] == "-" and text[7:8] == "-":
                kinds.add("timestamp")
            else:
                kinds.add("string")
    if not kinds:
        return "empty"
    if kinds <= {"integer", "number"}:
        return "number" if "number" in kinds else "integer"
    return kinds.pop() if len(kinds) == 1 else "string"
