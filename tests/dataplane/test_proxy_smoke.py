"""The proxy against the bench's instant upstream, through the official openai SDK (no simulator needed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from adapters.openai import OpenAIAdapter
from bench.dataplane.upstream import MODE, build_upstream
from dataplane.proxy import build_data_app
from tests.dataplane.helpers import Rt, StaticTables, make_table, parse
from tests.support import serve_app

pytestmark = pytest.mark.integration


@pytest.fixture
async def env() -> AsyncIterator[dict[str, Any]]:
    up_apps = [build_upstream(), build_upstream()]
    ups = [await serve_app(a) for a in up_apps]
    cfg = parse(f"""
providers:
  - {{id: p1, adapter: openai, base_url: "http://127.0.0.1:{ups[0][1]}/v1", models: [{{name: m, price: {{input: 1, output: 2}}}}]}}
  - {{id: p2, adapter: openai, base_url: "http://127.0.0.1:{ups[1][1]}/v1", models: [{{name: m}}]}}
routes:
  - {{name: main, targets: [p1/m, p2/m]}}
dataplane: {{first_byte_timeout: 2s, total_timeout: 5s}}
""")
    rt = Rt(cfg, StaticTables(make_table(cfg)))
    runner, port = await serve_app(build_data_app(rt, adapters={"openai": OpenAIAdapter()}))
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
    yield {"rt": rt, "client": client, "modes": [a[MODE] for a in up_apps], "port": port}
    await client.close()
    await runner.cleanup()
    for r, _ in ups:
        await r.cleanup()


async def test_json_and_stream_through_the_sdk(env: dict[str, Any]) -> None:
    client: openai.AsyncOpenAI = env["client"]
    raw = await client.chat.completions.with_raw_response.create(
        model="main", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-turnout-target"] == "p1/m" and raw.headers["x-turnout-attempts"] == "1"
    assert raw.parse().choices[0].message.content == "ok"
    stream = await client.chat.completions.create(
        model="main", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "ok ok ok "


async def test_region_block_fails_over_and_hang_times_out(env: dict[str, Any]) -> None:
    client: openai.AsyncOpenAI = env["client"]
    env["modes"][0]["mode"] = "region_blocked"
    raw = await client.chat.completions.with_raw_response.create(
        model="main", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-turnout-target"] == "p2/m" and raw.headers["x-turnout-attempts"] == "2"
    assert env["rt"].sink.classes("p1/m") == ["region_blocked"]
