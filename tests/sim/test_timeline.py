"""The fault timeline runs on the injected clock: tests advance it; nothing sleeps."""

from __future__ import annotations

import aiohttp
import pytest

from adapters.sim import Simulator
from tests.fakes import FakeClock
from tests.sim.conftest import SIM_CONFIG, call

pytestmark = pytest.mark.integration

TIMELINE = [
    {"at": "30s", "provider": "oa", "model": "gpt-x", "fault": "region_blocked", "duration": "60s"},
    {"at": "40s", "provider": "an", "fault": "refused", "duration": "5s"},
    {"at": "50s", "provider": "gg", "fault": "overloaded"},
    {"at": "70s", "provider": "gg", "clear": True},
]


async def test_timeline_switches_faults_on_and_off_as_the_clock_passes(http: aiohttp.ClientSession) -> None:
    async with Simulator.from_yaml({**SIM_CONFIG, "timeline": TIMELINE}, clock=FakeClock()) as sim:
        assert (await call(http, sim, "oa"))[0] == 200
        await sim.advance(29.9)
        assert (await call(http, sim, "oa"))[0] == 200
        await sim.advance(0.1)  # t=30: gpt-x is region-blocked, gpt-y is not
        status, _, body = await call(http, sim, "oa")
        assert status == 403 and b"unsupported_country_region_territory" in body
        assert (await call(http, sim, "oa", model="gpt-y"))[0] == 200
        await sim.advance(10)  # t=40: anthropic's listener closes
        with pytest.raises(aiohttp.ClientConnectorError):
            await call(http, sim, "an")
        await sim.advance(5)  # t=45: and reopens
        assert (await call(http, sim, "an"))[0] == 200
        await sim.advance(5)  # t=50
        assert (await call(http, sim, "gg"))[0] == 503
        await sim.advance(20)  # t=70: cleared by the timeline
        assert (await call(http, sim, "gg"))[0] == 200
        await sim.advance(20)  # t=90: the 60 s region block ended
        assert (await call(http, sim, "oa"))[0] == 200
        assert sim.timeline.to_json()["fired"] == 4


async def test_a_late_tick_still_ends_a_fault_on_schedule(http: aiohttp.ClientSession) -> None:
    """Durations count from the entry's `at`, not from when the tick noticed it."""
    async with Simulator.from_yaml({**SIM_CONFIG, "timeline": TIMELINE[:1]}, clock=FakeClock()) as sim:
        await sim.advance(89)  # one jump past `at`: the fault is on, ending at t=90
        assert (await call(http, sim, "oa"))[0] == 403
        await sim.advance(1)
        assert (await call(http, sim, "oa"))[0] == 200


async def test_timeline_waits_for_start_when_autostart_is_off(http: aiohttp.ClientSession) -> None:
    cfg = {**SIM_CONFIG, "timeline": TIMELINE[:1], "timeline_autostart": False}
    async with Simulator.from_yaml(cfg, clock=FakeClock()) as sim:
        await sim.advance(100)
        assert (await call(http, sim, "oa"))[0] == 200
        sim.timeline.start()
        await sim.advance(30)
        assert (await call(http, sim, "oa"))[0] == 403
        sim.timeline.stop()
        sim.reset()  # faults cleared; autostart off keeps the timeline stopped
        await sim.advance(30)
        assert (await call(http, sim, "oa"))[0] == 200 and not sim.timeline.running


async def test_advance_needs_an_injected_clock() -> None:
    sim = Simulator.from_yaml(SIM_CONFIG, admin=False)
    with pytest.raises(TypeError, match="injected clock"):
        await sim.advance(1)
