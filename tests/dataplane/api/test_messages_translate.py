"""Anthropic Messages ↔ chat translation and the Messages event stream written from chat chunks."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.base import StreamItem
from controlplane.domain import Classification, ErrorClass
from dataplane.api.messages_stream import ChatToMessages
from dataplane.api.messages_translate import error_type, from_chat_completion, to_chat_body
from tests.dataplane.api.test_responses_translate import _chunk, events


def test_system_turns_tool_use_and_tool_results_become_chat_messages() -> None:
    body = to_chat_body(
        {
            "model": "r",
            "max_tokens": 100,
            "system": [{"type": "text", "text": "be brief"}],
            "stop_sequences": ["END"],
            "messages": [
                {"role": "user", "content": "weather in Oslo?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "checking"},
                        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_1",
                            "content": [{"type": "text", "text": "cold"}],
                        },
                        {"type": "text", "text": "and tomorrow?"},
                    ],
                },
            ],
            "tools": [{"name": "get_weather", "description": "d", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        }
    )
    msgs = body["messages"]
    assert msgs[0] == {"role": "system", "content": "be brief"}
    assert msgs[2]["content"] == "checking"
    assert msgs[2]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city":"Oslo"}'}
    # the tool result comes right after the assistant's call, then the rest of the user's turn
    assert msgs[3] == {"role": "tool", "tool_call_id": "toolu_1", "content": "cold"}
    assert msgs[4] == {"role": "user", "content": "and tomorrow?"}
    assert body["stop"] == ["END"] and body["max_tokens"] == 100
    assert body["tool_choice"] == "required" and body["parallel_tool_calls"] is False
    assert body["tools"][0]["function"]["parameters"] == {"type": "object"}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"model": "r", "messages": [{"role": "user", "content": "x"}]}, "max_tokens: required"),
        ({"model": "r", "max_tokens": 5, "messages": []}, "messages: required"),
        ({"model": "r", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
        (
            {"model": "r", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "document"}]}]},
            "messages[0].content[0].type: 'document' is not translated",
        ),
    ],
)
def test_bad_input_is_a_value_error_naming_the_field(body: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError) as info:
        to_chat_body(body)
    assert str(info.value).startswith(words)


def test_a_chat_completion_with_a_tool_call_becomes_a_message_with_tool_use() -> None:
    completion = {
        "choices": [
            {
                "message": {
                    "content": None,
                    "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": '{"a":1}'}}],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2},
    }
    msg = from_chat_completion(completion, mid="msg_1", model="r")
    assert msg["type"] == "message" and msg["role"] == "assistant" and msg["stop_reason"] == "tool_use"
    assert msg["content"] == [{"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}}]
    assert msg["usage"] == {"input_tokens": 5, "output_tokens": 2}


def test_chat_chunks_become_the_messages_event_sequence() -> None:
    w = ChatToMessages(mid="msg_1", model="r")
    head = {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}
    data = w.encode(
        [
            _chunk({"content": "Hi"}),
            _chunk({"tool_calls": [head]}),
            _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}, "tool_calls"),
            _chunk({}, usage={"prompt_tokens": 4, "completion_tokens": 3}),
            StreamItem("done"),
        ]
    )
    evs = events(data)
    assert [e["type"] for e in evs] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert evs[3]["delta"] == {"type": "text_delta", "text": "Hi"}
    assert evs[5]["index"] == 1 and evs[5]["content_block"]["type"] == "tool_use"
    assert evs[6]["delta"] == {"type": "input_json_delta", "partial_json": "{}"}
    assert evs[8]["delta"]["stop_reason"] == "tool_use" and evs[8]["usage"] == {"input_tokens": 4, "output_tokens": 3}


def test_a_cut_stream_ends_with_an_anthropic_error_event_never_message_stop() -> None:
    w = ChatToMessages(mid="msg_1", model="r")
    data = w.encode([_chunk({"content": "Hi"})]) + w.error(Classification(ErrorClass.TIMEOUT, detail="stalled"))
    evs = events(data)
    assert evs[-1] == {"type": "error", "error": {"type": "timeout_error", "message": "stalled"}}
    assert "message_stop" not in [e["type"] for e in evs]


@pytest.mark.parametrize(
    ("status", "cls", "kind"),
    [
        (400, None, "invalid_request_error"),
        (503, None, "overloaded_error"),
        (429, ErrorClass.RATE_LIMITED, "rate_limit_error"),
        (404, None, "not_found_error"),
    ],
)
def test_error_types_follow_anthropic_names(status: int, cls: ErrorClass | None, kind: str) -> None:
    assert error_type(status, cls) == kind


def test_an_answer_without_content_still_starts_and_stops_the_message() -> None:
    w = ChatToMessages(mid="m", model="r")
    evs = events(w.encode([_chunk({}, "stop"), StreamItem("done")]))
    assert [e["type"] for e in evs] == ["message_start", "ping", "message_delta", "message_stop"]
    assert evs[0]["message"]["id"] == "m" and evs[2]["delta"]["stop_reason"] == "end_turn"
