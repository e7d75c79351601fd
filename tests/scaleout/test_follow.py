"""Followers learn each committed table version from the store: by NOTIFY on PostgreSQL, by polling otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from controlplane.publisher import TablePublisher
from controlplane.scaleout.control_replica import StoreFollower, install_notify, newest_table
from controlplane.scaleout.leader import pg_conninfo
from controlplane.store import Store
from controlplane.table import Table
from tests.fakes import FakeClock


def _table(version: int) -> Table:
    return Table(version=version, published_at=datetime(2026, 1, 1, tzinfo=UTC), config_hash=f"h{version}")


@pytest.fixture
def pg_store(pg_url: str, clock: FakeClock) -> Iterator[Store]:
    s = Store(pg_url, clock)
    install_notify(s.engine)
    yield s
    s.close()


@pytest.fixture
async def listening(pg_store: Store, pg_url: str) -> AsyncIterator[StoreFollower]:
    # A long poll interval: within the test's deadlines only a notification can deliver a version.
    follower = StoreFollower(
        pg_store.engine, TablePublisher(_table(0)), conninfo=pg_conninfo(pg_url), poll_interval=30.0
    )
    task = asyncio.create_task(follower.run())
    for _ in range(500):
        if follower.listening:
            break
        await asyncio.sleep(0.01)
    assert follower.listening
    yield follower
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.mark.postgres
async def test_follower_hears_each_committed_version_through_notify(pg_store: Store, listening: StoreFollower) -> None:
    seen: list[int] = []
    for v in (1, 2, 3):
        await asyncio.to_thread(pg_store.save_health, {}, _table(v))  # what the leader's pipeline does
        got = await listening.publisher.wait_newer(v - 1, timeout=5.0)
        assert got is not None
        seen.append(got.version)
    assert seen == [1, 2, 3]
    assert listening.notified >= 3
    assert listening.publisher.current().config_hash == "h3", "the table itself came from the store"


@pytest.mark.postgres
async def test_follower_falls_back_to_polling_when_its_listen_connection_dies(
    pg_store: Store, listening: StoreFollower, pg_url: str
) -> None:
    listening.poll_interval = 0.1
    with psycopg.connect(pg_conninfo(pg_url), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%%' AND pid <> pg_backend_pid()"
        )
    await asyncio.to_thread(pg_store.save_health, {}, _table(7))
    got = await listening.publisher.wait_newer(0, timeout=5.0)
    assert got is not None and got.version == 7


def test_polling_follower_on_sqlite_publishes_only_newer_versions(tmp_path: Path, clock: FakeClock) -> None:
    store = Store(f"sqlite:///{tmp_path}/t.db", clock)
    try:
        assert install_notify(store.engine) is False
        follower = StoreFollower(store.engine, TablePublisher(_table(5)))
        store.save_health({}, _table(3))
        assert follower.refresh() is None, "an older stored version is never republished"
        assert follower.publisher.version == 5
        store.save_health({}, _table(6))
        seen: list[int] = []
        follower.on_table = lambda t: seen.append(t.version)
        assert follower.refresh() is not None
        assert follower.publisher.version == 6 and seen == [6]
        assert newest_table(store.engine, 6) is None
    finally:
        store.close()


async def test_polling_loop_follows_without_listen(tmp_path: Path, clock: FakeClock) -> None:
    store = Store(f"sqlite:///{tmp_path}/t.db", clock)
    follower = StoreFollower(store.engine, TablePublisher(_table(0)), poll_interval=0.05)
    task = asyncio.create_task(follower.run())
    try:
        await asyncio.to_thread(store.save_health, {}, _table(2))
        got = await follower.publisher.wait_newer(0, timeout=5.0)
        assert got is not None and got.version == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        store.close()
