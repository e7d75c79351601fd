"""Turnout's data plane in front of the provider simulator, with a stand-in runtime (static table, list sink)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from adapters.sim import Simulator
from controlplane.config import Config
from dataplane.http.messages import App
from dataplane.proxy import build_data_app
from tests.dataplane.helpers import Rt, StaticTables, make_table, parse
from tests.fakes import FakeClock
from tests.support import serve_app

KEY = "sim-test-key"

SIM: dict[str, Any] = {
    "seed": 1,
    "providers": [
        {"id": "oa", "family": "openai", "api_key": KEY, "models": [{"name": "gpt-x", "context_window": 8192}]},
        {"id": "ob", "family": "openai", "api_key": KEY, "models": [{"name": "gpt-x", "context_window": 8192}]},
        {"id": "an", "family": "anthropic", "api_key": KEY, "models": [{"name": "claude-x", "context_window": 200000}]},
        {"id": "gg", "family": "gemini", "api_key": KEY, "models": [{"name": "gem-x"}]},
    ],
}


def turnout_yaml(sim: Simulator, extra: str = "", routes: str = "") -> str:
    return f"""
providers:
  - {{id: oa, adapter: openai, base_url: "{sim.base_url("oa")}", api_key: "${{SIM_KEY}}", jurisdiction: us,
     models: [{{name: gpt-x, context_window: 8192, price: {{input: 2, output: 8}}}}]}}
  - {{id: ob, adapter: openai, base_url: "{sim.base_url("ob")}", api_key: "${{SIM_KEY}}", jurisdiction: eu, zero_retention: true,
     models: [{{name: gpt-x, context_window: 8192, price: {{input: 1, output: 4}}}}]}}
  - {{id: an, adapter: anthropic, base_url: "{sim.base_url("an")}", api_key: "${{SIM_KEY}}", jurisdiction: us,
     models: [{{name: claude-x, context_window: 200000, price: {{input: 3, output: 15}}}}]}}
  - {{id: gg, adapter: gemini, base_url: "{sim.base_url("gg")}", api_key: "${{SIM_KEY}}", jurisdiction: us,
     models: [{{name: gem-x, context_window: 1000000}}]}}
routes:
  - {{name: main, targets: [oa/gpt-x, ob/gpt-x]}}
  - {{name: cross, targets: [oa/gpt-x, an/claude-x, gg/gem-x]}}
{routes}dataplane: {{first_byte_timeout: 1s, stall_timeout: 1s, total_timeout: 8s, connect_timeout: 1s}}
{extra}
"""


async def start_app(app: Any) -> tuple[Any, int]:
    return await serve_app(app)


@dataclass
class Env:
    sim: Simulator
    rt: Rt
    cfg: Config
    url: str  # the data plane's /v1 base
    aclient: openai.AsyncOpenAI
    client: openai.OpenAI
    app: App

    def requests(self, provider: str) -> int:
        return self.sim.requests(provider)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator.from_yaml(SIM, clock=FakeClock(), admin=False) as s:
        yield s


@pytest.fixture
async def make_env(sim: Simulator) -> AsyncIterator[Callable[..., Awaitable[Env]]]:
    """Build the data plane in front of `sim`; `extra` YAML adds routes/sections, `rt_kw` the stand-in runtime."""
    started: list[tuple[Any, Env]] = []

    async def make(extra: str = "", routes: str = "", **rt_kw: Any) -> Env:
        cfg = parse_with_key(turnout_yaml(sim, extra, routes))
        rt = Rt(cfg, StaticTables(make_table(cfg)), **rt_kw)
        app = build_data_app(rt)
        runner, port = await start_app(app)
        url = f"http://127.0.0.1:{port}/v1"
        env = Env(
            sim,
            rt,
            cfg,
            url,
            openai.AsyncOpenAI(base_url=url, api_key="client-key", max_retries=0),
            openai.OpenAI(base_url=url, api_key="client-key", max_retries=0),
            app,
        )
        started.append((runner, env))
        return env

    yield make
    for runner, e in started:
        await e.aclient.close()
        e.client.close()
        await runner.cleanup()


@pytest.fixture
async def env(make_env: Callable[..., Awaitable[Env]]) -> Env:
    return await make_env()


def parse_with_key(text: str) -> Config:
    from controlplane.config_loader import parse_config

    return parse_config(text, env={"SIM_KEY": KEY})


__all__ = ["Env", "KEY", "SIM", "turnout_yaml", "start_app", "parse", "parse_with_key"]
