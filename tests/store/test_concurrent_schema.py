"""Replicas starting together on one empty PostgreSQL database all migrate it without an error."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import require_integration

_OPEN = "from controlplane.clock import SystemClock; from controlplane.store import Store; Store(sys.argv[1], SystemClock()).close()"


@pytest.mark.postgres
def test_processes_creating_the_schema_at_once_all_succeed(pg_url: str | None) -> None:
    require_integration(pg_url is not None, "PostgreSQL not reachable at 127.0.0.1:5432")
    assert pg_url is not None
    from tests.store.conftest import _reset_pg

    _reset_pg(pg_url)  # an empty database: every process races to CREATE the same tables
    procs = [
        subprocess.Popen([sys.executable, "-c", f"import sys; {_OPEN}", pg_url], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
