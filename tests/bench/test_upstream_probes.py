"""The bench's upstream answers Turnout's own probes in its mode, as it answers live traffic: the hang→recover phase
of `bench dataplane` runs with probes on, and only a probe's success brings an open target back early."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from adapters.openai import OpenAIAdapter
from bench.dataplane.upstream import MODE, PROBE_PROMPT, build_upstream
from controlplane.config import CompletionProbeConfig
from controlplane.config_loader import parse_config
from controlplane.domain import ErrorClass, TargetRef
from probes import ProbeContext, catalogue, completion
from tests.fakes import FakeClock
from tests.support import serve_app

pytestmark = pytest.mark.integration

# mode → what a probe of either kind (and a live request) classifies it as
EXPECTED = {
    "ok": ErrorClass.OK,
    "region_blocked": ErrorClass.REGION_BLOCKED,
    "server_error": ErrorClass.SERVER_ERROR,
    "hang": ErrorClass.TIMEOUT,
}


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[dict[str, str | int], ProbeContext]]:
    app = build_upstream()
    runner, port = await serve_app(app, shutdown_timeout=0.1)
    provider = parse_config(
        json.dumps(
            {
                "providers": [
                    {
                        "id": "p1",
                        "adapter": "openai",
                        "base_url": f"http://127.0.0.1:{port}/v1",
                        "models": [{"name": "m"}],
                    }
                ]
            }
        ),
        env={},
    ).providers[0]
    async with aiohttp.ClientSession() as session:
        ctx = ProbeContext(
            session=session,
            adapter=OpenAIAdapter(),
            provider=provider,
            model=provider.model("m"),
            clock=FakeClock(),
            timeout=0.3,  # a hang is cut here: the probe's own deadline
            completion=CompletionProbeConfig(prompt=PROBE_PROMPT),
        )
        yield app[MODE], ctx
    await runner.cleanup()


@pytest.mark.parametrize("mode", list(EXPECTED))
async def test_both_probe_kinds_meet_the_upstreams_mode(
    upstream: tuple[dict[str, Any], ProbeContext], mode: str
) -> None:
    state, ctx = upstream
    state["mode"] = mode
    target = TargetRef("p1", "m")
    [listed] = await catalogue.probe(target, ctx)
    [completed] = await completion.probe(target, ctx)
    assert (listed.error_class, completed.error_class) == (EXPECTED[mode], EXPECTED[mode])
    # probes are counted apart from live traffic: the bench's "back on the primary" is about live requests
    assert (state["catalogue_probes"], state["completion_probes"], state["count"]) == (1, 1, 0)


async def test_a_recovered_upstream_answers_probes_again(upstream: tuple[dict[str, Any], ProbeContext]) -> None:
    state, ctx = upstream
    target = TargetRef("p1", "m")
    state["mode"] = "hang"
    [hung] = await completion.probe(target, ctx)
    state["mode"] = "ok"
    [back] = await completion.probe(target, ctx)
    assert (hung.error_class, back.error_class) == (ErrorClass.TIMEOUT, ErrorClass.OK)
    assert back.ttft_s is not None  # a streamed answer: what the breaker's window learns from


async def test_live_chat_is_counted_as_live_not_as_a_probe(upstream: tuple[dict[str, Any], ProbeContext]) -> None:
    state, ctx = upstream
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    async with ctx.session.post(f"{ctx.provider.base_url}/chat/completions", json=body) as r:
        answer = await r.json()
    assert answer["choices"][0]["message"]["content"] == "ok"
    assert (state["count"], state["completion_probes"]) == (1, 0)
