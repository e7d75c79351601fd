"""Transport faults and timing: refused (per-provider listener), reset, hang, stall; rate limits that really
decrement; held requests let go on clear and on shutdown (nothing leaks)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from adapters.sim import Simulator
from tests.fakes import FakeClock
from tests.sim.conftest import SIM_CONFIG, call, request_for
from tests.support import until as _until

pytestmark = pytest.mark.integration


async def test_refused_closes_only_that_providers_listener(sim: Simulator, http: aiohttp.ClientSession) -> None:
    fid = sim.set_fault("oa", "refused")
    with pytest.raises(aiohttp.ClientConnectorError):
        await call(http, sim, "oa")
    assert (await call(http, sim, "an"))[0] == 200  # other providers keep serving
    sim.clear_faults(fault_id=fid)
    assert (await call(http, sim, "oa"))[0] == 200  # same port again, at once


async def test_refused_for_a_duration_reopens_when_the_clock_passes(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    port = sim.port("gg")
    sim.set_fault("gg", "NET-1", duration=30)
    await sim.advance(29)
    with pytest.raises(aiohttp.ClientConnectorError):
        await call(http, sim, "gg")
    await sim.advance(1)
    assert (await call(http, sim, "gg"))[0] == 200 and sim.port("gg") == port


async def test_refused_rejects_count_and_model(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="duration"):
        sim.set_fault("oa", "refused", count=1)


async def test_reset_before_the_answer(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.set_fault("an", "reset", count=1)
    with pytest.raises(aiohttp.ClientConnectionError):
        await call(http, sim, "an")
    assert (await call(http, sim, "an"))[0] == 200
    assert sim.stats()["providers"]["an"]["statuses"] == {"reset": 1, "200": 1}, sim.stats()["providers"]["an"]


async def test_reset_after_two_chunks_of_a_stream(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.set_fault("oa", "NET-2", count=1)
    url, headers, body = request_for(sim, "oa", stream=True)
    got = b""
    with pytest.raises((aiohttp.ClientPayloadError, aiohttp.ClientConnectionError)):
        async with http.post(url, json=body, headers=headers) as resp:
            assert resp.status == 200
            async for piece in resp.content.iter_any():
                got += piece
    assert got.count(b'"content":"') >= 2 and b"[DONE]" not in got


async def test_hang_holds_headers_until_the_fault_clears(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.set_fault("oa", "hang")
    url, headers, body = request_for(sim, "oa")
    with pytest.raises(asyncio.TimeoutError):
        async with http.post(url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=0.2)):
            pass
    pending = asyncio.ensure_future(call(http, sim, "oa"))
    await _until(lambda: sim.requests("oa") == 2, what="the second request", interval=0.002)
    assert not pending.done()
    sim.clear_faults("oa")
    status, _, _ = await asyncio.wait_for(pending, 5)
    assert status == 200  # held, then answered normally


async def test_hang_with_seconds_answers_late(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.set_fault("an", "hang", count=1, seconds=0.05)
    status, _, _ = await call(http, sim, "an")
    assert status == 200


async def test_stall_after_three_chunks(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.set_fault("oa", "stall", count=1)
    url, headers, body = request_for(sim, "oa", stream=True)
    got = b""
    with pytest.raises(asyncio.TimeoutError):
        async with http.post(url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(sock_read=0.2)) as resp:
            async for piece in resp.content.iter_any():
                got += piece
    assert got.count(b'"content":"') == 3 and b"[DONE]" not in got  # role chunk + 2 tokens, then nothing
    sim.clear_faults("oa")  # releases the stalled handler
    assert (await call(http, sim, "oa"))[0] == 200


async def test_stopping_releases_held_requests() -> None:
    sim = Simulator.from_yaml(SIM_CONFIG, clock=FakeClock())
    async with sim, aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        sim.set_fault("oa", "hang")
        pending = asyncio.ensure_future(call(http, sim, "oa"))
        await _until(lambda: sim.requests("oa") == 1, what="the request", interval=0.002)
    with pytest.raises(aiohttp.ClientError):
        await asyncio.wait_for(pending, 5)


async def test_probability_faults_repeat_with_the_seed(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.set_fault("oa", "server_error", probability=0.5)
    first = [(await call(http, sim, "oa"))[0] for _ in range(12)]
    assert set(first) == {200, 500}
    async with Simulator.from_yaml(SIM_CONFIG, clock=FakeClock()) as again:
        again.set_fault("oa", "server_error", probability=0.5)
        second = [(await call(http, again, "oa"))[0] for _ in range(12)]
    assert first == second


async def test_openai_rate_limits_decrement_then_429_until_the_window_resets(http: aiohttp.ClientSession) -> None:
    cfg = {
        "providers": [
            {
                "id": "oa",
                "family": "openai",
                "api_key": "test-key",
                "rate_limits": {"requests": 3, "tokens": 10000, "window": "60s"},
                "models": [{"name": "gpt-x"}],
            }
        ]
    }
    async with Simulator.from_yaml(cfg, clock=FakeClock()) as sim:
        remaining = []
        for _ in range(3):
            status, headers, _ = await call(http, sim, "oa")
            assert status == 200
            remaining.append(headers["x-ratelimit-remaining-requests"])
        assert remaining == ["2", "1", "0"] and headers["x-ratelimit-reset-requests"] == "1m0s"
        status, headers, body = await call(http, sim, "oa")
        assert status == 429 and headers["retry-after"] == "60" and b"rate_limit_exceeded" in body
        await sim.advance(20)
        status, headers, _ = await call(http, sim, "oa")
        assert status == 429 and headers["x-ratelimit-reset-requests"] == "40s"
        await sim.advance(40)
        status, headers, _ = await call(http, sim, "oa")
        assert status == 200 and headers["x-ratelimit-remaining-requests"] == "2"


async def test_each_family_sends_its_own_capacity_headers(sim: Simulator, http: aiohttp.ClientSession) -> None:
    _, an, _ = await call(http, sim, "an")
    assert an["anthropic-ratelimit-requests-remaining"] == "499"
    assert an["anthropic-ratelimit-requests-reset"] == "2026-01-01T00:01:00Z"  # RFC 3339, window end
    assert int(an["anthropic-ratelimit-tokens-remaining"]) < int(an["anthropic-ratelimit-tokens-limit"])
    _, gg, _ = await call(http, sim, "gg")
    _, ds, _ = await call(http, sim, "ds")
    assert not [h for h in {**gg, **ds} if "ratelimit" in h]  # Gemini and DeepSeek send none


async def test_wrong_key_and_unknown_model_get_family_errors(sim: Simulator, http: aiohttp.ClientSession) -> None:
    url, headers, body = request_for(sim, "gg")
    async with http.post(url, json=body, headers={"x-goog-api-key": "nope"}) as r:
        assert r.status == 400 and (await r.json())["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    url, headers, body = request_for(sim, "an", model="claude-none")
    async with http.post(url, json=body, headers=headers) as r:
        assert r.status == 404 and (await r.json())["error"]["type"] == "not_found_error"
    url, headers, _ = request_for(sim, "oa")
    async with http.post(url, data=b"{not json", headers=headers) as r:
        assert r.status == 400 and (await r.json())["error"]["type"] == "invalid_request_error"
    # a provider without a key accepts anyone
    status, _, _ = await call(http, sim, "lc")
    assert status == 200


async def test_loading_health_then_ready(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.set_fault("lc", "loading", duration=10)
    async with http.get(sim.root_url("lc") + "/health") as r:
        assert r.status == 503 and (await r.json())["error"]["message"] == "Loading model"
    await sim.advance(10)
    async with http.get(sim.root_url("lc") + "/health") as r:
        assert r.status == 200 and await r.json() == {"status": "ok"}


async def test_keepalive_queue_can_end_in_a_close_without_tokens(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.set_fault("ds", "keepalive_queue", count=2, seconds=0.02, interval=0.01, then="close")
    status, _, body = await call(http, sim, "ds", stream=True)
    assert status == 200 and b": keep-alive" in body and b"data:" not in body
    status, _, body = await call(http, sim, "ds")  # plain request: blank lines, then nothing
    assert status == 200 and body.strip() == b""
