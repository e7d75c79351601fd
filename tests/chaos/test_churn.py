"""Churn around a healthy system: clients that walk away mid-stream, and config reloads while traffic flows.
Neither may be taken for a provider failure, lose state, or leak connections."""

from __future__ import annotations

import asyncio
import copy
import gc
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from controlplane.config_loader import parse_config
from tests.chaos.conftest import OA, OB, PROVIDER_KEY, SOAK, Stack, build_stack, open_fds, teardown_stack

pytestmark = pytest.mark.integration

CLIENTS = 120 if SOAK else 40
BODY = {"model": "pair", "messages": [{"role": "user", "content": "hi"}], "stream": True}


def _slow_streams(raw: dict[str, Any]) -> None:
    raw["providers"][0]["models"][0]["priority"] = 5


async def _abandon(http: aiohttp.ClientSession, url: str) -> None:
    """Read the first bytes of a stream, then hang up."""
    async with http.post(f"{url}/chat/completions", json=BODY) as r:
        assert r.status == 200
        await r.content.readany()
        r.close()  # drop the connection mid-stream


async def _complete(http: aiohttp.ClientSession, url: str, errors: list[str]) -> None:
    async with http.post(f"{url}/chat/completions", json=BODY) as r:
        text = (await r.read()).decode(errors="replace")
        if r.status != 200 or "data: [DONE]" not in text:
            errors.append(f"{r.status} {text[-200:]}")


async def test_clients_walking_away_mid_stream_never_count_against_the_provider(tmp_path: Path) -> None:
    gc.collect()
    fds_at_start = open_fds()
    stack = await build_stack(tmp_path, _slow_streams)
    errors: list[str] = []
    try:
        await stack.step(10, by=5)
        stack.sim.set_fault("oa", "slow_tokens", rate=40)  # streams last long enough to be abandoned halfway
        before = stack.metric(
            "turnout_dataplane_requests_total", {"route": "pair", "outcome": "client_gone", "api": "chat"}
        )
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            await asyncio.gather(
                *(_abandon(http, stack.data) for _ in range(CLIENTS)),
                *(_complete(http, stack.data, errors) for _ in range(CLIENTS // 4)),
            )
        gone = (
            stack.metric("turnout_dataplane_requests_total", {"route": "pair", "outcome": "client_gone", "api": "chat"})
            - before
        )

        async def all_noticed() -> None:  # the server side notices each hang-up on its own; bounded
            while (
                stack.metric(
                    "turnout_dataplane_requests_total", {"route": "pair", "outcome": "client_gone", "api": "chat"}
                )
                - before
                < CLIENTS
            ):
                await asyncio.sleep(0.02)

        await asyncio.wait_for(all_noticed(), 20)
        gone = (
            stack.metric("turnout_dataplane_requests_total", {"route": "pair", "outcome": "client_gone", "api": "chat"})
            - before
        )
        await stack.rt.sink.flush()
        assert errors == [], errors[:3]
        assert gone == CLIENTS
        assert (
            stack.metric(
                "turnout_dataplane_attempts_total",
                {"route": "pair", "provider": "oa", "model": "gpt-x", "error_class": "timeout"},
            )
            == 0
        )
        assert stack.state(OA) == "closed"  # a hundred hang-ups are not a provider failure
        assert str(stack.rt.store.latest_observations(OA)["live"].error_class) == "ok"
    finally:
        await teardown_stack(stack)
    gc.collect()
    await asyncio.sleep(0)
    assert open_fds() <= fds_at_start + 2, (fds_at_start, open_fds())


async def test_config_reloads_under_traffic_lose_no_request_and_no_state(tmp_path: Path) -> None:
    stack: Stack = await build_stack(tmp_path, _slow_streams)
    errors: list[str] = []
    versions: list[int] = []
    try:
        await stack.step(10, by=5)
        stack.sim.set_fault("an", "region_blocked")
        await stack.step(10, by=5)
        assert stack.state("an/claude-x") == "withdrawn"
        raw = copy.deepcopy(stack.raw)
        rounds = 10 if SOAK else 4
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            for i in range(rounds):
                # each reload flips the route's order and the probe interval: health keeps its breakers
                raw["routes"][1]["targets"] = [OB, OA] if i % 2 == 0 else [OA, OB]
                raw["probes"]["interval"] = f"{10 + i}s"
                cfg = parse_config(yaml.safe_dump(raw), env={"SIM_KEY": PROVIDER_KEY})
                traffic = asyncio.gather(*(_complete(http, stack.data, errors) for _ in range(CLIENTS)))
                await asyncio.sleep(0)  # requests in flight while the new config lands
                await stack.rt.apply_config(cfg, actor="chaos")
                await traffic
                await stack.step(1)
                versions.append(stack.table().version)
        assert errors == [], errors[:3]
        assert versions == sorted(versions)  # reloads never move the table back
        assert stack.state("an/claude-x") == "withdrawn"  # breaker state survives every reload
        assert len(stack.events("config.reloaded")) == rounds
        assert stack.rt.sink.store_failures == 0
    finally:
        await teardown_stack(stack)
