"""Turnout's data plane in front of the simulator for the client APIs (Responses, Messages, embeddings): routes
whose primary is of each adapter kind, a native-Responses OpenAI host beside a chat-only one, and embedding
routes of one model each. Clients are the official `openai` and `anthropic` SDKs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest

from adapters.sim import Simulator
from dataplane.http.messages import App
from dataplane.proxy import build_data_app
from tests.dataplane.conftest import parse_with_key
from tests.dataplane.helpers import Rt, StaticTables, make_table
from tests.fakes import FakeClock
from tests.support import serve_app

KEY = "sim-test-key"

SIM: dict[str, Any] = {
    "seed": 1,
    "providers": [
        {"id": "oa", "family": "openai", "api_key": KEY, "models": [{"name": "gpt-x"}, {"name": "emb-x"}]},
        {"id": "vl", "family": "openai", "api_key": KEY, "models": [{"name": "gpt-x"}, {"name": "emb-x"}]},
        {"id": "an", "family": "anthropic", "api_key": KEY, "models": [{"name": "claude-x"}]},
        {"id": "gg", "family": "gemini", "api_key": KEY, "models": [{"name": "gem-x"}, {"name": "gem-emb"}]},
    ],
}

# Route name → (primary provider, fallback provider): one route per adapter kind at the primary.
CHAT_ROUTES = {
    "r-native": ("oa", "an"),  # OpenAI host serving the Responses API natively
    "r-compat": ("vl", "oa"),  # OpenAI-compatible host without /responses: translated
    "r-anthropic": ("an", "gg"),
    "r-gemini": ("gg", "vl"),
}
EMBED_ROUTES = {"e-openai": ("oa", "vl"), "e-gemini": ("gg", "oa")}
TARGET = {"oa": "oa/gpt-x", "vl": "vl/gpt-x", "an": "an/claude-x", "gg": "gg/gem-x"}
EMBED_TARGET = {"oa": "oa/emb-x", "vl": "vl/emb-x", "gg": "gg/gem-emb"}


def turnout_yaml(sim: Simulator, extra: str = "", dataplane: str = "") -> str:
    # Timeouts are generous: the faults these tests inject act at once (a 503, a reset), and a machine shared by
    # other work must not turn a healthy fallback into a timeout.
    return f"""
providers:
  - {{id: oa, adapter: openai, base_url: "{sim.base_url("oa")}", api_key: "${{SIM_KEY}}", responses_api: native,
     models: [{{name: gpt-x, price: {{input: 2, output: 8}}}}, {{name: emb-x, kind: embedding, price: {{input: 0.02}}}}]}}
  - {{id: vl, adapter: openai, base_url: "{sim.base_url("vl")}", api_key: "${{SIM_KEY}}",
     models: [{{name: gpt-x, price: {{input: 1, output: 4}}}}, {{name: emb-x, kind: embedding}}]}}
  - {{id: an, adapter: anthropic, base_url: "{sim.base_url("an")}", api_key: "${{SIM_KEY}}",
     models: [{{name: claude-x, price: {{input: 3, output: 15}}}}]}}
  - {{id: gg, adapter: gemini, base_url: "{sim.base_url("gg")}", api_key: "${{SIM_KEY}}",
     models: [{{name: gem-x}}, {{name: gem-emb, kind: embedding, family: emb-x}}]}}
routes:
  - {{name: r-native, targets: [oa/gpt-x, an/claude-x]}}
  - {{name: r-compat, targets: [vl/gpt-x, oa/gpt-x]}}
  - {{name: r-anthropic, targets: [an/claude-x, gg/gem-x]}}
  - {{name: r-gemini, targets: [gg/gem-x, vl/gpt-x]}}
  - {{name: e-openai, targets: [oa/emb-x, vl/emb-x]}}
  - {{name: e-gemini, targets: [gg/gem-emb, oa/emb-x]}}
dataplane: {{first_byte_timeout: 5s, stall_timeout: 3s, total_timeout: 20s, connect_timeout: 2s{dataplane}}}
{extra}
"""


@dataclass
class ClientsEnv:
    sim: Simulator
    rt: Rt
    app: App
    url: str  # the data plane's root (no /v1)
    oa: openai.AsyncOpenAI
    an: anthropic.AsyncAnthropic

    def metric(self, name: str, labels: dict[str, str]) -> float:
        return self.rt.metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator.from_yaml(SIM, clock=FakeClock(), admin=False) as s:
        yield s


@pytest.fixture
async def make_env(sim: Simulator) -> AsyncIterator[Callable[..., Awaitable[ClientsEnv]]]:
    started: list[tuple[Any, ClientsEnv]] = []

    async def make(extra: str = "", dataplane: str = "", **rt_kw: Any) -> ClientsEnv:
        """`extra`: top-level YAML; `dataplane`: more `dataplane:` fields (", responses: {store: true}")."""
        cfg = parse_with_key(turnout_yaml(sim, extra, dataplane))
        rt = Rt(cfg, StaticTables(make_table(cfg)), **rt_kw)
        app = build_data_app(rt)
        runner, port = await serve_app(app)
        root = f"http://127.0.0.1:{port}"
        env = ClientsEnv(
            sim,
            rt,
            app,
            root,
            openai.AsyncOpenAI(base_url=f"{root}/v1", api_key="client-key", max_retries=0),
            anthropic.AsyncAnthropic(base_url=root, api_key="client-key", max_retries=0),
        )
        started.append((runner, env))
        return env

    yield make
    for runner, e in started:
        await e.oa.close()
        await e.an.close()
        await runner.cleanup()


@pytest.fixture
async def env(make_env: Callable[..., Awaitable[ClientsEnv]]) -> ClientsEnv:
    return await make_env()
