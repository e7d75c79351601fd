"""Issue 4's scenario: three providers behind one route; the primary's provider starts answering
`region_blocked` for the route's model. Within one probe interval the target is withdrawn, the route has a
new primary, and exactly one `target.withdrawn` and one `route.primary_changed` were recorded."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.sim.simulator import Simulator
from controlplane.config_loader import parse_config
from controlplane.control_plane import ControlPlane
from controlplane.domain import State
from tests.fakes import FakeClock

pytestmark = pytest.mark.integration

INTERVAL = 10.0  # the completion probe interval of this test


def _sim_config() -> dict[str, Any]:
    fast = {"port": 0, "latency": "5ms", "ttft": "10ms", "token_rate": 500}
    return {
        "host": "127.0.0.1",
        "admin_port": 0,
        "seed": 1,
        "providers": [
            {"id": "sim-openai", "family": "openai", "api_key": "k1", **fast, "models": [{"name": "gpt-4o"}]},
            {
                "id": "sim-anthropic",
                "family": "anthropic",
                "api_key": "k2",
                **fast,
                "models": [{"name": "claude-sonnet-4"}],
            },
            {"id": "sim-gemini", "family": "gemini", "api_key": "k3", **fast, "models": [{"name": "gemini-2.5-pro"}]},
        ],
    }


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    s = Simulator.from_yaml(_sim_config())
    await s.start()
    yield s
    await s.stop()


async def _run_for(rt: ControlPlane, clock: FakeClock, seconds: float) -> None:
    for _ in range(int(seconds)):
        await rt.scheduler.run_due()
        clock.advance(1)
    await rt.sink.flush()


async def test_region_block_at_the_primary_withdraws_it_and_moves_the_route_once(
    sim: Simulator, tmp_path: Path
) -> None:
    probes = {
        "interval": f"{INTERVAL:g}s",
        "jitter": 0.2,
        "timeout": "5s",
        "kinds": {"catalogue": {"interval": "60s"}, "completion": {"interval": f"{INTERVAL:g}s"}},
    }
    raw = {
        "database": {"url": f"sqlite:///{tmp_path / 't.db'}"},
        "providers": sim.turnout_providers(),
        "probes": probes,
        "routes": [
            {
                "name": "frontier",
                "targets": ["sim-openai/gpt-4o", "sim-anthropic/claude-sonnet-4", "sim-gemini/gemini-2.5-pro"],
            }
        ],
    }
    clock = FakeClock()
    rt = ControlPlane(parse_config(json.dumps(raw), env={}), clock=clock, fire=False, webhooks=False)
    await rt.start()
    try:
        await _run_for(rt, clock, 3 * INTERVAL)  # every target observed healthy a few times
        before = rt.table_source.current().routes["frontier"]
        assert before.primary is not None and all(e.state is State.CLOSED for e in before.entries)
        primary = before.primary.target
        provider, _, model = primary.partition("/")
        last_event = max((e.id or 0 for e in rt.store.list_events(limit=1000)), default=0)

        sim.set_fault(provider, "region_blocked", model=model)
        await _run_for(rt, clock, INTERVAL * 1.2 + 1)  # one probe interval, jitter included

        after = rt.table_source.current()
        assert after.targets[primary].state is State.WITHDRAWN
        assert after.routes["frontier"].primary is not None and after.routes["frontier"].primary.target != primary
        assert "region_blocked" in after.targets[primary].reason
        new = rt.store.list_events(after=last_event, limit=1000)
        withdrawn = [e for e in new if e.type == "target.withdrawn"]
        moved = [e for e in new if e.type == "route.primary_changed"]
        assert [e.subject for e in withdrawn] == [primary]
        assert [e.subject for e in moved] == ["frontier"]
        assert all(e.config_hash == rt.config.hash for e in withdrawn + moved)  # traceable to the config
    finally:
        await rt.stop()


async def _drive(rt: ControlPlane, clock: FakeClock, seconds: float) -> None:
    """What the running control plane does each second: due probes, due rechecks, the health tick."""
    for _ in range(int(seconds)):
        await rt.scheduler.run_due()
        await rt.scheduler.run_due_rechecks()
        await rt.sink.tick()
        clock.advance(1)
    await rt.sink.flush()


async def test_a_long_region_block_is_silent_while_it_stands_and_recovers_with_one_event(
    sim: Simulator, tmp_path: Path
) -> None:
    """Issue 18: completions answer region_blocked while the model list stays healthy. Before, each 3 s recheck
    went withdrawn → half_open on the listing and back on the next completion (12 events in 24 s). Now the
    rechecks are completions, fail silently, and the return is one recovery."""
    raw = {
        "database": {"url": f"sqlite:///{tmp_path / 't.db'}"},
        "providers": sim.turnout_providers(),
        "probes": {
            "interval": "3s",
            "jitter": 0.1,
            "timeout": "5s",
            "kinds": {"catalogue": {"interval": "3s"}, "completion": {"interval": "3s"}},
        },
        "breaker": {"withdrawn_recheck_first": "3s", "withdrawn_recheck": "3s"},
        "routes": [{"name": "frontier", "targets": ["sim-openai/gpt-4o", "sim-anthropic/claude-sonnet-4"]}],
    }
    clock = FakeClock()
    rt = ControlPlane(parse_config(json.dumps(raw), env={}), clock=clock, fire=False, webhooks=False)
    await rt.start()
    target = "sim-openai/gpt-4o"
    try:
        await _drive(rt, clock, 10)
        sim.set_fault("sim-openai", "region_blocked", model="gpt-4o")
        await _drive(rt, clock, 5)
        assert rt.table_source.current().targets[target].state is State.WITHDRAWN
        since = max((e.id or 0 for e in rt.store.list_events(limit=1000)), default=0)
        calls_before = sim.requests("sim-openai", model="gpt-4o")

        await _drive(rt, clock, 24)
        quiet = [e for e in rt.store.list_events(after=since, limit=1000) if e.subject in (target, "frontier")]
        assert quiet == [], [(e.type, e.data.get("reason")) for e in quiet]
        assert rt.table_source.current().targets[target].state is State.WITHDRAWN
        detail = rt.health.target_detail(target)
        assert detail["last_recheck"]["result"] == "region_blocked"
        assert sim.requests("sim-openai", model="gpt-4o") > calls_before, "rechecked by calls meanwhile"
        latest = rt.store.latest_observations(target)
        assert latest["catalogue"].ok, "the model list stayed healthy all along (it used to lift the block)"

        sim.clear_faults()
        await _drive(rt, clock, 15)
        back = [e.type for e in rt.store.list_events(after=since, limit=1000) if e.subject == target]
        assert back.count("target.recovered") == 1 and "target.withdrawn" not in back
        assert rt.table_source.current().targets[target].state is State.CLOSED
    finally:
        await rt.stop()
