"""The official `openai` and `anthropic` SDKs, pointed at the simulator, parse its answers (JSON and streaming,
text and tool calls, catalogue pages, errors): the simulator is only useful if it is faithful."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import openai
import pytest

from adapters.sim import Simulator
from tests.sim.conftest import KEY

pytestmark = pytest.mark.integration

WEATHER_OA: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
WEATHER_AN: Any = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "units": {"type": "string", "enum": ["metric", "imperial"]}},
        "required": ["city"],
    },
}


@pytest.fixture
async def oa(sim: Simulator) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=sim.base_url("oa"), api_key=KEY, max_retries=0) as client:
        yield client


@pytest.fixture
async def an(sim: Simulator) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=sim.base_url("an"), api_key=KEY, max_retries=0) as client:
        yield client


async def test_openai_sdk_parses_a_completion_with_usage(oa: openai.AsyncOpenAI) -> None:
    resp = await oa.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "Say hello"}])
    assert resp.choices[0].message.content == "Hello from oa/gpt-x"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None and resp.usage.completion_tokens == 3
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + 3


async def test_openai_sdk_streams_deltas_and_final_usage(oa: openai.AsyncOpenAI) -> None:
    stream = await oa.chat.completions.create(
        model="gpt-x", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}
    )
    text, finish, usage = "", None, None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage
    assert text == "Hello from oa/gpt-x" and finish == "stop"
    assert usage is not None and usage.completion_tokens == 3


async def test_openai_sdk_max_tokens_cuts_with_finish_length(oa: openai.AsyncOpenAI) -> None:
    resp = await oa.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "hi"}], max_tokens=1)
    assert resp.choices[0].message.content == "Hello " and resp.choices[0].finish_reason == "length"


async def test_openai_sdk_gets_the_required_tool_call_echoed(oa: openai.AsyncOpenAI) -> None:
    resp = await oa.chat.completions.create(
        model="gpt-x", messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER_OA], tool_choice="required"
    )
    calls = resp.choices[0].message.tool_calls
    assert resp.choices[0].finish_reason == "tool_calls" and calls
    call = calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "sim", "days": 1}

    stream = await oa.chat.completions.create(
        model="gpt-x",
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER_OA],
        tool_choice="required",
        stream=True,
    )
    name, args, finish = "", "", None
    async for chunk in stream:
        for tc in chunk.choices[0].delta.tool_calls or []:
            name += (tc.function.name or "") if tc.function else ""
            args += (tc.function.arguments or "") if tc.function else ""
        finish = chunk.choices[0].finish_reason or finish
    assert name == "get_weather" and json.loads(args) == {"city": "sim", "days": 1} and finish == "tool_calls"


async def test_openai_sdk_without_tool_choice_gets_text(oa: openai.AsyncOpenAI) -> None:
    resp = await oa.chat.completions.create(
        model="gpt-x", messages=[{"role": "user", "content": "hi"}], tools=[WEATHER_OA]
    )
    assert resp.choices[0].message.tool_calls is None and resp.choices[0].message.content


async def test_openai_sdk_lists_models_and_maps_errors(sim: Simulator, oa: openai.AsyncOpenAI) -> None:
    page = await oa.models.list()
    assert [m.id for m in page.data] == ["gpt-x", "gpt-y"]
    sim.set_fault("oa", "rate_limited", count=1)
    with pytest.raises(openai.RateLimitError) as exc:
        await oa.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "hi"}])
    assert exc.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.NotFoundError):
        await oa.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    async with openai.AsyncOpenAI(base_url=sim.base_url("oa"), api_key="wrong", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError):
            await bad.models.list()


async def test_openai_sdk_surfaces_a_mid_stream_error(sim: Simulator, oa: openai.AsyncOpenAI) -> None:
    sim.set_fault("oa", "mid_stream_error", count=1)
    stream = await oa.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "hi"}], stream=True)
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass


async def test_anthropic_sdk_parses_a_message_with_usage(an: anthropic.AsyncAnthropic) -> None:
    msg = await an.messages.create(model="claude-x", max_tokens=64, messages=[{"role": "user", "content": "hello"}])
    assert msg.content[0].type == "text" and msg.content[0].text == "Hello from an/claude-x"
    assert msg.stop_reason == "end_turn" and msg.usage.output_tokens == 3


async def test_anthropic_sdk_streams_to_a_final_message(an: anthropic.AsyncAnthropic) -> None:
    async with an.messages.stream(
        model="claude-x", max_tokens=2, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "Hello from " and final.stop_reason == "max_tokens" and final.usage.output_tokens == 2


async def test_anthropic_sdk_gets_the_forced_tool_use(an: anthropic.AsyncAnthropic) -> None:
    msg = await an.messages.create(
        model="claude-x",
        max_tokens=64,
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER_AN],
        tool_choice={"type": "any"},
    )
    block = msg.content[0]
    assert msg.stop_reason == "tool_use" and block.type == "tool_use"
    assert block.name == "get_weather" and block.input == {"city": "sim", "units": "metric"}

    async with an.messages.stream(
        model="claude-x",
        max_tokens=64,
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER_AN],
        tool_choice={"type": "tool", "name": "get_weather"},
    ) as stream:
        final = await stream.get_final_message()
    assert final.content[0].type == "tool_use" and final.content[0].input == {"city": "sim", "units": "metric"}


async def test_anthropic_sdk_pages_models_and_counts_tokens(an: anthropic.AsyncAnthropic) -> None:
    first = await an.models.list(limit=1)
    assert [m.id for m in first.data] == ["claude-x"] and first.has_more
    every = [m.id async for m in await an.models.list(limit=1)]
    assert every == ["claude-x", "claude-y"]
    counted = await an.messages.count_tokens(model="claude-x", messages=[{"role": "user", "content": "x" * 40}])
    assert counted.input_tokens == 10


async def test_anthropic_sdk_maps_overload_and_mid_stream_error(sim: Simulator, an: anthropic.AsyncAnthropic) -> None:
    sim.set_fault("an", "overloaded", count=1)
    with pytest.raises(anthropic.APIStatusError) as exc:
        await an.messages.create(model="claude-x", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    assert exc.value.status_code == 529
    sim.set_fault("an", "mid_stream_error", count=1)
    with pytest.raises(anthropic.APIStatusError):
        async with an.messages.stream(
            model="claude-x", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            async for _ in stream:
                pass
    async with anthropic.AsyncAnthropic(base_url=sim.base_url("an"), api_key="wrong", max_retries=0) as bad:
        with pytest.raises(anthropic.AuthenticationError):
            await bad.messages.create(model="claude-x", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
