"""Progress of an ingest, counted in committed rows.

:func:`abkit.ingest.ingestor.ingest` calls its ``progress`` callback with a
:class:`ProgressEvent` after every committed chunk (and once when a source is done), so
what is shown is what a kill would keep. :class:`ProgressReporter` is the callback the CLI
uses: a tqdm bar (percentage, committed rows, elapsed time, ETA) on a terminal, and one
plain line every ``interval`` seconds otherwise (cron, CI, log files).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO


@dataclass(frozen=True)
class ProgressEvent:
    """Where an ingest stands after a commit."""

    source: str
    file_number: int  # 1-based position of the source in this call
    files: int
    committed: int  # rows of this source committed so far (a resumed run included)
    total_committed: int  # rows committed by this call, every source
    fraction: float | None  # of this source, through the last committed chunk
    elapsed: float  # seconds since the call started
    done: bool = False


class ProgressReporter:
    """A progress callback: a tqdm bar on a terminal, periodic log lines elsewhere."""

    def __init__(
        self, stream: TextIO | None = None, *, tty: bool | None = None, interval: float = 10.0
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = interval
        self._bar: Any = None
        self._source: str | None = None
        self._last_line = float("-inf")
        self._source_started: dict[str, float] = {}

    def __call__(self, event: ProgressEvent) -> None:
        if self.tty:
            self._draw(event)
        elif event.done or time.monotonic() - self._last_line >= self.interval:
            self._last_line = time.monotonic()
            self._log(event)

    def _draw(self, event: ProgressEvent) -> None:
        from tqdm import tqdm

        if event.source != self._source:
            self.close()
            self._source = event.source
            label = f"[{event.file_number}/{event.files}] {event.source}"
            if event.fraction is None:
                self._bar = tqdm(desc=label, unit=" rows", file=self.stream, leave=True)
            else:
                self._bar = tqdm(
                    desc=label,
                    total=100.0,
                    file=self.stream,
                    leave=True,
                    bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix} [{elapsed}<{remaining}]",
                )
        bar = self._bar
        bar.n = event.committed if event.fraction is None else round(event.fraction * 100, 2)
        if event.fraction is not None:
            bar.set_postfix_str(f"{event.committed:,} rows committed", refresh=False)
        bar.refresh()
        if event.done:
            self.close()

    def _log(self, event: ProgressEvent) -> None:
        started = self._source_started.setdefault(event.source, time.monotonic())
        share = "" if event.fraction is None else f" ({event.fraction:.0%})"
        eta = ""
        if event.fraction and 0 < event.fraction < 1 and not event.done:
            # This source's rate so far (a resumed source makes it a rough guess).
            spent = time.monotonic() - started
            eta = f", about {spent * (1 - event.fraction) / event.fraction:.0f}s left"
        state = "done" if event.done else "committed"
        self.stream.write(
            f"abkit ingest: [{event.file_number}/{event.files}] {event.source}: "
            f"{event.committed:,} rows {state}{share}, {event.elapsed:.0f}s elapsed{eta}\n"
        )
        self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            self._source = None
