"""Passive health and hedging: a client that leaves never counts against a provider; a slow primary is hedged."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from openai.types.chat import ChatCompletionMessageParam

from dataplane.proxy import DATA_STATE
from tests.dataplane.conftest import Env
from tests.support import until as _until

pytestmark = pytest.mark.integration

MSG: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
BODY = {"model": "main", "messages": MSG}


@pytest.mark.parametrize("stream", [False, True])
async def test_a_client_that_gives_up_never_counts_against_the_provider(env: Env, stream: bool) -> None:
    env.sim.set_fault("oa", "latency", seconds=5)  # slower than the client's patience, faster than Turnout's deadline
    timeout = aiohttp.ClientTimeout(total=0.2)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        with pytest.raises(TimeoutError):
            async with s.post(f"{env.url}/chat/completions", json={**BODY, "stream": stream}) as r:
                await r.read()
    requests = env.rt.metrics.registry.get_sample_value
    await _until(
        lambda: (requests("turnout_dataplane_requests_total", {"route": "main", "outcome": "client_gone"}) or 0) == 1
    )  # the handler noticed the disconnect
    assert env.rt.sink.observations == []  # no timeout, no failure: the provider did nothing wrong
    assert env.requests("ob") == 0  # and no failover was started on the client's behalf


async def test_a_slow_primary_is_hedged_and_the_first_answer_wins(make_env: Callable[..., Awaitable[Env]]) -> None:
    env = await make_env(
        routes="  - {name: hedged, targets: [oa/gpt-x, ob/gpt-x], hedging: {enabled: true, min_delay: 50ms}}\n"
    )
    env.sim.set_fault("oa", "latency", seconds=5)
    raw = await env.aclient.chat.completions.with_raw_response.create(
        model="hedged", messages=MSG, extra_headers={"x-turnout-debug": "1"}
    )
    assert raw.headers["x-turnout-target"] == "ob/gpt-x"
    trail = json.loads(raw.headers["x-turnout-decision"])
    assert any(n.startswith("hedged: ob/gpt-x") for n in trail["notes"])
    assert env.rt.sink.classes("oa/gpt-x") == []  # the cancelled loser is not an outcome
    assert env.rt.sink.classes("ob/gpt-x") == ["ok"]
    assert env.app[DATA_STATE].decisions is not None
