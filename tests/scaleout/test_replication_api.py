"""POST /api/v1/observations: validated batches from data replicas; only the leader takes them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from controlplane.decisions import Decision, summarise
from controlplane.domain import ErrorClass, Observation, Source
from controlplane.publisher import TablePublisher
from controlplane.scaleout.replication_api import (
    MAX_BATCH,
    WireError,
    decision_from_wire,
    decision_to_wire,
    observation_from_wire,
    observation_to_wire,
)
from tests.scaleout.helpers import (
    ADMIN,
    READ,
    ListStore,
    StubControl,
    StubControlRuntime,
    StubLeadership,
    small_config,
    table_v,
)


@pytest.fixture
async def control() -> AsyncIterator[StubControl]:
    cfg = small_config()
    c = await StubControl(StubControlRuntime(cfg, TablePublisher(table_v(cfg, 4)))).start()
    yield c
    await c.stop()


def _obs(
    c: StubControl, target: str = "p1/m1", ago: float = 1.0, ec: ErrorClass = ErrorClass.SERVER_ERROR
) -> dict[str, Any]:
    at = c.rt.clock.wall() - timedelta(seconds=ago)
    return observation_to_wire(
        Observation(target=target, at=at, source=Source.LIVE, kind="live", error_class=ec, status=503, latency_s=0.2)
    )


async def _post(c: StubControl, body: Any, token: str | None = ADMIN) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{c.url}/api/v1/observations", json=body, headers=headers) as r,
    ):
        return r.status, await r.json()


async def test_fresh_outcomes_reach_the_pipeline_and_stale_ones_only_the_store(control: StubControl) -> None:
    status, body = await _post(control, {"replica": "d1", "observations": [_obs(control), _obs(control, ago=3600)]})
    assert status == 202
    assert body == {
        "accepted": 2,
        "stale": 1,
        "rejected": [],
        "decisions_accepted": 0,
        "decisions_rejected": [],
        "table_version": 4,
    }
    [fresh] = control.rt.sink.got
    assert fresh.target == "p1/m1" and fresh.error_class is ErrorClass.SERVER_ERROR and fresh.source is Source.LIVE
    assert fresh.status == 503 and fresh.latency_s == 0.2
    assert len(control.rt.store.stored) == 1


async def test_bad_items_are_rejected_by_field_and_the_rest_accepted(control: StubControl) -> None:
    bad_class = {**_obs(control), "error_class": "exploded"}
    bad_latency = {**_obs(control), "latency_s": -1}
    unknown = _obs(control, target="p1/nope")
    status, body = await _post(control, {"observations": [bad_class, _obs(control), bad_latency, unknown, "x"]})
    assert status == 202 and body["accepted"] == 1
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [
        (0, "error_class"),
        (2, "latency_s"),
        (3, "target"),
        (4, "observation"),
    ]


@pytest.mark.parametrize(("token", "status"), [(None, 401), (READ, 403), ("wrong-token-xyz", 401)])
async def test_reports_need_an_admin_token(control: StubControl, token: str | None, status: int) -> None:
    got, body = await _post(control, {"observations": [_obs(control)]}, token)
    assert got == status and ADMIN not in str(body) and (token is None or token not in str(body))
    assert control.rt.sink.got == []


async def test_a_follower_refuses_and_names_the_leader(control: StubControl) -> None:
    control.rt.leadership = StubLeadership(is_leader=False, url="http://10.0.0.7:8701")
    status, body = await _post(control, {"observations": [_obs(control)]})
    assert status == 503 and body["error"]["code"] == "not_leader" and body["error"]["leader"] == "http://10.0.0.7:8701"
    assert control.rt.sink.got == []


async def test_malformed_bodies_get_clear_errors(control: StubControl) -> None:
    assert (await _post(control, {"observations": "nope"}))[1]["error"]["field"] == "observations"
    status, body = await _post(control, {"observations": [{}] * (MAX_BATCH + 1)})
    assert status == 413 and str(MAX_BATCH) in body["error"]["message"]
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{control.url}/api/v1/observations", data=b"{not json", headers={"Authorization": f"Bearer {ADMIN}"}
        ) as r,
    ):
        assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_json"


def test_wire_round_trip_keeps_every_field_but_extra() -> None:
    o = Observation(
        target="p1/m1",
        at=datetime(2026, 1, 1, tzinfo=UTC),
        source=Source.PROBE,
        kind="live",
        error_class=ErrorClass.RATE_LIMITED,
        latency_s=1.5,
        ttft_s=0.3,
        status=429,
        headroom=0.1,
        retry_after_s=2.0,
        code="rate_limit_exceeded",
        detail="slow down",
        extra={"request": "secret"},
    )
    back = observation_from_wire(observation_to_wire(o))
    assert back == replace(o, source=Source.LIVE)  # extra is not compared: it never leaves the replica
    assert (
        back.source is Source.LIVE
        and back.extra == {}
        and back.retry_after_s == 2.0
        and back.code == "rate_limit_exceeded"
    )
    with pytest.raises(WireError, match="at:"):
        observation_from_wire({**observation_to_wire(o), "at": "yesterday"})


async def test_leader_endpoint_says_who_leads(control: StubControl) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{control.url}/api/v1/leader") as r:
            assert (await r.json()) == {
                "mode": "single",
                "this_replica_leads": True,
                "term": 1,
                "leader_url": None,
                "table_version": 4,
            }
        control.rt.leadership = StubLeadership(is_leader=False, url="http://c2:8701")
        async with http.get(f"{control.url}/api/v1/leader") as r:
            body = await r.json()
    assert (
        body["mode"] == "replicated"
        and not body["this_replica_leads"]
        and body["leader_url"] == "http://c2:8701"
        and body["term"] == 3
    )


def _decision(at: datetime) -> Decision:
    return Decision(
        at=at,
        route="main",
        target="p1/m1",
        outcome="ok",
        status=200,
        stream=True,
        attempts=[("p2/m1", "overloaded", 529), ("p1/m1", "ok", 200)],
        tokens_in=10,
        tokens_out=5,
        cost_usd=0.001,
        latency_s=0.3,
        ttft_s=0.1,
        tag="team-a",
        table_version=4,
    )


def test_decisions_cross_the_wire_unchanged_and_bad_fields_are_named() -> None:
    d = _decision(datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC))
    assert decision_from_wire(decision_to_wire(d)) == d
    for field, value in (
        ("status", "200"),
        ("stream", "yes"),
        ("attempts", [["a", "b"]]),
        ("tokens_in", -1),
        ("cost_usd", float("nan")),
        ("route", ""),
        ("tag", "x" * 200),
        ("at", "yesterday"),
    ):
        with pytest.raises(WireError) as err:
            decision_from_wire({**decision_to_wire(d), field: value})
        assert err.value.field == field


async def test_reported_decisions_are_written_to_the_control_plane_store(tmp_path: Any) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{tmp_path / 'control.db'}")
    cfg = small_config()
    c = await StubControl(StubControlRuntime(cfg, TablePublisher(table_v(cfg, 4)), store=ListStore(engine))).start()
    d = _decision(c.rt.clock.wall())
    try:
        status, body = await _post(
            c,
            {
                "replica": "d1",
                "observations": [],
                "decisions": [decision_to_wire(d), {**decision_to_wire(d), "status": "x"}],
            },
        )
        assert status == 202 and body["decisions_accepted"] == 1
        assert [(r["index"], r["field"]) for r in body["decisions_rejected"]] == [(1, "status")]
    finally:
        await c.stop()  # a clean stop writes what the log still holds
    (row,) = summarise(engine, "tag", d.at - timedelta(hours=1))
    assert (row["tag"], row["requests"], row["failed_over"], row["tokens_in"], row["cost_usd"]) == (
        "team-a",
        1,
        1,
        10,
        0.001,
    )
    engine.dispose()
