"""A credential/egress-scoped block fanned out to a provider's siblings, and its refutation by a sibling's own recheck.

Issue 18, item 1: `make demo` showed gemini-2.5-flash, withdrawn by the egress-scoped region block of its sibling
gemini-2.5-pro, pass its own recheck (withdrawn → half_open) and be withdrawn again by pro's next observation of its
standing block: two events and webhooks per recheck for as long as pro's block stood. A sibling's successful recheck
now refutes that spread until the source leaves withdrawn or the sibling's own calls see a block.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controlplane.config import Config
from controlplane.config_loader import parse_config
from controlplane.domain import ErrorClass, Observation, Scope, Source, State
from controlplane.health import HealthModel, Outcome
from tests.fakes import FakeClock

E = ErrorClass
S, SIB = "g/pro", "g/flash"  # the blocked source and its sibling at the same provider

YAML = """
providers:
  - {id: g, adapter: gemini, base_url: "http://g", jurisdiction: us, models: [{name: pro}, {name: flash}]}
  - {id: b, adapter: anthropic, base_url: "http://b", jurisdiction: eu, models: [{name: m}]}
routes:
  - {name: frontier, targets: [g/pro, b/m]}
  - {name: cheap, targets: [g/flash, b/m]}
breaker: {half_open_successes: 2, withdrawn_recheck_first: 60s, withdrawn_recheck: 15m}
"""
BLOCK = {"status": 400, "code": "FAILED_PRECONDITION"}


def config() -> Config:
    return parse_config(YAML)


def ob(clock: FakeClock, target: str, cls: ErrorClass = E.OK, **kw: Any) -> Observation:
    kw.setdefault("kind", "completion")
    return Observation(target=target, at=clock.wall(), source=kw.pop("source", Source.PROBE), error_class=cls, **kw)


def blocked(clock: FakeClock, target: str = S) -> Observation:
    """The region block as the Gemini adapter reports it: reaching every target of the provider (egress)."""
    return ob(clock, target, E.REGION_BLOCKED, scope=Scope.EGRESS, **BLOCK)


def seen(o: Outcome) -> list[tuple[str, str, str]]:
    """(event type, target, to-state) for every event: what a webhook receiver is sent."""
    return [(e.type, e.subject, str(e.data.get("to"))) for e in o.events]


def withdrawn_by_spread(clock: FakeClock) -> HealthModel:
    model = HealthModel(config(), clock, rerank_interval=0.0)
    o = model.ingest(blocked(clock))
    assert [t.target for t in o.transitions if t.new is State.WITHDRAWN] == [S, SIB]
    assert model.target_detail(SIB)["evidence"]["via"] == S
    return model


def run_block(model: HealthModel, clock: FakeClock, seconds: int, sibling: ErrorClass = E.OK) -> list[Any]:
    """`seconds` of a standing block: every 3 s the source answers its block (every observation, due or not, is
    fanned out: the worst case) and the sibling is probed whenever it may be, answering `sibling`."""
    events: list[Any] = []
    for _ in range(seconds):
        clock.advance(1)
        events += seen(model.tick())
        if int(clock.monotonic()) % 3:
            continue
        events += seen(model.ingest(blocked(clock)))
        if model.should_probe(SIB, "completion"):
            events += seen(model.ingest(ob(clock, SIB, sibling)))
    return events


def test_a_refuted_spread_gives_one_withdrawal_one_recovery_and_then_silence(clock: FakeClock) -> None:
    model = withdrawn_by_spread(clock)
    events = run_block(model, clock, 6 * 3600)
    assert events == [
        ("target.state_changed", SIB, "half_open"),  # its own recheck succeeded after withdrawn_recheck_first
        ("target.state_changed", SIB, "closed"),  # two probe trials
        ("target.recovered", SIB, "closed"),
    ]
    assert model.states() == {S: State.WITHDRAWN, SIB: State.CLOSED, "b/m": State.CLOSED}
    assert model.target_detail(SIB)["refuted_spreads"] == [S]
    assert model.table.targets[SIB].admissible


def test_a_spread_is_not_the_siblings_recheck(clock: FakeClock) -> None:
    """The source's observation fanned out while the sibling's recheck is due neither counts as its recheck nor
    pushes that recheck out: only the sibling's own call can refute the spread."""
    model = withdrawn_by_spread(clock)
    clock.advance(60)
    model.ingest(blocked(clock))
    assert model.target_detail(SIB)["last_recheck"] is None and model.should_probe(SIB, "completion")
    o = model.ingest(ob(clock, SIB))
    assert o.rechecks == [(SIB, "ok")] and model.states()[SIB] is State.HALF_OPEN


def test_the_source_leaving_withdrawn_and_blocking_again_spreads_again(clock: FakeClock) -> None:
    model = withdrawn_by_spread(clock)
    run_block(model, clock, 3600)
    assert model.states()[SIB] is State.CLOSED
    while not model.should_probe(S, "completion"):  # the block lifts: the source's next recheck succeeds
        clock.advance(1)
    o = model.ingest(ob(clock, S))
    assert [(t.target, t.new) for t in o.transitions] == [(S, State.HALF_OPEN)]
    assert model.target_detail(SIB)["refuted_spreads"] == []
    clock.advance(3)
    o = model.ingest(blocked(clock))  # a new directive: its first trial meets the block, fanned out again
    assert [(t.target, t.new) for t in o.transitions] == [(S, State.WITHDRAWN), (SIB, State.WITHDRAWN)]
    assert ("target.withdrawn", SIB, "withdrawn") in seen(o)
    assert model.target_detail(SIB)["evidence"]["via"] == S


def test_the_sibling_seeing_the_block_itself_is_withdrawn_and_the_refutation_ends(clock: FakeClock) -> None:
    model = withdrawn_by_spread(clock)
    run_block(model, clock, 600)
    assert model.states()[SIB] is State.CLOSED
    clock.advance(1)
    o = model.ingest(ob(clock, SIB, E.REGION_BLOCKED, **BLOCK))  # on its own call, even target-scoped
    assert [(t.target, t.new) for t in o.transitions] == [(SIB, State.WITHDRAWN)]
    assert model.target_detail(SIB)["evidence"]["via"] is None
    assert model.target_detail(SIB)["refuted_spreads"] == []
    # While its own block stands its rechecks fail silently, like any withdrawal's.
    assert run_block(model, clock, 3600, sibling=E.REGION_BLOCKED) == []
    assert model.states()[SIB] is State.WITHDRAWN


def test_the_refutation_survives_a_restart(clock: FakeClock) -> None:
    model = withdrawn_by_spread(clock)
    run_block(model, clock, 600)
    snap = json.loads(json.dumps(model.snapshot()))
    assert snap["targets"][SIB]["refuted_spreads"] == [S]
    again = HealthModel(config(), clock, snapshot=snap, last_table=model.table, rerank_interval=0.0)
    assert again.target_detail(SIB)["refuted_spreads"] == [S]
    assert run_block(again, clock, 3600) == []
    assert again.states()[SIB] is State.CLOSED


def test_removing_the_source_from_the_config_drops_its_refutation(clock: FakeClock) -> None:
    model = withdrawn_by_spread(clock)
    run_block(model, clock, 600)
    model.set_config(parse_config(YAML.replace("{name: pro}, ", "").replace("g/pro, ", "")))
    assert model.target_detail(SIB)["refuted_spreads"] == []


# -- any interleaving ----------------------------------------------------------------------------------------------

source_op = st.tuples(st.just("source"), st.sampled_from([E.REGION_BLOCKED, E.OK]), st.integers(0, 400))
sibling_op = st.tuples(st.just("sibling"), st.sampled_from([E.OK, E.OK, E.REGION_BLOCKED]), st.integers(0, 400))
restart_op = st.tuples(st.just("restart"), st.just(E.OK), st.just(0))
interleavings = st.lists(st.one_of(source_op, source_op, sibling_op, sibling_op, restart_op), max_size=60)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(interleavings)
def test_a_refuted_spread_returns_only_after_the_source_leaves_withdrawn_or_the_sibling_sees_a_block(
    ops: list[tuple[str, ErrorClass, int]],
) -> None:
    """For any order of the source's observations (its block, its recovery), the sibling's own calls (successes,
    its own block) and restarts: once the sibling's own recheck has refuted a spread from the source, the source's
    block is not spread to it again until the source leaves withdrawn or the sibling's own call sees a block; and
    without a refutation the source's block always reaches it."""
    clock = FakeClock()
    model = withdrawn_by_spread(clock)
    refuted = False
    for who, cls, dt in ops:
        clock.advance(dt)
        if who == "restart":
            snap = json.loads(json.dumps(model.snapshot()))
            model = HealthModel(config(), clock, snapshot=snap, last_table=model.table, rerank_interval=0.0)
            continue
        via_before = model.target_detail(SIB)["evidence"].get("via")
        before = model.states()[SIB]
        if who == "source":
            o = model.ingest(blocked(clock) if cls is E.REGION_BLOCKED else ob(clock, S))
        else:
            o = model.ingest(ob(clock, SIB, cls, **(BLOCK if cls is E.REGION_BLOCKED else {})))
        for tr in o.transitions:
            if tr.target == S and tr.old is State.WITHDRAWN:
                refuted = False
            if tr.target == SIB and tr.new is State.WITHDRAWN and tr.evidence.via == S:
                assert not refuted, f"spread from {S} again after the sibling refuted it: {ops}"
            if tr.target == SIB and tr.old is State.WITHDRAWN and via_before == S:
                refuted = True  # its own recheck succeeded on a withdrawal fanned out from the source
        if who == "sibling" and cls is E.REGION_BLOCKED:
            refuted = False
        if who == "source" and cls is E.REGION_BLOCKED and not refuted and before is not State.WITHDRAWN:
            assert model.states()[SIB] is State.WITHDRAWN, f"the source's block did not reach the sibling: {ops}"
        assert model.target_detail(SIB)["refuted_spreads"] == ([S] if refuted else [])
