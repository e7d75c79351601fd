"""Property tests over random observation / operator sequences (hypothesis)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controlplane.config import Config
from controlplane.config_loader import parse_config
from controlplane.domain import ErrorClass, Observation, Scope, Source, State
from controlplane.health import HealthModel, Outcome
from controlplane.moves import ALLOWED, OPERATOR_ALLOWED
from tests.fakes import FakeClock

TARGETS = ("a/m", "a/n", "b/m", "c/m", "d/m")

YAML = """
providers:
  - {id: a, adapter: openai, base_url: "http://a", jurisdiction: us, models: [{name: m}, {name: n, price: {output: 50}}]}
  - {id: b, adapter: openai, base_url: "http://b", jurisdiction: eu, models: [{name: m}]}
  - {id: c, adapter: openai, base_url: "http://c", jurisdiction: cn, models: [{name: m}]}
  - {id: d, adapter: openai, base_url: "http://d", jurisdiction: us, zero_retention: true, models: [{name: m}]}
routes:
  - {name: r, targets: [a/m, b/m, c/m, d/m], policy: {deny_jurisdictions: [cn]}}
  - {name: strict, targets: [a/m, a/n, d/m], policy: {require_zero_retention: true}, panic_threshold: 1.0}
  - {name: cheap, targets: [a/n, b/m, c/m], policy: {max_price: 10}}
breaker: {consecutive_failures: 2, min_calls: 3, open_duration: 5s, open_duration_max: 40s, half_open_trials: 2,
          half_open_successes: 2, withdrawn_recheck: 60s, overload_cooldown: 2s, mode: MODE}
"""


def config(metrics_only: bool) -> Config:
    return parse_config(YAML.replace("MODE", "metrics_only" if metrics_only else "enforce"))


obs_op = st.tuples(
    st.just("obs"),
    st.sampled_from(TARGETS),
    st.sampled_from(list(ErrorClass)),
    st.one_of(st.none(), st.floats(0.01, 30)),
    st.one_of(st.none(), st.floats(0, 120)),
    st.sampled_from(list(Scope)),
    st.floats(0, 20),
)
tick_op = st.tuples(st.just("tick"), st.floats(0, 60))
drain_op = st.tuples(st.just("drain"), st.sampled_from(TARGETS), st.one_of(st.none(), st.floats(1, 300)))
undrain_op = st.tuples(st.just("undrain"), st.sampled_from(TARGETS))
ops = st.lists(st.one_of(obs_op, obs_op, obs_op, tick_op, drain_op, undrain_op), max_size=80)


def run(
    ops_: list[tuple[Any, ...]], metrics_only: bool
) -> tuple[HealthModel, FakeClock, list[Outcome], list[tuple[Any, ...]]]:
    clock = FakeClock()
    m = HealthModel(config(metrics_only), clock, rerank_interval=0.0)
    outs: list[Outcome] = []
    for op in ops_:
        kind = op[0]
        if kind == "obs":
            _, t, cls, lat, ra, scope, dt = op
            clock.advance(dt)
            o = Observation(
                target=t,
                at=clock.wall(),
                source=Source.PROBE,
                kind="completion",
                error_class=cls,
                latency_s=lat,
                retry_after_s=ra,
                scope=scope,
                status=500,
            )
            outs.append(m.ingest(o))
        elif kind == "tick":
            clock.advance(op[1])
            outs.append(m.tick())
        elif kind == "drain":
            until = None if op[2] is None else clock.wall() + timedelta(seconds=op[2])
            outs.append(m.drain(target=op[1], reason="prop", until=until, actor="hypothesis"))
        else:
            outs.append(m.undrain(target=op[1], actor="hypothesis"))
        check_table(m, metrics_only)
    return m, clock, outs, ops_


def check_table(m: HealthModel, metrics_only: bool) -> None:
    t = m.table
    for rr in t.routes.values():
        for e in rr.entries:
            if e.excluded_by is not None:
                assert not e.admissible, f"{e.target} excluded by {e.excluded_by} yet admissible"
            if e.state is State.DRAINED or (e.state is State.WITHDRAWN and not metrics_only):
                assert not e.admissible, f"{e.target} {e.state} yet admissible"
        admitted = [e.rank for e in rr.entries if e.admissible]
        assert admitted == list(range(1, len(admitted) + 1))
    assert not any(e.admissible for e in t.routes["r"].entries if e.target == "c/m")
    assert not any(e.admissible for e in t.routes["strict"].entries if e.target != "d/m")
    assert not any(e.admissible for e in t.routes["cheap"].entries if e.target == "a/n")


# database=None: no .hypothesis directory in the working directory (tests write nothing to cwd)
SETTINGS = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(ops, st.booleans())
def test_no_illegal_transition_and_moves_are_consistent(ops_: list[tuple[Any, ...]], metrics_only: bool) -> None:
    m, _, outs, _ = run(ops_, metrics_only)  # IllegalTransition would have raised
    effective = {t: State.CLOSED for t in TARGETS}
    for o in outs:
        for tr in o.transitions:
            assert (tr.old, tr.new) in ALLOWED | OPERATOR_ALLOWED
            if tr.shadow:
                continue
            assert effective[tr.target] is tr.old, f"{tr.target}: moved from {tr.old}, was {effective[tr.target]}"
            effective[tr.target] = tr.new
    assert effective == m.states()


@SETTINGS
@given(ops)
def test_withdrawn_leaves_only_through_a_successful_check_or_an_operator(ops_: list[tuple[Any, ...]]) -> None:
    _, _, outs, done = run(ops_, False)
    for op, o in zip(done, outs, strict=True):
        for tr in o.transitions:
            if tr.old is State.WITHDRAWN and not tr.shadow and tr.new is not State.DRAINED:
                assert op[0] == "obs" and op[2] is ErrorClass.OK


@SETTINGS
@given(ops, st.booleans())
def test_table_versions_strictly_increase(ops_: list[tuple[Any, ...]], metrics_only: bool) -> None:
    m, _, outs, _ = run(ops_, metrics_only)
    versions = [1] + [o.table.version for o in outs if o.table is not None]
    assert all(b == a + 1 for a, b in zip(versions, versions[1:], strict=False))
    assert m.table.version == versions[-1]


@SETTINGS
@given(ops, st.booleans())
def test_snapshot_restore_gives_the_same_states(ops_: list[tuple[Any, ...]], metrics_only: bool) -> None:
    m, clock, _, _ = run(ops_, metrics_only)
    snap = json.loads(json.dumps(m.snapshot()))
    restored = HealthModel(config(metrics_only), FakeClock(start=clock.wall()), snapshot=snap, last_table=m.table)
    assert restored.states() == m.states()
    assert restored.table.version >= m.table.version
    for t in TARGETS:
        a, b = m.target_detail(t), restored.target_detail(t)
        for k in ("state", "detector_state", "since", "open_until", "next_recheck", "override", "evidence"):
            assert a[k] == b[k], (t, k)
