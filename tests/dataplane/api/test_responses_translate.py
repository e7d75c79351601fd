"""Responses ↔ chat translation and the Responses event stream written from chat chunks."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from adapters.base import StreamItem
from controlplane.domain import Classification, ErrorClass
from dataplane.api.responses_stream import ChatToResponses, NativeResponses
from dataplane.api.responses_translate import NativeOnly, from_chat_completion, input_items, to_chat_body


def chat(body: dict[str, Any]) -> dict[str, Any]:
    return to_chat_body(body, input_items(body))


def events(data: bytes) -> list[dict[str, Any]]:
    out = []
    for block in data.decode().split("\n\n"):
        if not block.strip():
            continue
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        doc = orjson.loads(lines["data"])
        assert doc["type"] == lines["event"]  # the event name and the payload's type agree
        out.append(doc)
    return out


def test_a_string_input_with_instructions_becomes_system_and_user_messages() -> None:
    body = chat({"model": "r", "input": "hi", "instructions": "be brief", "max_output_tokens": 50, "temperature": 0.2})
    assert body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert body["max_tokens"] == 50 and body["temperature"] == 0.2


def test_function_calls_and_their_outputs_become_assistant_tool_calls_and_tool_messages() -> None:
    body = chat(
        {
            "model": "r",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
                {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
                {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": '{"city":"Rome"}'},
                {"type": "function_call_output", "call_id": "c1", "output": "cold"},
                {"type": "function_call_output", "call_id": "c2", "output": "warm"},
            ],
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "get_weather"},
        }
    )
    assert body["messages"][1]["role"] == "assistant"
    assert [c["id"] for c in body["messages"][1]["tool_calls"]] == ["c1", "c2"]  # one turn, two parallel calls
    assert body["messages"][2:] == [
        {"role": "tool", "tool_call_id": "c1", "content": "cold"},
        {"role": "tool", "tool_call_id": "c2", "content": "warm"},
    ]
    assert body["tools"][0]["function"]["name"] == "get_weather"
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


def test_json_schema_text_format_becomes_a_chat_response_format() -> None:
    body = chat({"model": "r", "input": "x", "text": {"format": {"type": "json_schema", "name": "n", "schema": {}}}})
    assert body["response_format"] == {"type": "json_schema", "json_schema": {"name": "n", "schema": {}}}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"model": "r", "input": "x", "tools": [{"type": "web_search"}]}, "tools[0]: the built-in tool 'web_search'"),
        ({"model": "r", "input": [{"type": "item_reference", "id": "x"}]}, "input[0].type 'item_reference'"),
        ({"model": "r", "input": "x", "background": True}, "background needs a native Responses target"),
    ],
)
def test_what_chat_cannot_express_is_native_only_and_named(body: dict[str, Any], words: str) -> None:
    with pytest.raises(NativeOnly, match="^" + words.replace("[", r"\[").replace("]", r"\]")):
        chat(body)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"model": "r"}, "input: required"),
        ({"model": "r", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"model": "r", "input": "x", "max_output_tokens": 0}, "max_output_tokens: must be a positive integer"),
        ({"model": "r", "input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id: required"),
    ],
)
def test_bad_input_is_a_value_error_naming_the_field(body: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError) as info:
        chat(body)
    assert not isinstance(info.value, NativeOnly)
    assert str(info.value).startswith(words)


def test_a_chat_completion_with_text_and_a_tool_call_becomes_a_response() -> None:
    completion = {
        "model": "gpt-x",
        "choices": [
            {
                "message": {
                    "content": "let me look",
                    "tool_calls": [{"id": "c9", "function": {"name": "f", "arguments": '{"a":1}'}}],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3},
    }
    resp = from_chat_completion({"model": "r", "input": "x", "metadata": {"k": "v"}}, completion, rid="resp_1")
    assert resp["object"] == "response" and resp["id"] == "resp_1" and resp["status"] == "completed"
    assert [o["type"] for o in resp["output"]] == ["message", "function_call"]
    assert resp["output"][0]["content"][0] == {"type": "output_text", "text": "let me look", "annotations": []}
    assert resp["output"][1]["call_id"] == "c9" and resp["output"][1]["arguments"] == '{"a":1}'
    assert resp["usage"]["input_tokens"] == 7 and resp["usage"]["total_tokens"] == 10
    assert resp["metadata"] == {"k": "v"}


def test_a_length_cut_is_an_incomplete_response() -> None:
    completion = {"choices": [{"message": {"content": "ab"}, "finish_reason": "length"}]}
    resp = from_chat_completion({"model": "r", "input": "x"}, completion, rid="r")
    assert resp["status"] == "incomplete" and resp["incomplete_details"] == {"reason": "max_output_tokens"}


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None) -> StreamItem:
    doc: dict[str, Any] = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        doc["usage"] = usage
    return StreamItem("chunk", chunk=doc, content=bool(delta))


def test_chat_chunks_become_the_responses_event_sequence_with_usage_at_the_end() -> None:
    w = ChatToResponses({"model": "r", "input": "x"}, rid="resp_1", model="gpt-x")
    data = w.encode([StreamItem("keepalive"), _chunk({"content": "Hel"})])
    data += w.encode(
        [_chunk({"content": "lo"}), _chunk({}, "stop"), _chunk({}, usage={"prompt_tokens": 2, "completion_tokens": 2})]
    )
    data += w.encode([StreamItem("done")])
    evs = events(data)
    assert [e["type"] for e in evs] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in evs] == list(range(len(evs)))
    assert evs[6]["text"] == "Hello"
    done = evs[-1]["response"]
    assert done["status"] == "completed" and done["usage"]["output_tokens"] == 2
    assert done["output"][0]["content"][0]["text"] == "Hello"
    assert w.final == done


def test_streamed_tool_calls_become_function_call_items_with_argument_deltas() -> None:
    w = ChatToResponses({"model": "r", "input": "x"}, rid="resp_1", model="gpt-x")
    head = {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}
    data = w.encode(
        [
            _chunk({"tool_calls": [head]}),
            _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
            _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}, "tool_calls"),
            StreamItem("done"),
        ]
    )
    evs = events(data)
    kinds = [e["type"] for e in evs]
    assert kinds[2:] == [
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert evs[-2]["item"]["arguments"] == '{"a":1}' and evs[-2]["item"]["call_id"] == "c1"


def test_a_cut_stream_ends_with_error_and_response_failed_never_completed() -> None:
    w = ChatToResponses({"model": "r", "input": "x"}, rid="resp_1", model="gpt-x")
    data = w.encode([_chunk({"content": "Hel"})])
    data += w.error(Classification(ErrorClass.BAD_RESPONSE, detail="upstream stream cut short"))
    evs = events(data)
    assert [e["type"] for e in evs][-2:] == ["error", "response.failed"]
    assert evs[-2]["message"] == "upstream stream cut short" and evs[-2]["code"] == "bad_response"
    assert evs[-1]["response"]["status"] == "failed"
    assert not any(e["type"] == "response.completed" for e in evs)


def test_native_events_pass_through_and_a_cut_continues_their_sequence() -> None:
    w = NativeResponses()
    raw = b'event: response.created\ndata: {"type":"response.created","sequence_number":0,"response":{"id":"resp_up"}}\n\n'
    out = w.encode([StreamItem("keepalive", chunk=orjson.loads(raw.split(b"data: ")[1]), raw=raw)])
    assert out == raw
    evs = events(w.error(Classification(ErrorClass.TIMEOUT, detail="stalled")))
    assert evs[0]["sequence_number"] == 1 and evs[1]["response"]["id"] == "resp_up"
