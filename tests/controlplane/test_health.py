"""HealthModel: the pure pipeline end to end, driven by a FakeClock and explicit tick() calls."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from controlplane.config import Config
from controlplane.config_loader import parse_config
from controlplane.domain import ErrorClass, Observation, Scope, Source, State
from controlplane.health import HealthModel, Outcome
from tests.fakes import FakeClock

E = ErrorClass

YAML = """
providers:
  - {id: a, adapter: openai, base_url: "http://a", jurisdiction: us, models: [{name: m}, {name: n}]}
  - {id: b, adapter: anthropic, base_url: "http://b", jurisdiction: eu, models: [{name: m}]}
  - {id: c, adapter: gemini, base_url: "http://c", jurisdiction: cn, models: [{name: m}]}
routes:
  - {name: r, targets: [a/m, b/m, c/m]}
breaker: {consecutive_failures: 3, min_calls: 5, open_duration: 30s, half_open_successes: 2, withdrawn_recheck: 15m}
"""


def config(extra: str = "", **breaker: Any) -> Config:
    text = YAML + extra
    if breaker:
        text = text.replace("breaker: {", "breaker: {" + ", ".join(f"{k}: {v}" for k, v in breaker.items()) + ", ")
    return parse_config(text)


@pytest.fixture
def model(clock: FakeClock) -> HealthModel:
    return HealthModel(config(), clock, rerank_interval=0.0)


def ob(clock: FakeClock, target: str, cls: ErrorClass = E.OK, **kw: Any) -> Observation:
    kw.setdefault("kind", "completion")
    return Observation(target=target, at=clock.wall(), source=kw.pop("source", Source.PROBE), error_class=cls, **kw)


def types(o: Outcome) -> list[str]:
    return [e.type for e in o.events]


def primary(m: HealthModel, route: str = "r") -> str | None:
    p = m.table.routes[route].primary
    return p.target if p else None


def test_initial_table_has_every_target_and_route_order(model: HealthModel) -> None:
    t = model.table
    assert t.version == 1
    assert set(t.targets) == {"a/m", "a/n", "b/m", "c/m"}  # a/n is in no route and still listed
    assert [e.target for e in t.routes["r"].entries] == ["a/m", "b/m", "c/m"]
    assert t.config_hash == model.config.hash


def test_region_block_withdraws_and_fails_over_with_exactly_one_event_each(
    model: HealthModel, clock: FakeClock
) -> None:
    clock.advance(1)
    o = model.ingest(ob(clock, "a/m", E.REGION_BLOCKED, status=403, code="unsupported_country_region_territory"))
    assert types(o) == ["target.state_changed", "target.withdrawn", "route.primary_changed"]
    assert o.table is not None and o.table.version == 2
    assert primary(model) == "b/m"
    entry = o.table.targets["a/m"]
    assert entry.state is State.WITHDRAWN and not entry.admissible
    assert entry.reason == "withdrawn: region_blocked (403 unsupported_country_region_territory) at 00:00:01"
    pc = o.events[-1]
    assert pc.data["from"] == "a/m" and pc.data["to"] == "b/m" and pc.data["reason"].startswith("withdrawn")
    for _ in range(5):  # the same signal again: no new move, event or version
        clock.advance(1)
        again = model.ingest(ob(clock, "a/m", E.REGION_BLOCKED, status=403))
        assert again.events == [] and again.table is None
    assert model.table.version == 2


def test_withdrawn_target_returns_only_through_a_successful_check(model: HealthModel, clock: FakeClock) -> None:
    model.ingest(ob(clock, "a/m", E.MODEL_GONE, status=404))  # seen on a call: a call rechecks it
    assert not model.should_probe("a/m", "completion")
    clock.advance(3600)
    assert model.tick().transitions == []
    assert model.states()["a/m"] is State.WITHDRAWN
    assert model.should_probe("a/m", "completion")
    assert not model.should_probe("a/m", "catalogue")  # a listing cannot see a failing call
    assert model.ingest(ob(clock, "a/m", E.OK, kind="catalogue")).transitions == []
    o = model.ingest(ob(clock, "a/m", E.OK, kind="completion"))
    assert [(t.old, t.new) for t in o.transitions] == [(State.WITHDRAWN, State.HALF_OPEN)]
    assert o.rechecks == [("a/m", "ok")]
    # Its trials are probes, not live traffic: not admissible until they succeed.
    assert not model.table.targets["a/m"].admissible and model.table.targets["a/m"].state is State.HALF_OPEN
    assert model.target_detail("a/m")["probe_trials"] is True


def test_credential_scope_withdraws_every_target_of_that_provider(model: HealthModel, clock: FakeClock) -> None:
    o = model.ingest(ob(clock, "a/m", E.AUTH, status=401, scope=Scope.CREDENTIAL))
    assert sorted(t.target for t in o.transitions) == ["a/m", "a/n"]
    assert types(o).count("target.withdrawn") == 2
    assert model.states()["b/m"] is State.CLOSED
    assert model.target_detail("a/n")["evidence"]["via"] == "a/m"
    assert "via a/m" in model.table.targets["a/n"].reason


def test_target_scope_withdraws_only_that_target(model: HealthModel, clock: FakeClock) -> None:
    model.ingest(ob(clock, "a/m", E.MODEL_GONE, status=404))
    assert model.states()["a/n"] is State.CLOSED


def test_breaker_opens_then_half_opens_on_tick_and_recovers(model: HealthModel, clock: FakeClock) -> None:
    seen: list[str] = []
    for _ in range(3):
        clock.advance(1)
        o = model.ingest(ob(clock, "a/m", E.SERVER_ERROR, status=503))
        seen += types(o)
    assert o.transitions[0].new is State.OPEN
    assert seen.count("route.primary_changed") == 1  # the error rate already cost it the primary
    reason = model.table.targets["a/m"].reason
    assert reason.startswith("open: 3 consecutive failures, last server_error (503), since 00:00:03, retry at 00:00:33")
    clock.advance(29)
    assert model.tick().transitions == []
    clock.advance(1)
    o = model.tick()
    assert [(t.old, t.new) for t in o.transitions] == [(State.OPEN, State.HALF_OPEN)]
    assert o.table is not None and model.table.targets["a/m"].admissible
    clock.advance(1)  # trials are calls begun inside half_open (a 0.3 s call ending at the move began before it)
    model.ingest(ob(clock, "a/m", latency_s=0.3))
    o = model.ingest(ob(clock, "a/m", latency_s=0.3))
    assert "target.recovered" in types(o)
    assert model.states()["a/m"] is State.CLOSED
    assert primary(model) == "b/m"  # recovery alone does not take the primary back (no flapping)


def test_flapping_latency_does_not_flap_the_table(model: HealthModel, clock: FakeClock) -> None:
    for i in range(200):
        clock.advance(0.5)
        fast, slow = (0.40, 0.46) if i % 2 else (0.46, 0.40)
        model.ingest(ob(clock, "a/m", latency_s=fast, ttft_s=0.2))
        model.ingest(ob(clock, "b/m", latency_s=slow, ttft_s=0.2))
        model.ingest(ob(clock, "c/m", latency_s=0.43, ttft_s=0.2))
        model.tick()
    assert model.table.version == 1
    assert primary(model) == "a/m"


def test_a_clearly_better_challenger_takes_over_once(model: HealthModel, clock: FakeClock) -> None:
    changes = []
    for _ in range(20):
        clock.advance(1)
        outcomes = [
            model.ingest(ob(clock, "a/m", latency_s=6.0, ttft_s=3.0)),
            model.ingest(ob(clock, "b/m", latency_s=0.3, ttft_s=0.1)),
            model.ingest(ob(clock, "c/m", latency_s=2.0, ttft_s=1.0)),
            model.tick(),
        ]
        changes += [e for o in outcomes for e in o.events if e.type == "route.primary_changed"]
    assert len(changes) == 1 and changes[0].data["to"] == "b/m"
    assert changes[0].data["reason"] == "outscored by b/m (beyond the margin)"
    assert set(changes[0].data["scores"]) == {"a/m", "b/m"}  # the numbers are evidence, not prose
    assert primary(model) == "b/m"


def test_score_only_changes_do_not_make_a_new_version(model: HealthModel, clock: FakeClock) -> None:
    for i in range(10):
        clock.advance(1)
        o = model.ingest(ob(clock, "a/m", latency_s=0.2 + i * 0.01))
        assert o.table is None
    assert model.table.version == 1


def test_rerank_is_throttled_for_score_drift_but_immediate_for_moves(clock: FakeClock) -> None:
    m = HealthModel(config(), clock, rerank_interval=10.0)
    for _ in range(10):
        m.ingest(ob(clock, "a/m", latency_s=9.0, ttft_s=5.0))
        m.ingest(ob(clock, "b/m", latency_s=0.1, ttft_s=0.1))
    assert primary(m) == "a/m"  # not reranked yet
    o = m.tick()
    assert primary(m) == "b/m" and o.table is not None
    o = m.ingest(ob(clock, "b/m", E.REGION_BLOCKED))
    assert o.table is not None and primary(m) == "a/m"


def test_rate_limit_cools_headroom_and_reranks_at_once(model: HealthModel, clock: FakeClock) -> None:
    o = model.ingest(ob(clock, "a/m", E.RATE_LIMITED, status=429, retry_after_s=20.0))
    assert model.states()["a/m"] is State.CLOSED
    assert o.table is not None and model.table.targets["a/m"].headroom == 0.0
    assert primary(model) == "b/m"
    clock.advance(5)
    model.ingest(ob(clock, "a/m", E.RATE_LIMITED, status=429, retry_after_s=1.0))  # never shortens
    assert model.target_detail("a/m")["headroom"] == 0.0
    clock.advance(16)
    model.tick()
    assert model.target_detail("a/m")["headroom"] is None


def test_route_exhausted_and_recovered_are_announced_once(model: HealthModel, clock: FakeClock) -> None:
    events: list[str] = []
    for t in ("a/m", "b/m", "c/m"):
        events += types(model.ingest(ob(clock, t, E.MODEL_GONE)))
    events += types(model.ingest(ob(clock, "c/m", E.MODEL_GONE)))
    events += types(model.tick())
    assert events.count("route.exhausted") == 1
    assert primary(model) is None
    clock.advance(900)
    events += types(model.ingest(ob(clock, "b/m")))
    events += types(model.ingest(ob(clock, "c/m")))
    assert events.count("route.recovered") == 1
    assert primary(model) == "b/m"


def test_panic_keeps_a_route_serving_when_most_targets_are_open(model: HealthModel, clock: FakeClock) -> None:
    for t in ("a/m", "b/m"):
        for _ in range(3):
            model.ingest(ob(clock, t, E.TIMEOUT))
    rr = model.table.routes["r"]
    assert rr.panic
    assert [e.target for e in rr.entries if e.admissible] == ["c/m", "a/m", "b/m"]


def test_drain_and_undrain_a_target_with_audit_events(model: HealthModel, clock: FakeClock) -> None:
    until = clock.wall() + timedelta(minutes=10)
    o = model.drain(target="a/m", reason="maintenance", until=until, actor="alice")
    assert types(o) == ["target.state_changed", "override.changed", "route.primary_changed"]
    assert o.events[1].data == {
        "action": "drain",
        "target": "a/m",
        "provider": None,
        "reason": "maintenance",
        "until": "2026-01-01T00:10:00Z",
        "actor": "alice",
    }
    e = model.table.targets["a/m"]
    assert e.state is State.DRAINED and not e.admissible
    assert e.reason == "drained: maintenance by alice since 00:00:00 until 00:10:00"
    assert model.should_probe("a/m", "completion")  # drained targets are still probed
    o = model.undrain(target="a/m", actor="alice", reason="done")
    assert [(t.old, t.new) for t in o.transitions] == [(State.DRAINED, State.CLOSED)]
    assert "override.changed" in types(o)
    assert model.undrain(target="a/m", actor="alice").events == []


def test_drain_expires_on_tick(model: HealthModel, clock: FakeClock) -> None:
    model.drain(provider="a", reason="upgrade", until=clock.wall() + timedelta(seconds=60), actor="bob")
    assert model.states()["a/n"] is State.DRAINED
    clock.advance(59)
    assert model.tick().transitions == []
    clock.advance(1)
    o = model.tick()
    assert {t.target for t in o.transitions} == {"a/m", "a/n"}
    assert [e.data["action"] for e in o.events if e.type == "override.changed"] == ["expired", "expired"]
    assert model.states()["a/m"] is State.CLOSED


def test_undrain_returns_a_withdrawn_target_to_withdrawn(model: HealthModel, clock: FakeClock) -> None:
    model.drain(target="a/m", reason="x", until=None, actor="ops")
    o = model.ingest(ob(clock, "a/m", E.REGION_BLOCKED))
    assert o.transitions[0].shadow and o.events == []
    model.undrain(target="a/m", actor="ops")
    assert model.states()["a/m"] is State.WITHDRAWN


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": "zz/m"}, "unknown target 'zz/m'"),
        ({"provider": "zz"}, "unknown provider 'zz'"),
        ({}, "exactly one of"),
        ({"target": "a/m", "provider": "a"}, "exactly one of"),
        ({"target": "a/m", "until": "past"}, "not in the future"),
        ({"target": "a/m", "actor": ""}, "actor is required"),
    ],
)
def test_drain_rejects_bad_requests_clearly(
    model: HealthModel, clock: FakeClock, kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"reason": "r", "until": None, "actor": "ops", **kwargs}
    if args["until"] == "past":
        args["until"] = clock.wall() - timedelta(seconds=1)
    with pytest.raises(ValueError, match=message):
        model.drain(**args)


def test_metrics_only_reports_would_open_but_keeps_admitting(clock: FakeClock) -> None:
    m = HealthModel(config(mode="metrics_only"), clock, rerank_interval=0.0)
    for _ in range(3):
        o = m.ingest(ob(clock, "a/m", E.SERVER_ERROR, status=500))
    assert o.transitions[0].new is State.OPEN
    assert o.events[0].data["evidence"]["would"] is True and o.events[0].data["mode"] == "metrics_only"
    e = m.table.targets["a/m"]
    assert e.state is State.OPEN and e.admissible and e.reason.startswith("would open:")
    assert primary(m) in ("a/m", "b/m")


def test_set_config_keeps_states_adds_closed_drops_removed_and_rechecks_withdrawn(
    model: HealthModel, clock: FakeClock
) -> None:
    model.ingest(ob(clock, "b/m", E.REGION_BLOCKED))
    for _ in range(3):
        model.ingest(ob(clock, "a/m", E.TIMEOUT))
    clock.advance(10)
    new = parse_config(
        YAML.replace("{name: m}, {name: n}", "{name: m}, {name: o}").replace("[a/m, b/m, c/m]", "[a/m, b/m, c/m, a/o]")
    )
    o = model.set_config(new)
    assert model.states() == {"a/m": State.OPEN, "a/o": State.CLOSED, "b/m": State.WITHDRAWN, "c/m": State.CLOSED}
    assert model.should_probe("b/m", "completion")
    assert o.table is not None and "a/n" not in o.table.targets
    assert o.table.config_hash == new.hash


def test_unknown_targets_are_counted_not_fatal(model: HealthModel, clock: FakeClock) -> None:
    o = model.ingest(ob(clock, "nope/x", E.SERVER_ERROR))
    assert o.transitions == [] and model.unknown_observations == 1
    assert not model.should_probe("nope/x", "completion")
    with pytest.raises(KeyError):
        model.target_detail("nope/x")


def test_target_detail_for_the_status_api(model: HealthModel, clock: FakeClock) -> None:
    model.ingest(ob(clock, "a/m", latency_s=0.42, ttft_s=0.1))
    d = model.target_detail("a/m")
    assert d["state"] == "closed" and d["reason"] == "closed: p50 0.42 s, 0% errors"
    assert d["window"]["calls"] == 1 and d["override"] is None
    json.dumps(d)


def test_snapshot_restore_resumes_states_and_version_sequence(model: HealthModel, clock: FakeClock) -> None:
    model.ingest(ob(clock, "a/m", E.REGION_BLOCKED))
    for _ in range(3):
        model.ingest(ob(clock, "b/m", E.TIMEOUT))
    model.drain(target="c/m", reason="x", until=clock.wall() + timedelta(hours=1), actor="ops")
    snap = json.loads(json.dumps(model.snapshot()))
    last = model.table
    clock2 = FakeClock(start=clock.wall() + timedelta(seconds=5))  # a new process: monotonic restarts at 0
    resumed = HealthModel(config(), clock2, snapshot=snap, last_table=last, rerank_interval=0.0)
    assert resumed.states() == model.states()
    assert resumed.table is last  # nothing changed: the same version is kept, not republished as new
    assert resumed.target_detail("b/m")["open_until"] == model.target_detail("b/m")["open_until"]
    clock2.advance(30)
    o = resumed.tick()  # b/m's open duration elapsed across the restart
    assert o.table is not None and o.table.version == last.version + 1
    assert resumed.states()["b/m"] is State.HALF_OPEN


def test_restore_without_last_table_continues_after_the_snapshot_version(model: HealthModel, clock: FakeClock) -> None:
    model.ingest(ob(clock, "a/m", E.REGION_BLOCKED))
    snap = model.snapshot()
    resumed = HealthModel(config(), FakeClock(start=clock.wall()), snapshot=snap)
    assert resumed.table.version == snap["table_version"] + 1
    assert resumed.states()["a/m"] is State.WITHDRAWN


def test_restore_rejects_an_unknown_snapshot_format(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="snapshot format"):
        HealthModel(config(), clock, snapshot={"format": 99})


def test_a_long_region_block_is_rechecked_silently_with_backoff_and_recovers_with_one_event(clock: FakeClock) -> None:
    """Issue 18: completions answer region_blocked while the model list stays healthy. While the block stands,
    rechecks (completion probes, when due) and listings change nothing visible; the delays double from
    withdrawn_recheck_first to withdrawn_recheck; once the block lifts the target returns through probe trials
    with exactly one target.recovered."""
    model = HealthModel(config(withdrawn_recheck_first="60s"), clock, rerank_interval=0.0)
    block = {"status": 403, "code": "unsupported_country_region_territory"}
    o = model.ingest(ob(clock, "a/m", E.REGION_BLOCKED, **block))
    assert types(o).count("target.withdrawn") == 1
    withdrawn_at = clock.monotonic()
    version = model.table.version
    events: list[str] = []
    recheck_times: list[float] = []
    for _ in range(6 * 3600):  # six hours, one second at a time: every probe kind every 3 s
        clock.advance(1)
        events += types(model.tick())
        if int(clock.monotonic()) % 3:
            continue
        events += types(model.ingest(ob(clock, "a/m", E.OK, kind="catalogue")))
        if model.should_probe("a/m", "completion"):
            o = model.ingest(ob(clock, "a/m", E.REGION_BLOCKED, **block))
            events += types(o)
            assert o.rechecks == [("a/m", "region_blocked")]
            recheck_times.append(clock.monotonic() - withdrawn_at)
    assert events == []
    assert model.states()["a/m"] is State.WITHDRAWN and model.table.version == version
    gaps = [b - a for a, b in zip([0.0, *recheck_times], recheck_times, strict=False)]
    # 60, 120, 240, 480 s, then 900 s for good (each due recheck runs at the first probe at or after it).
    assert [round(g / 3) * 3 for g in gaps[:5]] == [60, 120, 240, 480, 900]
    assert all(abs(g - 900) <= 3 for g in gaps[4:])
    assert len(recheck_times) <= 4 + 6 * 3600 // 900
    detail = model.target_detail("a/m")
    assert detail["last_recheck"]["result"] == "region_blocked" and detail["next_recheck"] is not None
    assert detail["evidence"]["code"] == "unsupported_country_region_territory"  # the withdrawing signal kept
    # The block lifts: the next due recheck succeeds, two probe trials close it, one recovery event.
    while not model.should_probe("a/m", "completion"):
        clock.advance(1)
    events = []
    for _ in range(3):
        events += types(model.ingest(ob(clock, "a/m", E.OK, kind="completion")))
        events += types(model.ingest(ob(clock, "a/m", E.OK, kind="live", source=Source.LIVE)))
        clock.advance(3)
    assert model.states()["a/m"] is State.CLOSED
    assert events.count("target.recovered") == 1 and events.count("target.withdrawn") == 0
    assert model.table.targets["a/m"].admissible


def test_withdrawn_recheck_state_survives_a_restart(clock: FakeClock) -> None:
    model = HealthModel(config(withdrawn_recheck_first="60s"), clock, rerank_interval=0.0)
    model.ingest(ob(clock, "a/m", E.REGION_BLOCKED, status=403))
    for _ in range(3):  # three failed rechecks: the next is 480 s out
        clock.advance(1000)
        model.ingest(ob(clock, "a/m", E.REGION_BLOCKED, status=403))
    again = HealthModel(config(withdrawn_recheck_first="60s"), clock, snapshot=json.loads(json.dumps(model.snapshot())))
    clock.advance(479)
    assert not again.should_probe("a/m", "completion")
    clock.advance(1)
    assert again.should_probe("a/m", "completion") and not again.should_probe("a/m", "catalogue")
    assert again.target_detail("a/m")["last_recheck"]["result"] == "region_blocked"
