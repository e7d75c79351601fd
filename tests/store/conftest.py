"""Store fixtures: every store test runs on SQLite (tmp_path) and on PostgreSQL (own database per session)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from controlplane.store import Store
from tests.fakes import FakeClock
from tests.support import require_integration

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"


def _pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN):
            return True
    except Exception:  # any failure to connect means "not available here"
        return False


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str | None]:
    """A fresh PostgreSQL database for this test session (dropped at the end); None when unreachable."""
    if not _pg_available():
        yield None
        return
    import psycopg

    name = f"turnout_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _reset_pg(url: str) -> None:
    """Tests share the session database: drop every table so each test starts empty."""
    from sqlalchemy import create_engine
    from sqlmodel import SQLModel

    engine = create_engine(url)
    SQLModel.metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: object, pg_url: str | None) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/turnout.db"
    require_integration(pg_url is not None, "PostgreSQL not reachable at 127.0.0.1:5432")
    assert pg_url is not None
    _reset_pg(pg_url)
    return pg_url


@pytest.fixture
def store(store_url: str, clock: FakeClock) -> Iterator[Store]:
    s = Store(store_url, clock)
    yield s
    s.close()
