"""Anthropic family: OpenAI → Messages request, Messages → chat.completion, event stream → chunks."""

from __future__ import annotations

import orjson
import pytest
from openai.types.chat import ChatCompletionFunctionToolParam

from adapters.anthropic import AnthropicAdapter
from controlplane.domain import ErrorClass as E
from controlplane.errors import ProviderError
from tests.adapters.conftest import provider

A = AnthropicAdapter()
TOOLS: list[ChatCompletionFunctionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def test_request_maps_system_tools_tool_calls_and_results() -> None:
    body = {
        "model": "frontier",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather in Paris?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            {"role": "user", "content": "Thanks"},
        ],
        "tools": TOOLS,
        "tool_choice": "required",
        "max_completion_tokens": 64,
        "stop": "END",
        "temperature": 0.2,
        "top_p": 0.9,
    }
    req = A.build_request(provider("anthropic", "https://api.anthropic.com"), "claude-sonnet-4", body, stream=True)
    assert req.url == "https://api.anthropic.com/v1/messages"
    assert req.headers["x-api-key"] == "sk-test-secret-key-123456" and req.headers["anthropic-version"] == "2023-06-01"
    out = orjson.loads(req.body or b"")
    assert out["model"] == "claude-sonnet-4" and out["system"] == "Be brief." and out["stream"] is True
    assert (
        out["max_tokens"] == 64
        and out["stop_sequences"] == ["END"]
        and out["temperature"] == 0.2
        and out["top_p"] == 0.9
    )
    assert out["tools"] == [
        {"name": "weather", "description": "Weather in a city", "input_schema": TOOLS[0]["function"]["parameters"]}
    ]
    assert out["tool_choice"] == {"type": "any"}
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
    assert out["messages"][0]["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
    }
    assert out["messages"][1]["content"] == [
        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}
    ]
    # the tool result and the following user turn merge into one user message (alternation)
    assert out["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
        {"type": "text", "text": "Thanks"},
    ]


def test_max_tokens_defaults_and_named_tool_choice() -> None:
    body = {
        "messages": [{"role": "user", "content": "x"}],
        "tools": TOOLS,
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "parallel_tool_calls": False,
    }
    out = orjson.loads(
        A.build_request(provider("anthropic", "https://api.anthropic.com/v1"), "c", body, stream=False).body or b""
    )
    assert out["max_tokens"] == 4096 and "stream" not in out
    assert out["tool_choice"] == {"type": "tool", "name": "weather", "disable_parallel_tool_use": True}


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        ([], "messages"),
        ([{"role": "wizard", "content": "x"}], "messages[0].role"),
        (
            [{"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{nope"}}]}],
            "messages[0].tool_calls[0].function.arguments",
        ),
        ([{"role": "user", "content": 5}], "messages[0].content"),
    ],
)
def test_bad_request_bodies_name_the_field(messages: list[object], field: str) -> None:
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        A.build_request(provider("anthropic", "https://api.anthropic.com"), "c", {"messages": messages}, stream=False)


def message(content: list[dict[str, object]], stop: str | None = "end_turn") -> bytes:
    return orjson.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4",
            "content": content,
            "stop_reason": stop,
            "usage": {"input_tokens": 10, "output_tokens": 5},
        }
    )


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reasons_map_to_finish_reasons(stop: str, finish: str) -> None:
    out = A.parse_response(message([{"type": "text", "text": "hi"}], stop), model="c")
    assert out["choices"][0]["finish_reason"] == finish


def test_response_with_text_thinking_and_tool_use() -> None:
    out = A.parse_response(
        message(
            [
                {"type": "thinking", "thinking": "hmm"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_9", "name": "weather", "input": {"city": "Paris"}},
            ],
            "tool_use",
        ),
        model="c",
    )
    msg = out["choices"][0]["message"]
    assert out["object"] == "chat.completion" and out["id"] == "msg_1"
    assert msg["content"] == "Let me check." and msg["reasoning_content"] == "hmm"
    assert msg["tool_calls"] == [
        {"id": "toolu_9", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}
    ]
    assert out["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


@pytest.mark.parametrize(
    "body", [b"", b"<html>", b'{"type": "message"', b'{"type": "message", "content": "x"}', message([], None)]
)
def test_garbage_messages_are_bad_response(body: bytes) -> None:
    with pytest.raises(ProviderError) as info:
        A.parse_response(body, model="c")
    assert info.value.error_class is E.BAD_RESPONSE


def ev(name: str, data: dict[str, object]) -> bytes:
    return f"event: {name}\ndata: ".encode() + orjson.dumps({"type": name, **data}) + b"\n\n"


START = ev(
    "message_start",
    {
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4",
            "content": [],
            "usage": {"input_tokens": 10, "output_tokens": 1},
        }
    },
)


def run(*parts: bytes) -> list:  # type: ignore[type-arg]
    t = A.stream_translator(model="c")
    return [i for p in parts for i in t.feed(p)] + t.close()


def test_text_stream_translates_to_chunks_with_usage_and_done() -> None:
    items = run(
        START,
        ev("ping", {}),
        ev("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        ev("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
        ev("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "lo"}}),
        ev("content_block_stop", {"index": 0}),
        ev("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 7}}),
        ev("message_stop", {}),
    )
    kinds = [i.kind for i in items]
    assert kinds == ["keepalive", "keepalive", "keepalive", "chunk", "chunk", "keepalive", "chunk", "done"]
    assert items[0].chunk["choices"][0]["delta"]["role"] == "assistant"
    assert [i.chunk["choices"][0]["delta"].get("content") for i in items[3:5]] == ["Hel", "lo"]
    assert items[3].content and not items[6].content
    assert items[6].finish_reason == "stop"
    assert items[6].usage == {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17}
    assert items[3].chunk["object"] == "chat.completion.chunk" and items[3].chunk["id"] == "msg_1"


def test_tool_use_stream_gives_tool_call_deltas() -> None:
    items = run(
        START,
        ev(
            "content_block_start",
            {"index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}},
        ),
        ev("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"city": '}}),
        ev("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'}}),
        ev("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 12}}),
        ev("message_stop", {}),
    )
    first = items[1].chunk["choices"][0]["delta"]["tool_calls"][0]
    assert first == {"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": ""}}
    args = "".join(i.chunk["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for i in items[2:4])
    assert orjson.loads(args) == {"city": "Paris"}
    assert items[4].finish_reason == "tool_calls" and items[-1].kind == "done"


def test_thinking_delta_is_content_for_ttft() -> None:
    items = run(START, ev("content_block_delta", {"index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}}))
    assert items[1].content and items[1].chunk["choices"][0]["delta"] == {"reasoning_content": "hmm"}


def test_an_mid_overload_event_is_overloaded_error_item() -> None:
    items = run(
        START,
        ev("ping", {}),
        ev("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "a"}}),
        ev("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "b"}}),
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n',
    )
    assert [i.kind for i in items] == ["keepalive", "keepalive", "chunk", "chunk", "error"]
    assert items[-1].classification.error_class is E.OVERLOADED


def test_stream_without_message_stop_is_truncated() -> None:
    items = run(START, ev("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "a"}}))
    assert items[-1].kind == "error" and items[-1].classification.code == "truncated"


def test_malformed_event_json_is_bad_response() -> None:
    items = run(START, b'event: content_block_delta\ndata: {"type": "content_block_del\n\n')
    assert items[-1].kind == "error" and items[-1].classification.error_class is E.BAD_RESPONSE
