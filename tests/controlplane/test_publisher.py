"""Table publisher: versions only go up; long-poll waiters wake on publish, time out cleanly."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import pytest

from controlplane.publisher import TablePublisher
from controlplane.seams import TableSource
from controlplane.table import Table

AT = datetime(2026, 1, 1, tzinfo=UTC)


def tbl(v: int) -> Table:
    return Table(version=v, published_at=AT)


def test_current_is_the_last_published_table_and_satisfies_table_source() -> None:
    p = TablePublisher(tbl(1))
    source: TableSource = p
    p.publish(tbl(2))
    assert source.current().version == 2


@pytest.mark.parametrize("v", [1, 0])
def test_publish_rejects_a_version_that_does_not_go_up(v: int) -> None:
    p = TablePublisher(tbl(1))
    with pytest.raises(ValueError, match="not newer"):
        p.publish(tbl(v))
    assert p.current().version == 1


def test_subscribers_see_every_publish_and_can_unsubscribe() -> None:
    p = TablePublisher(tbl(1))
    seen: list[int] = []
    stop = p.subscribe(lambda t: seen.append(t.version))
    p.publish(tbl(2))
    stop()
    p.publish(tbl(3))
    assert seen == [2]


def test_a_broken_subscriber_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    p = TablePublisher(tbl(1))
    seen: list[int] = []

    def broken(t: Table) -> None:
        raise RuntimeError("boom")

    p.subscribe(broken)
    p.subscribe(lambda t: seen.append(t.version))
    p.publish(tbl(2))
    assert seen == [2]
    assert "subscriber" in caplog.text


async def test_wait_newer_returns_at_once_when_already_newer() -> None:
    p = TablePublisher(tbl(5))
    got = await p.wait_newer(3, timeout=0)
    assert got is not None and got.version == 5


async def test_wait_newer_times_out_with_none() -> None:
    p = TablePublisher(tbl(5))
    assert await p.wait_newer(5, timeout=0.01) is None


async def test_many_waiters_wake_on_one_publish() -> None:
    p = TablePublisher(tbl(1))
    waiters = [asyncio.create_task(p.wait_newer(1, timeout=5)) for _ in range(200)]
    await asyncio.sleep(0)  # let every waiter park
    loop = asyncio.get_running_loop()
    started = loop.time()
    p.publish(tbl(2))
    results = await asyncio.gather(*waiters)
    assert {r.version for r in results if r is not None} == {2} and all(r is not None for r in results)
    assert loop.time() - started < 0.5  # woken by the publish, not by the 5 s timeout


async def test_a_waiter_timing_out_does_not_cancel_the_others() -> None:
    p = TablePublisher(tbl(1))
    short = asyncio.create_task(p.wait_newer(1, timeout=0.01))
    long = asyncio.create_task(p.wait_newer(1, timeout=5))
    assert await short is None
    p.publish(tbl(2))
    got = await long
    assert got is not None and got.version == 2


async def test_publish_from_another_thread_wakes_the_loop() -> None:
    p = TablePublisher(tbl(1))
    waiter = asyncio.create_task(p.wait_newer(1, timeout=5))
    await asyncio.sleep(0)
    th = threading.Thread(target=p.publish, args=(tbl(2),))
    th.start()
    got = await waiter
    th.join()
    assert got is not None and got.version == 2
