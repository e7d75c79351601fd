"""A running Turnout in front of the provider simulator, driven through a failover, for the integration tests.

Real parts: the simulator (adapters.sim), controlplane.control_plane.ControlPlane (store on SQLite in tmp_path, health
model, publisher, pipeline, probe scheduler running the real completion probe against the simulator), the
control app (status API, status page, /metrics) and the data plane (dataplane.proxy) on free loopback ports.
The clock is a FakeClock the scenario advances; probe runs are started by calling the scheduler's job body.
Webhook series come from the real dispatcher delivering to two local receivers (one answers 200, one 500 so a
real backlog builds). One series comes from the test itself: scheduler lag, observed only when APScheduler fires
a job, and here probe runs are started by hand (tests/controlplane/test_scheduler.py shows the real scheduler
feeding it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from adapters.sim import Simulator
from controlplane.api.app import build_control_app
from controlplane.clock import FakeClock
from controlplane.config_loader import parse_config
from controlplane.control_plane import ControlPlane
from controlplane.domain import State
from dataplane.proxy import build_data_app
from tests.support import free_port, serve_app

__all__ = ["KEY", "SIM", "TARGETS", "Turnout", "Traffic", "running_turnout"]

KEY = "sim-metrics-key"
ADMIN = "metrics-admin-token"
BACKLOG = 105  # test messages to the failing receiver: TurnoutWebhookBacklog fires above 100
SIM: dict[str, Any] = {
    "seed": 7,
    "providers": [
        {"id": "openai", "family": "openai", "api_key": KEY, "models": [{"name": "gpt-4o"}, {"name": "gpt-4o-mini"}]},
        {"id": "anthropic", "family": "anthropic", "api_key": KEY, "models": [{"name": "claude-sonnet-4"}]},
        {"id": "deepseek", "family": "openai", "api_key": KEY, "models": [{"name": "deepseek-chat"}]},
    ],
}
TARGETS = ("openai/gpt-4o", "openai/gpt-4o-mini", "anthropic/claude-sonnet-4", "deepseek/deepseek-chat")
ROUTES = ("frontier", "cheap-fast", "mini")
MSG = {"messages": [{"role": "user", "content": "hi"}]}


def _config(sim: Simulator, db: Path) -> str:
    def provider(pid: str, adapter: str, models: str) -> str:
        return f'  - {{id: {pid}, adapter: {adapter}, base_url: "{sim.base_url(pid)}", api_key: "${{SIM_KEY}}", models: [{models}]}}'

    return "\n".join(
        [
            f'database: {{url: "sqlite:///{db}"}}',
            "providers:",
            provider("openai", "openai", "{name: gpt-4o, price: {input: 2.5, output: 10}}, {name: gpt-4o-mini}"),
            provider("anthropic", "anthropic", "{name: claude-sonnet-4, price: {input: 3, output: 15}}"),
            provider("deepseek", "openai", "{name: deepseek-chat}"),
            "routes:",
            "  - {name: frontier, targets: [openai/gpt-4o, anthropic/claude-sonnet-4, deepseek/deepseek-chat]}",
            "  - {name: cheap-fast, targets: [deepseek/deepseek-chat]}",
            "  - {name: mini, targets: [openai/gpt-4o-mini, anthropic/claude-sonnet-4]}",
            "probes: {interval: 30s, kinds: {completion: {interval: 30s}}}",
            "dataplane: {first_byte_timeout: 2s, stall_timeout: 2s, total_timeout: 8s, connect_timeout: 1s}",
            'auth: {tokens: [{token: "${ADMIN}", scope: admin}]}',
            'webhooks: {allow_private_networks: ["127.0.0.0/8"]}',
            "",
        ]
    )


@dataclass
class Turnout:
    url: str  # the control app
    data_url: str  # the data plane
    rt: ControlPlane
    sim: Simulator
    clock: FakeClock
    session: aiohttp.ClientSession
    webhooks: dict[str, str]  # receiver name ("ok", "down") -> endpoint id

    async def admin_post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        async with self.session.post(
            f"{self.url}{path}", json=body or {}, headers={"Authorization": f"Bearer {ADMIN}"}
        ) as resp:
            assert resp.status < 300, (path, resp.status, await resp.text())
            doc: dict[str, Any] = await resp.json() if resp.content_type == "application/json" else {}
            return doc

    async def webhook_backlog(self, n: int = BACKLOG) -> None:
        """Queue test messages to the receiver that answers 500: the head fails, the rest wait behind it."""
        for _ in range(n):
            await self.admin_post(f"/api/v1/webhooks/{self.webhooks['down']}/test")

    async def probe_all(self) -> None:
        for t in TARGETS:
            await self.rt.scheduler.run_probe_job(t, "completion")
        await self.rt.sink.flush()

    async def request(self, route: str, *, stream: bool = False) -> int:
        """One client request through the data plane; returns the HTTP status."""
        async with self.session.post(
            f"{self.data_url}/v1/chat/completions", json={"model": route, "stream": stream, **MSG}
        ) as resp:
            await resp.read()
            return resp.status

    async def failover_scenario(self) -> None:
        """Healthy → deepseek withdrawn (region block) → openai/gpt-4o opens on 5xx; clients keep calling."""
        for _ in range(4):
            await self.probe_all()
            for route in ROUTES:
                assert await self.request(route) == 200
            self.clock.advance(5)
        self.sim.set_fault("deepseek", "region_blocked")
        self.sim.set_fault("openai", "server_error", model="gpt-4o")
        await self.sim.tick()
        for _ in range(6):
            await self.probe_all()
            for route in ROUTES:
                await self.request(route, stream=route == "mini")
            await self.rt.sink.flush()
            self.clock.advance(1)
        states = self.rt.health.states()
        assert states["deepseek/deepseek-chat"] is State.WITHDRAWN and states["openai/gpt-4o"] is State.OPEN, states


class Traffic:
    """Steady client load while Prometheus scrapes, so histograms and counters move between samples."""

    def __init__(self, t: Turnout) -> None:
        self.t = t

    async def step(self) -> None:
        for route in ROUTES:
            await self.t.request(route, stream=route == "mini")
        await self.t.admin_post(f"/api/v1/webhooks/{self.t.webhooks['ok']}/test")  # delivered at once
        # Probe runs are started by hand here, so APScheduler never measures a late start (see the module docstring).
        self.t.rt.metrics.scheduler_lag_seconds.observe(8.0)
        await self.t.probe_all()

    async def run(self, period: float = 0.25) -> None:
        while True:
            await self.step()
            await asyncio.sleep(period)  # paces the load generator; nothing waits on this for a decision


@contextlib.asynccontextmanager
async def running_turnout(tmp_path: Path) -> AsyncIterator[Turnout]:
    clock = FakeClock()
    async with Simulator.from_yaml(SIM, clock=FakeClock(), admin=False) as sim:
        config = parse_config(_config(sim, tmp_path / "turnout.db"), env={"SIM_KEY": KEY, "ADMIN": ADMIN})
        rt = ControlPlane(config, clock=clock, fire=False, webhooks=True)
        await rt.start()
        runners: list[Any] = []
        try:
            receivers = {}
            for name, status in (("ok", 200), ("down", 500)):

                async def answer(_request: web.Request, status: int = status) -> web.Response:
                    return web.Response(status=status)

                receiver = web.Application()
                receiver.router.add_post("/hook", answer)
                runner = web.AppRunner(receiver, shutdown_timeout=1.0)
                await runner.setup()
                runners.append(runner)
                port = free_port()
                await web.TCPSite(runner, "127.0.0.1", port).start()
                receivers[name] = f"http://127.0.0.1:{port}/hook"
            urls = []
            for app in (build_control_app(rt), build_data_app(rt)):
                runner, port = await serve_app(app)
                runners.append(runner)
                urls.append(f"http://127.0.0.1:{port}")
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
                turnout = Turnout(urls[0], urls[1], rt, sim, clock, session, {})
                for name, url in receivers.items():
                    created = await turnout.admin_post(
                        "/api/v1/webhooks", {"url": url, "description": f"metrics test ({name})"}
                    )
                    turnout.webhooks[name] = created["id"]
                yield turnout
        finally:
            sim.clear_faults()
            for runner in reversed(runners):
                await runner.cleanup()
            await rt.stop()
