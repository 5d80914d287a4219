"""The chunk writer: typed results, and database failures that reach the user as one line."""

from __future__ import annotations

import pytest

from abkit.errors import StoreError
from abkit.ingest import writer
from abkit.ingest.ingestor import ingest
from abkit.ingest.progress import ProgressEvent
from abkit.ingest.writer import ChunkResult


def test_chunk_results_are_typed_and_add_up(db_url, tmp_path, audit, monkeypatch):
    data = tmp_path / "mixed.csv"
    data.write_text(
        "event_id,unit_id,event_type,value,timestamp\n"
        "e1,u1,buy,1,2024-01-01T00:00:00Z\n"
        "e1,u1,buy,1,2024-01-01T00:00:00Z\n"  # a duplicate within the chunk
        "e1,u1,buy,2,2024-01-01T00:00:00Z\n"  # the same id, other content: a conflict
        "e2,u2,buy,x,2024-01-01T00:00:00Z\n"  # not a number
    )
    seen: list[ChunkResult] = []

    original = writer.ChunkWriter.write

    def spy(self, *args):  # type: ignore[no-untyped-def]
        result = original(self, *args)
        seen.append(result)
        return result

    monkeypatch.setattr(writer.ChunkWriter, "write", spy)
    report = ingest(data, db=db_url)
    (chunk,) = seen
    assert chunk == ChunkResult(
        rows_read=4,
        accepted=1,
        duplicates=1,
        quarantined=2,
        by_reason={"conflict": 1, "non_numeric_value": 1},
    )
    audit(db_url, report)


@pytest.mark.postgres
def test_a_postgresql_crash_mid_ingest_is_one_line(postgres_url, tmp_path):
    """Every session of the database is terminated after the first commit."""
    import psycopg

    data = tmp_path / "long.csv"
    data.write_text(
        "unit_id,event_type,timestamp\n"
        + "".join(f"u{i},click,{1_704_067_200 + i}\n" for i in range(1000))
    )
    conninfo = postgres_url.replace("postgresql+psycopg://", "postgresql://")

    def crash(event: ProgressEvent) -> None:
        if event.committed:
            with psycopg.connect(conninfo, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )

    with pytest.raises(StoreError) as info:
        ingest(data, db=postgres_url, chunk_size=100, progress=crash)
    message = str(info.value)
    assert "\n" not in message, message
    assert "long.csv" in message or "batch" in message
    assert "terminat" in message or "closed" in message, message
