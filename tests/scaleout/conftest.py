"""Scale-out fixtures: a fresh PostgreSQL database per test (created and dropped here), FakeClock from tests/conftest."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support import require_integration

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"


def pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN):
            return True
    except Exception:  # any failure to connect means "not available here"
        return False


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test (dropped afterwards, even if connections linger)."""
    require_integration(pg_available(), "PostgreSQL not reachable at 127.0.0.1:5432 (user postgres, database test)")
    import psycopg

    name = f"turnout_scaleout_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
