"""Scale-out fixtures: a fresh PostgreSQL database per test (created and dropped here), FakeClock from tests/conftest."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import pg_database, require_integration


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test (dropped afterwards, even if connections linger)."""
    with pg_database("turnout_scaleout") as url:
        require_integration(
            url is not None, "PostgreSQL not reachable at 127.0.0.1:5432 (user postgres, database test)"
        )
        assert url is not None
        yield url
