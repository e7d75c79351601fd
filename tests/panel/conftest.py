"""A panel route in front of the provider simulator: six simulated providers with fixed answers; the real
data plane (its proxy hands panel routes to dataplane.panel.run) with a stand-in runtime (static table, list
sink, optional decision-log store); recording relays in front of the judge and the synthesizer, so a test
sees exactly what each was sent."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from aiohttp import web

from adapters.sim import Simulator
from controlplane.config import Config
from controlplane.config_loader import parse_config
from dataplane.http.messages import App
from dataplane.proxy import build_data_app
from tests.dataplane.helpers import Rt, StaticTables, make_table
from tests.fakes import FakeClock
from tests.support import free_port, serve_app

KEY = "sim-panel-key"

ANSWERS = {
    "oa": "Paris is the capital of France (oa).",
    "ob": "The capital of France is Paris (ob).",
    "an": "France's capital city is Paris (an).",
    "gg": "Paris, on the Seine, is the capital (gg).",
    "jd": "ANALYSIS: all answers agree on Paris; no contradictions.",
    "sy": "FINAL: Paris is the capital of France.",
}
MODELS = {"oa": "gpt-x", "ob": "gpt-x", "an": "claude-x", "gg": "gem-x", "jd": "judge-x", "sy": "synth-x"}
FAMILY = {"an": "anthropic", "gg": "gemini"}
# USD per million tokens (input, output): distinct, so a wrong attribution shows in the cost.
PRICES = {"oa": (2, 8), "ob": (1, 4), "an": (3, 15), "gg": (0.5, 1), "jd": (5, 20), "sy": (4, 16)}

SIM: dict[str, Any] = {
    "seed": 1,
    "providers": [
        {
            "id": p,
            "family": FAMILY.get(p, "openai"),
            "api_key": KEY,
            "models": [{"name": MODELS[p], "answer": ANSWERS[p]}],
        }
        for p in ANSWERS
    ],
}

MSG: Any = [{"role": "user", "content": "What is the capital of France?"}]  # Any: SDK message params and plain JSON


@dataclass
class Relay:
    """A recording HTTP relay in front of one simulated provider: every request body is kept, then forwarded."""

    upstream: str  # the provider's root URL
    bodies: list[dict[str, Any]] = field(default_factory=list)
    runner: web.AppRunner | None = None
    session: aiohttp.ClientSession | None = None
    port: int = 0

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self.runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self.runner.setup()
        self.port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.runner is not None:
            await self.runner.cleanup()

    def url(self, suffix: str) -> str:
        return f"http://127.0.0.1:{self.port}{suffix}"

    def prompt(self, i: int = -1) -> str:
        """All message text of the i-th recorded request."""
        return "\n".join(str(m.get("content")) for m in self.bodies[i]["messages"])

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if raw:
            self.bodies.append(orjson.loads(raw))
        assert self.session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self.session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=raw
        ) as up:
            resp = web.StreamResponse(
                status=up.status,
                headers={
                    k: v for k, v in up.headers.items() if k.lower() not in ("content-length", "transfer-encoding")
                },
            )
            await resp.prepare(request)
            async for data in up.content.iter_any():
                await resp.write(data)
            await resp.write_eof()
            return resp


def turnout_yaml(
    sim: Simulator,
    judge_url: str,
    synth_url: str,
    panel: str = "",
    routes: str = "",
    extra: str = "",
    first_byte: str = "2s",
) -> str:
    def url(p: str) -> str:
        return {"jd": judge_url, "sy": synth_url}.get(p, sim.base_url(p))

    providers = "\n".join(
        f'  - {{id: {p}, adapter: {FAMILY.get(p, "openai")}, base_url: "{url(p)}", api_key: "${{SIM_KEY}}",'
        f" models: [{{name: {MODELS[p]}, price: {{input: {PRICES[p][0]}, output: {PRICES[p][1]}}}}}]}}"
        for p in ANSWERS
    )
    return f"""
providers:
{providers}
routes:
  - {{name: frontier, targets: [oa/gpt-x, an/claude-x]}}
  - {{name: cheap, targets: [ob/gpt-x, gg/gem-x]}}
  - {{name: judging, targets: [jd/judge-x, oa/gpt-x]}}
  - name: fusion
    mode: panel
    panel: {{from: [frontier, cheap], size: 3, quorum: 2, member_deadline: 3s, judge: judging, synthesizer: sy/synth-x{panel}}}
{routes}dataplane: {{first_byte_timeout: {first_byte}, stall_timeout: 2s, total_timeout: 8s, connect_timeout: 1s}}
{extra}
"""


def parse(text: str) -> Config:
    return parse_config(text, env={"SIM_KEY": KEY})


@dataclass
class Env:
    sim: Simulator
    rt: Rt
    cfg: Config
    url: str
    aclient: openai.AsyncOpenAI
    judge: Relay
    synth: Relay
    app: App

    async def post(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:
        async with aiohttp.ClientSession() as s:
            resp = await s.post(f"{self.url}/chat/completions", json=body, headers=headers or {})
            await resp.read()
            return resp


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator.from_yaml(SIM, clock=FakeClock(), admin=False) as s:
        yield s


@pytest.fixture
async def make_env(sim: Simulator) -> AsyncIterator[Callable[..., Awaitable[Env]]]:
    """`panel` adds fields to the fusion route's panel mapping (e.g. ", degrade_to_single: true")."""
    started: list[tuple[Any, Env]] = []

    async def make(panel: str = "", routes: str = "", extra: str = "", first_byte: str = "2s", **rt_kw: Any) -> Env:
        judge, synth = Relay(sim.root_url("jd")), Relay(sim.root_url("sy"))
        await judge.start()
        await synth.start()
        cfg = parse(turnout_yaml(sim, judge.url("/v1"), synth.url("/v1"), panel, routes, extra, first_byte))
        rt = Rt(cfg, StaticTables(make_table(cfg)), **rt_kw)
        app = build_data_app(rt)
        runner, port = await serve_app(app)
        url = f"http://127.0.0.1:{port}/v1"
        env = Env(
            sim,
            rt,
            cfg,
            url,
            openai.AsyncOpenAI(base_url=url, api_key="client-key", max_retries=0, timeout=20),
            judge,
            synth,
            app,
        )
        started.append((runner, env))
        return env

    yield make
    for runner, e in started:
        await e.aclient.close()
        await runner.cleanup()
        await e.judge.stop()
        await e.synth.stop()


@pytest.fixture
async def env(make_env: Callable[..., Awaitable[Env]]) -> Env:
    return await make_env()
