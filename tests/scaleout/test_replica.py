"""Data replicas: follow the table by long-poll from any control replica, keep serving without one,
eject failing targets on their own, and report outcomes back in bounded batches."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from controlplane.domain import ErrorClass, Observation, Source
from controlplane.metrics import Metrics
from controlplane.publisher import TablePublisher
from dataplane.replica import DataReplica, OutcomeReporter, OutlierDetector, control_token
from tests.fakes import FakeClock
from tests.scaleout.helpers import ADMIN, StubControl, StubControlRuntime, StubLeadership, small_config, table_v
from tests.support import free_port


def _o(target: str, ec: ErrorClass, status: int | None = None) -> Observation:
    return Observation(
        target=target,
        at=datetime(2026, 1, 1, tzinfo=UTC),
        source=Source.LIVE,
        kind="live",
        error_class=ec,
        status=status,
    )


def _detector(clock: FakeClock) -> OutlierDetector:
    return OutlierDetector(clock, consecutive=3, base=10.0, cap=25.0)


# -- outlier detection ---------------------------------------------------------------------------
def test_consecutive_failures_eject_and_a_success_in_between_resets(clock: FakeClock) -> None:
    d = _detector(clock)
    for ec in (
        ErrorClass.SERVER_ERROR,
        ErrorClass.TIMEOUT,
        ErrorClass.OK,
        ErrorClass.SERVER_ERROR,
        ErrorClass.CLIENT_ERROR,
    ):
        d.record(_o("p1/m1", ec))
    assert d.ejected() == {}, "two in a row, then a success; client errors are neutral"
    d.record(_o("p1/m1", ErrorClass.SERVER_ERROR))
    d.record(_o("p1/m1", ErrorClass.CONNECT))
    assert "p1/m1" in d.ejected()


def test_ejection_expires_and_grows_on_repeat_up_to_the_cap(clock: FakeClock) -> None:
    d = _detector(clock)
    d.record(_o("p1/m2", ErrorClass.MODEL_GONE, 404))
    assert "model_gone" in d.ejected()["p1/m2"], "a withdrawing answer ejects at once"
    clock.advance(10.01)
    assert d.ejected() == {}
    d.record(_o("p1/m2", ErrorClass.AUTH, 401))
    clock.advance(19.9)
    assert "p1/m2" in d.ejected(), "the second ejection lasts twice as long"
    clock.advance(0.2)
    d.record(_o("p1/m2", ErrorClass.AUTH, 401))
    clock.advance(24.9)
    assert "p1/m2" in d.ejected()
    clock.advance(0.2)
    assert d.ejected() == {}, "capped at 25 s"


def test_applied_table_reranks_and_never_ejects_a_routes_last_target(clock: FakeClock) -> None:
    cfg = small_config()
    d = _detector(clock)
    base = table_v(cfg, 7)
    d.record(_o("p1/m1", ErrorClass.REGION_BLOCKED, 403))
    t = d.apply(base)
    assert t.version == 7
    main = t.routes["main"]
    assert [(e.target, e.rank) for e in main.admissible] == [("p1/m2", 1), ("p1/m3", 2)]
    assert "ejected by this data replica" in next(e for e in main.entries if e.target == "p1/m1").reason
    assert not t.targets["p1/m1"].admissible
    d.record(_o("p1/m2", ErrorClass.AUTH))
    d.record(_o("p1/m3", ErrorClass.AUTH))
    assert [e.target for e in d.apply(base).routes["main"].admissible] == ["p1/m1", "p1/m2", "p1/m3"], (
        "all ejected: serve as before"
    )


# -- the report buffer ---------------------------------------------------------------------------
def test_full_buffer_drops_the_oldest_and_counts_them(clock: FakeClock) -> None:
    metrics = Metrics()
    r = OutcomeReporter(_detector(clock), metrics, capacity=3, batch=2)
    for i in range(5):
        r.submit(_o(f"p1/m{i}", ErrorClass.OK))
    assert r.dropped == 2 and metrics.registry.get_sample_value("turnout_dataplane_reports_dropped_total") == 2
    batch = r.take()
    assert [o.target for o in batch] == ["p1/m2", "p1/m3"], "oldest first"
    r.submit(_o("p1/m5", ErrorClass.OK))
    r.submit(_o("p1/m6", ErrorClass.OK))
    r.give_back(batch)  # the send failed; newer ones arrived meanwhile
    assert len(r) == 3 and r.dropped == 4
    assert [o.target for o in r.take() + r.take()] == ["p1/m4", "p1/m5", "p1/m6"]


def test_report_token_comes_from_env_or_the_first_admin_token(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = small_config()
    monkeypatch.delenv("TURNOUT_CONTROL_TOKEN", raising=False)
    assert control_token(cfg) == ADMIN
    monkeypatch.setenv("TURNOUT_CONTROL_TOKEN", "from-env")
    assert control_token(cfg) == "from-env"


# -- against control replicas on loopback ----------------------------------------------------------
@pytest.fixture
async def controls() -> AsyncIterator[list[StubControl]]:
    cfg = small_config()
    pub = TablePublisher(table_v(cfg, 1))
    cs = [
        await StubControl(StubControlRuntime(cfg, pub, leadership=StubLeadership(is_leader=i == 1))).start()
        for i in range(2)
    ]
    yield cs
    for c in cs:
        await c.stop()


@pytest.fixture
async def replica(controls: list[StubControl], clock: FakeClock) -> AsyncIterator[DataReplica]:
    dead = f"http://127.0.0.1:{free_port()}"  # listed first: nobody there
    r = DataReplica(small_config(), [dead, *(c.url for c in controls)], clock=clock, token=ADMIN, first_table_timeout=0)
    await r.start()
    for t in r._tasks:  # the test drives follow_once / report_once itself
        t.cancel()
    yield r
    await r.stop()


async def test_replica_skips_an_unreachable_url_and_follows_new_versions(
    replica: DataReplica, controls: list[StubControl]
) -> None:
    assert not await replica.follow_once(wait=0.1)
    assert await replica.follow_once(wait=0.1)
    assert replica.table_source.current().version == 1
    controls[0].rt.table_source.publish(table_v(replica.config, 2))
    assert await replica.follow_once(wait=5)
    assert replica.table_source.current().version == 2 and replica.connected


async def test_replica_keeps_its_last_table_while_every_control_replica_is_down(
    replica: DataReplica, controls: list[StubControl]
) -> None:
    while not await replica.follow_once(wait=0.1):
        pass
    for c in controls:
        await c.stop()
    for _ in range(3):
        assert not await replica.follow_once(wait=0.1)
    assert not replica.connected
    assert (
        replica.table_source.current().version == 1
        and replica.table_source.current().routes["main"].primary is not None
    )


async def test_outcomes_go_to_the_leader_in_batches_once_it_is_back(
    replica: DataReplica, controls: list[StubControl]
) -> None:
    leader = controls[1]
    await leader.stop()
    for _ in range(3):
        replica.sink.submit(_o("p1/m1", ErrorClass.OK))
    assert await replica.report_once() == 0 and len(replica.sink) == 3, "kept while nobody takes them"
    await leader.start()
    assert await replica.report_once() == 3
    assert len(leader.rt.sink.got) == 3 and controls[0].rt.sink.got == [], "the follower refused, the leader took them"
    assert len(replica.sink) == 0


async def test_decision_records_ride_along_with_the_reports(replica: DataReplica, controls: list[StubControl]) -> None:
    from controlplane.decisions import Decision

    leader = controls[1]
    await leader.stop()
    d = Decision(
        at=replica.clock.wall(),
        route="main",
        target="p1/m1",
        outcome="client_gone",
        status=499,
        stream=True,
        attempts=[("p1/m1", "ok", 200)],
    )
    replica.forward_decision(d)  # a request that left no outcome (the client went away) still leaves its record
    assert await replica.report_once() == 0 and list(replica.decisions) == [d], "kept while nobody takes them"
    await leader.start()
    assert await replica.report_once() == 1
    assert replica.decisions_sent == 1 and not replica.decisions


async def test_start_waits_for_the_first_table(controls: list[StubControl]) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    r = DataReplica(small_config(), [dead, controls[0].url], token=ADMIN)
    await r.start()
    try:
        assert r.table_source.current().version == 1 and r.connected
    finally:
        await r.stop()


def test_a_replica_needs_a_control_url() -> None:
    with pytest.raises(ValueError, match="--control-url"):
        DataReplica(small_config(), [])


async def test_serve_refuses_control_urls_outside_the_data_role() -> None:
    from controlplane.commands.serve_cmd import serve

    assert await serve(small_config(), None, "control", control_urls=["http://127.0.0.1:9"]) == 2
