"""Fixtures shared by the whole suite: real SQLite files and a real PostgreSQL server.

The PostgreSQL server is started once per session from the installed binaries. In CI
(``CI=true``) a missing server fails the run; on a developer machine without the binaries
the PostgreSQL tests are skipped with the reason shown.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# CI runs property tests derandomised: a red build must be reproducible, and timing
# deadlines mean nothing on a shared two-core machine.
settings.register_profile(
    "ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if IN_CI else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[object]:
    from abkit.testing.postgres import PostgresUnavailable, TemporaryPostgres

    try:
        server = TemporaryPostgres()
    except PostgresUnavailable as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(str(exc))
    with server:
        yield server


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A SQLAlchemy URL of a fresh, empty PostgreSQL database."""
    return postgres_server.create_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLAlchemy URL of a fresh SQLite file."""
    return f"sqlite:///{tmp_path / 'abkit.db'}"


@pytest.fixture
def duckdb_url(tmp_path: Path) -> str:
    """A SQLAlchemy URL of a fresh DuckDB file (duckdb-engine is part of the test install)."""
    import duckdb_engine  # noqa: F401  - a missing driver is an install error, not a skip

    return f"duckdb:///{tmp_path / 'abkit.duckdb'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Run a test once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_url")
