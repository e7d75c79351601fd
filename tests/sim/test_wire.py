"""Wire details the SDK tests cannot reach: Gemini (no SDK installed) read through Turnout's own adapter,
tool echo in every family, catalogue pages, count-tokens, and every friendly alias on every family."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from adapters.registry import get_adapter
from adapters.sim import ALIASES, FAULTS, Simulator, resolve_fault
from adapters.sim.ratelimit import go_duration
from tests.sim.conftest import KEY, request_for

BRIEF_ALIASES = (
    "latency ttft_delay slow_tokens rate_limited quota_exhausted overloaded server_error region_blocked model_gone auth hang "
    "refused reset malformed_json html_502 empty_completion stream_break stall mid_stream_error keepalive_queue"
).split()


@pytest.mark.parametrize("family", ["openai", "anthropic", "gemini"])
def test_every_alias_resolves_on_every_family(family: str) -> None:
    assert set(BRIEF_ALIASES) <= set(ALIASES)
    for alias in BRIEF_ALIASES:
        spec = resolve_fault(alias, family)
        assert spec.applies_to(family), (alias, family, spec.id)
    assert resolve_fault("overloaded", "openai", "groq").id == "GQ-498"
    assert resolve_fault("overloaded", "gemini", "vertex").id == "VX-429"
    assert resolve_fault("model_gone", "openai", "azure").id == "AZ-404"
    assert resolve_fault("an-529", "anthropic").id == "AN-529"  # ids are case-insensitive


def test_unknown_and_misfamilied_faults_are_explained() -> None:
    with pytest.raises(ValueError, match="unknown fault 'boom'; known ids: NET-1"):
        resolve_fault("boom", "openai")
    with pytest.raises(ValueError, match="GG-503 is for the gemini family; this provider speaks anthropic"):
        resolve_fault("GG-503", "anthropic")
    assert all(f.expected is None or f.id for f in FAULTS.values())


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.012, "12ms"), (0.0001, "1ms"), (2, "2s"), (1.5, "1.5s"), (360, "6m0s"), (3723, "1h2m3s"), (0, "0s")],
)
def test_go_durations(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


@pytest.mark.integration
async def test_gemini_json_and_stream_translate_through_the_adapter(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    adapter = get_adapter("gemini")
    url, headers, body = request_for(sim, "gg", max_tokens=2)
    async with http.post(url, json=body, headers=headers) as r:
        doc = adapter.parse_response(await r.read(), model="gem-x")
    assert doc["choices"][0]["message"]["content"] == "Hello from " and doc["choices"][0]["finish_reason"] == "length"
    assert doc["usage"]["completion_tokens"] == 2

    url, headers, body = request_for(sim, "gg", stream=True)
    async with http.post(url, json=body, headers=headers) as r:
        raw = await r.read()
    translator = adapter.stream_translator(model="gem-x")
    items = translator.feed(raw) + translator.close()
    text = "".join(
        i.chunk["choices"][0]["delta"].get("content") or ""
        for i in items
        if i.kind == "chunk" and i.chunk and i.chunk.get("choices")
    )
    assert text == "Hello from gg/gem-x"
    assert not [i for i in items if i.kind == "error"]


@pytest.mark.integration
async def test_gemini_function_call_is_echoed(sim: Simulator, http: aiohttp.ClientSession) -> None:
    url, headers, body = request_for(sim, "gg")
    body["tools"] = [
        {
            "functionDeclarations": [
                {
                    "name": "lookup",
                    "parameters": {"type": "object", "properties": {"q": {"type": "string"}, "n": {"type": "number"}}},
                }
            ]
        }
    ]
    body["toolConfig"] = {"functionCallingConfig": {"mode": "ANY"}}
    async with http.post(url, json=body, headers=headers) as r:
        raw = await r.json()
    assert raw["candidates"][0]["content"]["parts"][0]["functionCall"] == {
        "name": "lookup",
        "args": {"q": "sim", "n": 1},
    }
    doc = get_adapter("gemini").parse_response(json.dumps(raw).encode(), model="gem-x")
    call = doc["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "lookup" and json.loads(call["function"]["arguments"]) == {"q": "sim", "n": 1}


@pytest.mark.integration
async def test_gemini_catalogue_pages_and_count_tokens(sim: Simulator, http: aiohttp.ClientSession) -> None:
    h = {"x-goog-api-key": KEY}
    async with http.get(sim.base_url("gg") + "/models", params={"pageSize": "1"}, headers=h) as r:
        first = await r.json()
    assert [m["name"] for m in first["models"]] == ["models/gem-x"] and first["nextPageToken"]
    async with http.get(
        sim.base_url("gg") + "/models", params={"pageSize": "1", "pageToken": first["nextPageToken"]}, headers=h
    ) as r:
        second = await r.json()
    assert [m["name"] for m in second["models"]] == ["models/gem-y"] and "nextPageToken" not in second
    async with http.post(
        sim.base_url("gg") + "/models/gem-x:countTokens",
        json={"contents": [{"parts": [{"text": "x" * 20}]}]},
        headers=h,
    ) as r:
        assert await r.json() == {"totalTokens": 5}
    async with http.get(sim.base_url("gg") + "/models/gem-x", params={"key": KEY}) as r:
        assert (await r.json())["inputTokenLimit"] == 128000


@pytest.mark.integration
async def test_deepseek_keepalives_are_not_progress_for_the_adapter(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    sim.set_fault("ds", "keepalive_queue", count=1, seconds=0.03, interval=0.01)
    url, headers, body = request_for(sim, "ds", stream=True)
    async with http.post(url, json=body, headers=headers) as r:
        raw = await r.read()
    translator = get_adapter("openai").stream_translator(model="ds-chat")
    items = translator.feed(raw) + translator.close()
    kinds = [i.kind for i in items]
    first_content = next(n for n, i in enumerate(items) if i.content)
    assert kinds[:3] == ["keepalive"] * 3 and kinds[-1] == "done" and first_content > 3


@pytest.mark.integration
async def test_every_family_streams_and_answers_tool_calls_for_the_adapters(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    tools: dict[str, tuple[dict[str, Any], str, str]] = {
        "oa": (
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "f",
                            "parameters": {"type": "object", "properties": {"a": {"type": "boolean"}}},
                        },
                    }
                ],
                "tool_choice": "required",
            },
            "openai",
            "gpt-x",
        ),
        "an": (
            {
                "tools": [{"name": "f", "input_schema": {"type": "object", "properties": {"a": {"type": "boolean"}}}}],
                "tool_choice": {"type": "any"},
            },
            "anthropic",
            "claude-x",
        ),
    }
    for provider, (extra, family, model) in tools.items():
        url, headers, body = request_for(sim, provider, stream=True)
        async with http.post(url, json=body | extra, headers=headers) as r:
            raw = await r.read()
        translator = get_adapter(family).stream_translator(model=model)
        items = translator.feed(raw) + translator.close()
        args = "".join(
            tc["function"].get("arguments") or ""
            for i in items
            if i.kind == "chunk" and i.chunk
            for ch in i.chunk.get("choices", [])
            for tc in ch.get("delta", {}).get("tool_calls") or []
        )
        assert json.loads(args) == {"a": True}, (provider, raw[:400])
        assert items[-1].kind == "done"
