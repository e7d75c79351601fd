"""A panel route on the real control plane (store → breaker → ranker → table): a member's live outcome
withdraws its target, and the next panel is drawn from the new table without it."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from adapters.sim import Simulator
from controlplane.control_plane import ControlPlane
from controlplane.domain import State
from dataplane.proxy import build_data_app
from tests.fakes import FakeClock
from tests.panel.conftest import MSG, Relay, parse, turnout_yaml
from tests.support import serve_app

pytestmark = pytest.mark.integration


async def test_withdrawn_member_leaves_the_table_and_the_next_panel(sim: Simulator, tmp_path: Path) -> None:
    judge, synth = Relay(sim.root_url("jd")), Relay(sim.root_url("sy"))
    await judge.start()
    await synth.start()
    cfg = parse(
        turnout_yaml(
            sim, judge.url("/v1"), synth.url("/v1"), extra=f'database: {{url: "sqlite:///{tmp_path / "t.db"}"}}'
        )
    )
    rt = ControlPlane(cfg, clock=FakeClock(), probes=False, webhooks=False, fire=False)
    await rt.start()
    app = build_data_app(rt)
    runner, port = await serve_app(app)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    try:
        async with aiohttp.ClientSession() as s:
            sim.set_fault("an", "region_blocked")
            async with s.post(url, json={"model": "fusion", "messages": MSG}) as resp:
                assert resp.status == 200, await resp.text()
                # The real ranker orders each source route (price counts): only the set is fixed here.
                assert set(resp.headers["x-turnout-panel-members"].split(",")) == {"oa/gpt-x", "ob/gpt-x", "gg/gem-x"}
            await rt.sink.flush()
            assert rt.table_source.current().targets["an/claude-x"].state is State.WITHDRAWN
            seen = sim.requests("an")
            async with s.post(url, json={"model": "fusion", "messages": MSG}, headers={"x-turnout-debug": "1"}) as resp:
                assert resp.status == 200
                trail = json.loads(resp.headers["x-turnout-decision"])
            assert sim.requests("an") == seen  # not asked again: the panel is drawn from admissible targets only
            assert sorted(m["target"] for m in trail["members"]) == ["gg/gem-x", "oa/gpt-x", "ob/gpt-x"]
            assert any(sk["target"] == "an/claude-x" for sk in trail["skipped"])
    finally:
        await runner.cleanup()
        await rt.stop()
        await judge.stop()
        await synth.stop()
