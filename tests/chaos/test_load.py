"""Load, bounded: concurrent streaming clients through the data plane while the primary's provider is withdrawn
mid-run. Zero client errors, file descriptors flat between rounds and back to the start after shutdown.
(`bench/load.py` is the long version against `turnout serve`: 500 clients, RSS and fds printed.)"""

from __future__ import annotations

import asyncio
import gc
import json
from pathlib import Path

import aiohttp
import pytest

from tests.chaos.conftest import OA, SOAK, build_stack, open_fds, teardown_stack

pytestmark = pytest.mark.integration

CLIENTS = 200 if SOAK else 50
ROUNDS = 12 if SOAK else 6


async def _stream(http: aiohttp.ClientSession, url: str, errors: list[str]) -> None:
    body = {"model": "pair", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    try:
        async with http.post(f"{url}/chat/completions", json=body) as r:
            text = (await r.read()).decode(errors="replace")
            if r.status != 200 or "data: [DONE]" not in text or '"error"' in text:
                errors.append(f"{r.status} {text[-200:]}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        errors.append(repr(exc))


async def test_streaming_clients_see_no_error_while_a_provider_is_withdrawn_and_no_fd_leaks(tmp_path: Path) -> None:
    gc.collect()
    fds_at_start = open_fds()

    def primary_first(raw: dict[str, object]) -> None:
        raw["providers"][0]["models"][0]["priority"] = 5  # type: ignore[index]
        # clients, Turnout and the simulator share one event loop here: under a busy CI machine a first byte can
        # take over a second without any provider being slow, and that is not what this test measures
        raw["dataplane"] = {"first_byte_timeout": "15s", "stall_timeout": "15s", "total_timeout": "30s"}

    stack = await build_stack(tmp_path, primary_first)
    errors: list[str] = []
    per_round: list[int] = []
    try:
        await stack.step(10, by=5)
        assert stack.table().routes["pair"].primary.target == OA
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
            for r in range(ROUNDS):
                if r == ROUNDS // 3:
                    stack.sim.set_fault("oa", "region_blocked")  # withdrawn from this region, mid-run
                await asyncio.gather(*(_stream(http, stack.data, errors) for _ in range(CLIENTS)))
                await stack.rt.sink.flush()
                per_round.append(open_fds())
            assert stack.state(OA) == "withdrawn"
            served = stack.metric("turnout_dataplane_requests_total", {"route": "pair", "outcome": "ok", "api": "chat"})
        assert errors == [], errors[:5]
        assert served == CLIENTS * ROUNDS
        # pooled connections reach a steady size; rounds after that add none
        steady = per_round[ROUNDS // 2 :]
        assert max(steady) - min(steady) <= 8, per_round
        rows = [json.dumps(e.data) for e in stack.events("target.withdrawn") if e.subject == OA]
        assert len(rows) == 1, rows
    finally:
        await teardown_stack(stack)
    gc.collect()
    await asyncio.sleep(0)  # let closed transports finish closing
    assert open_fds() <= fds_at_start + 2, (fds_at_start, open_fds())
