"""The status API mounted by the real control app on the real ControlPlane (store, health, publisher, pipeline)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from controlplane.api.app import build_control_app
from controlplane.config_loader import parse_config
from controlplane.control_plane import ControlPlane
from tests.api.fakes import ADMIN_TOKEN, CONFIG
from tests.fakes import FakeClock

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[tuple[ControlPlane, TestClient[Any, Any]]]:
    text = CONFIG.replace("{public}", "true") + f"database:\n  url: sqlite:///{tmp_path / 't.db'}\n"
    cfg = parse_config(text, env={})
    rt = ControlPlane(cfg, clock=FakeClock(), probes=False, fire=False)
    await rt.start()
    try:
        async with TestClient(TestServer(build_control_app(rt), host="127.0.0.1")) as client:
            yield rt, client
    finally:
        await rt.stop()


async def test_every_read_endpoint_answers_on_the_real_runtime(live: Any) -> None:
    rt, client = live
    for path in (
        "/api/v1/table",
        "/api/v1/routes",
        "/api/v1/routes/frontier",
        "/api/v1/targets",
        "/api/v1/targets/openrouter/meta/llama-3",
        "/api/v1/providers",
        "/api/v1/events",
        "/api/v1/uptime?window=7d",
        "/api/v2/summary.json",
        "/readyz",
        "/openapi.json",
    ):
        r = await client.get(path)
        assert r.status == 200, (path, await r.text())
        assert "sk-secret-provider-key" not in await r.text()
    detail = await (await client.get("/api/v1/targets/openai/gpt-4o")).json()
    assert detail["health"]["state"] == "closed" and detail["entry"]["target"] == "openai/gpt-4o"


async def test_drain_goes_through_the_pipeline_publishes_and_is_audited(live: Any) -> None:
    rt, client = live
    before = rt.table_source.current().version
    poll = asyncio.create_task(client.get("/api/v1/table", params={"after": str(before), "wait": "10"}))
    r = await client.post(
        "/api/v1/targets/anthropic/claude-sonnet-4/drain", json={"reason": "maintenance"}, headers=ADMIN
    )
    assert r.status == 200, await r.text()
    assert (await r.json())["table_version"] > before
    newer = await poll
    assert newer.status == 200
    table = await newer.json()
    assert table["targets"]["anthropic/claude-sonnet-4"]["state"] == "drained"
    assert table["routes"]["frontier"]["primary"] == "openai/gpt-4o"
    await rt.sink.flush()
    events = (await (await client.get("/api/v1/events", params={"type": "override.changed"})).json())["events"]
    assert events and events[-1]["data"].get("actor") == "ops"
    r = await client.post("/api/v1/targets/anthropic/claude-sonnet-4/undrain", headers=ADMIN)
    assert r.status == 200
    assert rt.table_source.current().targets["anthropic/claude-sonnet-4"].state != "drained"


async def test_reload_without_a_file_is_a_clear_422(live: Any) -> None:
    rt, client = live
    r = await client.post("/api/v1/config/reload", headers=ADMIN)
    assert r.status == 422
    assert "not started from a file" in json.dumps(await r.json())
