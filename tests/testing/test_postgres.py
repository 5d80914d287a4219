"""The throw-away PostgreSQL server really starts, accepts SQL and isolates databases."""

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.postgres


def test_server_runs_sql_on_loopback(postgres_server, postgres_url):
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select 41 + 1")).scalar_one() == 42
        address = conn.execute(sa.text("select inet_server_addr()::text")).scalar_one()
    assert address.startswith("127.0.0.1")
    assert postgres_url.endswith(postgres_url.rsplit("/", 1)[1])
    engine.dispose()


def test_each_database_is_fresh(postgres_url):
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        tables = conn.execute(
            sa.text("select count(*) from information_schema.tables where table_schema='public'")
        ).scalar_one()
    assert tables == 0
    engine.dispose()
