"""The completion probe of an embedding model is a one-word embedding, against the simulator (OpenAI and Gemini
shapes), classified like any answer: a fault is an observation of its class, never an exception."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from adapters.registry import get_adapter
from adapters.sim import Simulator
from controlplane.config_loader import parse_config
from controlplane.domain import TargetRef
from probes import ProbeContext, completion
from tests.fakes import FakeClock

pytestmark = pytest.mark.integration

KEY = "k"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    cfg = {
        "seed": 1,
        "providers": [
            {"id": "oa", "family": "openai", "api_key": KEY, "models": [{"name": "emb-x"}]},
            {"id": "gg", "family": "gemini", "api_key": KEY, "models": [{"name": "gem-emb"}]},
        ],
    }
    async with Simulator.from_yaml(cfg, clock=FakeClock(), admin=False) as s:
        yield s


async def _probe(sim: Simulator, provider: str, model: str) -> list[str]:
    cfg = parse_config(
        f"""
providers:
  - {{id: oa, adapter: openai, base_url: "{sim.base_url("oa")}", api_key: {KEY}, models: [{{name: emb-x, kind: embedding}}]}}
  - {{id: gg, adapter: gemini, base_url: "{sim.base_url("gg")}", api_key: {KEY}, models: [{{name: gem-emb, kind: embedding}}]}}
""",
        env={},
    )
    p = cfg.provider(provider)
    assert p is not None
    async with aiohttp.ClientSession() as session:
        ctx = ProbeContext(session, get_adapter(p.adapter), p, p.model(model), FakeClock(), 2.0)
        obs = await completion.probe(TargetRef(provider, model), ctx)
    assert all(o.kind == "completion" and o.extra.get("embedding") for o in obs)
    assert all(o.latency_s is not None for o in obs)
    return [str(o.error_class) for o in obs]


@pytest.mark.parametrize(
    ("provider", "model", "endpoint"), [("oa", "emb-x", "embeddings"), ("gg", "gem-emb", "batch_embed_contents")]
)
async def test_an_embedding_model_is_probed_with_a_one_word_embedding(
    sim: Simulator, provider: str, model: str, endpoint: str
) -> None:
    assert await _probe(sim, provider, model) == ["ok"]
    assert sim.requests(provider, endpoint=endpoint) == 1
    assert sim.requests(provider, endpoint="chat_completions") == 0


@pytest.mark.parametrize(
    ("fault", "expected"), [("overloaded", "overloaded"), ("auth", "auth"), ("model_gone", "model_gone")]
)
async def test_an_embedding_fault_is_an_observation_of_its_class(sim: Simulator, fault: str, expected: str) -> None:
    sim.set_fault("oa", fault)
    assert await _probe(sim, "oa", "emb-x") == [expected]
