"""Leader election on a real PostgreSQL: one leader at a time, terms only grow, local step-down before takeover."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import psycopg
import pytest

from controlplane.metrics import Metrics
from controlplane.scaleout.leader import SAFETY, LeaseElector, SingleLeader, elector_for, pg_conninfo
from tests.fakes import FakeClock

LEASE = 2.0


class Log:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []

    def cb(self, who: str, what: str) -> Callable[[int], Awaitable[None]]:
        async def f(term: int) -> None:
            self.calls.append((who, what, term))

        return f


@pytest.fixture
async def electors(pg_url: str, clock: FakeClock) -> AsyncIterator[tuple[list[LeaseElector], Log]]:
    log = Log()
    out = [
        LeaseElector(
            pg_url,
            lease=LEASE,
            holder=name,
            advertise_url=f"http://{name}",
            clock=clock,
            on_elected=log.cb(name, "elected"),
            on_demoted=log.cb(name, "demoted"),
        )
        for name in ("a", "b", "c")
    ]
    yield out, log
    for e in out:
        await e._drop_connection()


async def _settle(*es: LeaseElector) -> None:
    for e in es:
        await e.settle()


def _expire(pg_url: str) -> None:
    """What the passage of a whole lease does in the database (the leader stopped renewing)."""
    with psycopg.connect(pg_conninfo(pg_url), autocommit=True) as conn:
        conn.execute("UPDATE turnout_leader SET expires_at = now() - interval '1 second'")


pytestmark = pytest.mark.postgres


async def test_exactly_one_of_three_concurrent_candidates_leads(electors: tuple[list[LeaseElector], Log]) -> None:
    es, log = electors
    for _ in range(3):
        results = await asyncio.gather(*(e.step() for e in es))
        assert sum(results) == 1
    await _settle(*es)
    assert [c for c in log.calls if c[1] == "elected"] == [(es[results.index(True)].holder, "elected", 1)]
    info = await es[1].current()
    assert info is not None and info.valid and info.term == 1
    assert info.url == f"http://{info.holder}"


async def test_resigning_leader_hands_over_at_once_with_a_higher_term(electors: tuple[list[LeaseElector], Log]) -> None:
    (a, b, _c), log = electors
    assert await a.step() and not await b.step()
    await a.resign()
    assert not a.is_leader
    assert await b.step()
    assert b.term == 2
    await _settle(a, b)
    assert log.calls == [("a", "elected", 1), ("a", "demoted", 1), ("b", "elected", 2)]


async def test_follower_takes_over_an_expired_lease_and_the_old_leader_steps_down(
    electors: tuple[list[LeaseElector], Log], pg_url: str
) -> None:
    (a, b, _c), log = electors
    assert await a.step()
    assert not await b.step(), "the lease is still valid"
    _expire(pg_url)  # a stopped renewing (killed, paused, cut off) for a whole lease
    assert await b.step()
    assert not await a.step(), "a cannot renew a lease it no longer holds"
    await _settle(a, b)
    assert log.calls == [("a", "elected", 1), ("b", "elected", 2), ("a", "demoted", 1)]


async def test_leader_steps_down_on_its_own_clock_before_the_lease_can_pass_to_another(
    electors: tuple[list[LeaseElector], Log], clock: FakeClock
) -> None:
    (a, _b, _c), log = electors
    assert await a.step()
    a.conninfo = "host=127.0.0.1 port=1 connect_timeout=1"  # the database becomes unreachable
    await a._drop_connection()
    clock.advance(LEASE * SAFETY / 2)
    assert await a.step(), "a failed renewal with lease left keeps leadership"
    clock.advance(LEASE * SAFETY / 2 + 0.01)
    assert not await a.step()
    await a.settle()
    assert log.calls[-1] == ("a", "demoted", 1)


async def test_renewal_keeps_leadership_and_term(electors: tuple[list[LeaseElector], Log], clock: FakeClock) -> None:
    (a, b, _c), _log = electors
    metrics = Metrics()
    a.metrics = metrics
    assert await a.step()
    for _ in range(5):
        clock.advance(a.interval)
        assert await a.step() and not await b.step()
    assert a.term == 1 and a.elections == 1
    assert metrics.leader._value.get() == 1


async def test_run_loop_elects_and_resigns_when_cancelled(pg_url: str) -> None:
    log = Log()
    a = LeaseElector(
        pg_url, lease=0.6, holder="a", on_elected=log.cb("a", "elected"), on_demoted=log.cb("a", "demoted")
    )
    b = LeaseElector(pg_url, lease=0.6, holder="b", on_elected=log.cb("b", "elected"))
    task = asyncio.create_task(a.run())
    while not a.is_leader:
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert await b.step(), "a released the lease on its way out"
    await b.settle()
    await b._drop_connection()
    assert log.calls == [("a", "elected", 1), ("a", "demoted", 1), ("b", "elected", 2)]


def test_sqlite_has_a_single_leader() -> None:
    e = elector_for("sqlite:///x.db", lease=5)
    assert isinstance(e, SingleLeader) and e.is_leader and e.term == 1


def test_conninfo_from_sqlalchemy_url_keeps_credentials_out_of_the_way() -> None:
    info = pg_conninfo("postgresql+psycopg://turnout:s3cret@db.internal:6432/turnout?sslmode=require")
    parsed = psycopg.conninfo.conninfo_to_dict(info)
    assert parsed["host"] == "db.internal" and parsed["port"] == "6432" and parsed["dbname"] == "turnout"
    assert parsed["user"] == "turnout" and parsed["password"] == "s3cret" and parsed["sslmode"] == "require"


def test_lease_must_be_positive() -> None:
    with pytest.raises(ValueError, match="leader_lease"):
        LeaseElector("postgresql+psycopg://u@h/d", lease=0)


async def test_a_slow_leader_start_does_not_delay_renewal(pg_url: str, clock: FakeClock) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow_start(term: int) -> None:
        started.set()
        await release.wait()

    a = LeaseElector(pg_url, lease=LEASE, holder="a", clock=clock, on_elected=slow_start)
    try:
        assert await a.step()
        await started.wait()
        clock.advance(a.interval)
        assert await a.step(), "renewed while the callback is still running"
        release.set()
        await a.settle()
    finally:
        await a._drop_connection()
