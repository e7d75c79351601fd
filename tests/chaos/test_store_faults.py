"""The store turning read-only under a running control plane (PostgreSQL failed over to a read replica:
every new transaction is read-only), in process with the injected clock.

Promise: the last durable table keeps being served, the data plane keeps answering, /readyz says 503, the log
holds one clear line per writer rather than one per write, and everything catches up once writes work again.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.chaos.conftest import OA, Stack
from tests.chaos.proc import PG_ADMIN, pg_database
from tests.support import require_integration

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql)


def _read_only(db: str, on: bool) -> None:
    """Make every new transaction of `db` read-only (or not), and end open sessions so pools reconnect into it."""
    _admin(f'ALTER DATABASE "{db}" SET default_transaction_read_only = {"on" if on else "off"}')
    _admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()")


async def test_postgres_turning_read_only_keeps_serving_reports_not_ready_and_catches_up(
    make_stack: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with pg_database() as url:
        require_integration(url is not None, "PostgreSQL not reachable at 127.0.0.1:5432")
        assert url is not None
        db = url.rsplit("/", 1)[1]

        def on_pg(raw: dict[str, Any]) -> None:
            raw["database"]["url"] = url
            raw["providers"][0]["models"][0]["priority"] = 5

        stack: Stack = await make_stack(on_pg)
        try:
            await stack.step(10, by=5)
            version = stack.table().version
            assert stack.table().routes["pair"].primary.target == OA
            caplog.set_level(logging.INFO)
            caplog.clear()
            _read_only(db, True)
            stack.sim.set_fault("oa", "region_blocked")
            for _ in range(5):
                status, _, body = await stack.chat("pair")
                assert status == 200, body  # the data plane keeps answering
            await stack.step(10, by=1)  # ten seconds of probes, ticks and snapshots that cannot be stored

            status, ready = await stack.api("/readyz")
            assert status == 503 and ready["checks"]["store_writes"] is False, ready
            assert stack.metric("turnout_ready") == 0
            status, table = await stack.api("/api/v1/table")
            assert status == 200 and table["version"] == version  # the last durable table, nothing newer
            errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("turnout")]
            assert 1 <= len(errors) <= 3, [r.getMessage() for r in errors]
            assert all(r.exc_info is None for r in caplog.records if r.name.startswith(("turnout", "controlplane"))), [
                r.getMessage() for r in caplog.records if r.exc_info
            ]

            _read_only(db, False)
            await stack.step(5, by=1)
            status, ready = await stack.api("/readyz")
            assert status == 200, ready
            assert stack.state(OA) == "withdrawn" and stack.table().version > version
            assert any(e.subject == OA for e in stack.events("target.withdrawn"))  # the pending event was kept
            got = await stack.delivered({"target.withdrawn"})
            assert "target.withdrawn" in got
        finally:
            _read_only(db, False)
