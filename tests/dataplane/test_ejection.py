"""In-process local ejection (dataplane/ejection.py), the same mechanism a data replica uses: the first
withdrawing answer takes the target out of this process's candidates at once, before any table is republished;
with `until_published` the ejection ends as soon as a newer table keeps the target out itself, so the breaker,
not our own timer, decides when it comes back. Through the data plane with the openai SDK as the client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime

from controlplane.domain import ErrorClass, Observation, Source, State
from controlplane.table import Table
from dataplane.ejection import EjectingTable, OutlierDetector
from dataplane.proxy import DATA_STATE
from tests.dataplane.conftest import Env
from tests.dataplane.helpers import StaticTables, entry, make_table
from tests.fakes import FakeClock

MSG: list[dict[str, str]] = [{"role": "user", "content": "hi"}]


def _obs(target: str, ec: ErrorClass, status: int | None = None) -> Observation:
    return Observation(
        target=target, at=datetime.now(UTC), source=Source.LIVE, kind="live", error_class=ec, status=status
    )


def _with(table: Table, version: int, target: str, state: State) -> Table:
    targets = {**table.targets, target: entry(target, state, rank=None)}
    return replace(table, version=version, targets=targets)


async def test_the_first_withdrawing_answer_stops_traffic_before_any_republish(
    make_env: Callable[..., Awaitable[Env]],
) -> None:
    env = await make_env()
    env.sim.set_fault("oa", "region_blocked")
    for _ in range(5):
        raw = await env.aclient.chat.completions.with_raw_response.create(model="main", messages=MSG)  # type: ignore[arg-type]
        assert raw.headers["x-turnout-target"] == "ob/gpt-x"
    assert env.requests("oa") == 1  # only the answer that withdrew it: the table (v1) never changed
    assert env.rt.table_source.current().version == 1
    st = env.app[DATA_STATE]
    assert st.ejections is not None and "region_blocked" in st.ejections.ejected()["oa/gpt-x"]
    # the control plane catches up: a newer table withdraws it; our ejection is lifted, the table keeps it out
    withdrawn = entry("oa/gpt-x", State.WITHDRAWN, rank=None)
    env.rt.table_source.table = make_table(env.cfg, 2, overrides={"oa/gpt-x": withdrawn})
    await env.aclient.chat.completions.create(model="main", messages=MSG)  # type: ignore[arg-type]
    assert st.ejections.ejected() == {}
    assert env.requests("oa") == 1
    # and brings it back when the breaker says so, not after our own open_duration
    env.sim.clear_faults()
    env.rt.table_source.table = make_table(env.cfg, 3)
    raw = await env.aclient.chat.completions.with_raw_response.create(model="main", messages=MSG)  # type: ignore[arg-type]
    assert raw.headers["x-turnout-target"] == "oa/gpt-x"


def test_an_ejection_outlives_a_newer_table_that_still_admits_the_target() -> None:
    clock = FakeClock()
    cfg_table = Table(version=1, published_at=datetime(2026, 1, 1, tzinfo=UTC))
    tables = StaticTables(replace(cfg_table, targets={"a/m": entry("a/m"), "b/m": entry("b/m")}))
    d = OutlierDetector(clock, consecutive=3, base=10.0, cap=40.0, until_published=True, who="process")
    source = EjectingTable(tables, d)
    source.current()
    d.record(_obs("a/m", ErrorClass.AUTH, 401))
    assert not source.current().targets["a/m"].admissible
    assert "ejected by this process: auth (401)" in source.current().targets["a/m"].reason
    tables.table = replace(tables.table, version=2)  # republished for another reason: the breaker has not seen it yet
    assert not source.current().targets["a/m"].admissible
    clock.advance(10.1)
    assert source.current().targets["a/m"].admissible  # at most its duration
    # consecutive failures eject too (the breaker-opening kind), and a newer table that opens it lifts ours
    for _ in range(3):
        d.record(_obs("b/m", ErrorClass.SERVER_ERROR, 500))
    assert not source.current().targets["b/m"].admissible
    tables.table = _with(tables.table, 3, "b/m", State.OPEN)
    source.current()
    assert "b/m" not in d.ejected()


def test_without_until_published_a_replicas_ejection_ignores_newer_tables() -> None:
    clock = FakeClock()
    tables = StaticTables(
        Table(version=1, published_at=datetime(2026, 1, 1, tzinfo=UTC), targets={"a/m": entry("a/m")})
    )
    d = OutlierDetector(clock, consecutive=3, base=10.0, cap=40.0)
    source = EjectingTable(tables, d)
    d.record(_obs("a/m", ErrorClass.MODEL_GONE, 404))
    tables.table = _with(tables.table, 2, "a/m", State.WITHDRAWN)
    source.current()
    assert "a/m" in d.ejected()
    assert "ejected by this data replica" in d.apply(_with(tables.table, 2, "a/m", State.CLOSED)).targets["a/m"].reason
