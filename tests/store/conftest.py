"""Store fixtures: every store test runs on SQLite (tmp_path) and on PostgreSQL (own database per session)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from controlplane.store import Store
from tests.fakes import FakeClock
from tests.support import pg_database, require_integration


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str | None]:
    """A fresh PostgreSQL database for this test session (dropped at the end); None when unreachable."""
    with pg_database("turnout_test") as url:
        yield url


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
