"""A simulator with one provider per family and the host flavors the catalogue needs, on an injected clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from adapters.sim import Simulator
from tests.fakes import FakeClock

KEY = "test-key"

SIM_CONFIG: dict[str, Any] = {
    "seed": 1,
    "providers": [
        {
            "id": "oa",
            "family": "openai",
            "flavor": "openai",
            "api_key": KEY,
            "models": [{"name": "gpt-x", "context_window": 8192}, {"name": "gpt-y"}],
        },
        {
            "id": "an",
            "family": "anthropic",
            "api_key": KEY,
            "models": [{"name": "claude-x", "context_window": 200000}, {"name": "claude-y"}],
        },
        {"id": "gg", "family": "gemini", "api_key": KEY, "models": [{"name": "gem-x"}, {"name": "gem-y"}]},
        {"id": "ds", "family": "openai", "flavor": "deepseek", "api_key": KEY, "models": [{"name": "ds-chat"}]},
        {"id": "orr", "family": "openai", "flavor": "openrouter", "api_key": KEY, "models": [{"name": "or-m"}]},
        {"id": "lc", "family": "openai", "flavor": "llamacpp", "api_key": None, "models": [{"name": "local"}]},
    ],
}
MODEL = {"oa": "gpt-x", "an": "claude-x", "gg": "gem-x", "ds": "ds-chat", "orr": "or-m", "lc": "local"}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator.from_yaml(SIM_CONFIG, clock=FakeClock()) as s:
        yield s


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # No connection reuse: a reset or refused provider must not be masked by aiohttp's retry on a kept-alive socket.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        yield s


def family_of(provider: str) -> str:
    return {"an": "anthropic", "gg": "gemini"}.get(provider, "openai")


def request_for(
    sim: Simulator, provider: str, *, stream: bool = False, model: str | None = None, max_tokens: int | None = None
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """URL, headers and body of one inference call in the provider's own wire format."""
    model = model or MODEL[provider]
    base = sim.base_url(provider)
    fam = family_of(provider)
    if fam == "anthropic":
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens or 64,
            "messages": [{"role": "user", "content": "hi"}],
            "stream": stream,
        }
        return f"{base}/v1/messages", {"x-api-key": KEY, "anthropic-version": "2023-06-01"}, body
    if fam == "gemini":
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
        if max_tokens:
            body["generationConfig"] = {"maxOutputTokens": max_tokens}
        return f"{base}/models/{model}:{method}", {"x-goog-api-key": KEY}, body
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    if max_tokens:
        body["max_tokens"] = max_tokens
    return f"{base}/chat/completions", {"Authorization": f"Bearer {KEY}"}, body


async def call(
    http: aiohttp.ClientSession, sim: Simulator, provider: str, **kw: Any
) -> tuple[int, dict[str, str], bytes]:
    url, headers, body = request_for(sim, provider, **kw)
    async with http.post(url, json=body, headers=headers) as resp:
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}, await resp.read()
