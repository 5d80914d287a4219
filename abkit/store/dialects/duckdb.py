"""DuckDB: explicit sequences for surrogate keys, the portable insert, ``flock`` locks.

DuckDB allows one writing process per database file (it locks the file itself), so the
portable look-up-then-insert path is exact. Column-wise appends register a pandas frame
with the connection and ``INSERT ... SELECT`` it (DuckDB's native bulk path; its
row-by-row executemany is slow); the statement is Core (``insert().from_select()`` over
a named relation), so no SQL text is formatted. Exclusive locks are files beside the
database, like SQLite's, so batch ownership behaves the same on both.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table, column, insert, select, table
from sqlalchemy.engine import URL, Connection

from abkit.store.dialects.base import register
from abkit.store.dialects.files import FileDialect


@register
class DuckdbDialect(FileDialect):
    name = "duckdb"
    sequences = True  # DuckDB has no SERIAL

    @classmethod
    def engine_options(cls, url: URL, *, readonly: bool) -> dict[str, Any]:
        # Read-only opens let several analyses share a file that no writer holds.
        return {"connect_args": {"read_only": True}} if readonly else {}

    def append_columns(
        self, conn: Connection, table_: Table, data: Mapping[str, Sequence[Any]]
    ) -> int:
        import pandas as pd

        frame = pd.DataFrame(dict(data))
        raw: Any = conn.connection.driver_connection
        name = f"abkit_frame_{next(_FRAMES)}"
        raw.register(name, frame)
        try:
            source = table(name, *[column(c) for c in frame.columns])
            conn.execute(
                insert(table_).from_select(
                    list(frame.columns), select(*[source.c[c] for c in frame.columns])
                )
            )
        finally:
            raw.unregister(name)
        return len(frame)


_FRAMES = itertools.count(1)
