"""Streamed and non-streamed answers agree on tool calls, per adapter: the same forced tool call comes back with
the same name, arguments and finish reason (`tool_calls`) whether the client streams or not. Gemini sends the
functionCall and its STOP in separate chunks; the streamed answer used to end with `stop` (issue 17)."""

from __future__ import annotations

import json

import pytest
from openai.types.chat import (
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
    ChatCompletionNamedToolChoiceParam,
    ChatCompletionToolParam,
)

from tests.dataplane.conftest import Env

TOOLS: list[ChatCompletionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
MSG: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Weather in Lisbon?"}]
FORCED: ChatCompletionNamedToolChoiceParam = {"type": "function", "function": {"name": "get_weather"}}


@pytest.mark.parametrize("target", ["oa/gpt-x", "an/claude-x", "gg/gem-x"], ids=["openai", "anthropic", "gemini"])
async def test_streamed_tool_call_matches_the_non_streamed_one(env: Env, target: str) -> None:
    plain = await env.aclient.chat.completions.create(
        model=target,
        messages=MSG,
        tools=TOOLS,
        tool_choice=FORCED,
    )
    choice = plain.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = [c for c in choice.message.tool_calls or [] if isinstance(c, ChatCompletionMessageFunctionToolCall)]
    assert [c.function.name for c in calls] == ["get_weather"]
    expected = [(c.function.name, json.loads(c.function.arguments)) for c in calls]

    stream = await env.aclient.chat.completions.create(
        model=target,
        messages=MSG,
        tools=TOOLS,
        tool_choice=FORCED,
        stream=True,
    )
    finishes: list[str] = []
    names: dict[int, str] = {}
    args: dict[int, str] = {}
    async for chunk in stream:
        for ch in chunk.choices:
            if ch.finish_reason is not None:
                finishes.append(ch.finish_reason)
            for tc in ch.delta.tool_calls or []:
                if tc.function is not None and tc.function.name:
                    names[tc.index] = names.get(tc.index, "") + tc.function.name
                if tc.function is not None and tc.function.arguments:
                    args[tc.index] = args.get(tc.index, "") + tc.function.arguments
    assert finishes == ["tool_calls"], f"{target}: streamed finish reasons {finishes}"
    streamed = [(names[i], json.loads(args.get(i) or "{}")) for i in sorted(names)]
    assert streamed == expected
