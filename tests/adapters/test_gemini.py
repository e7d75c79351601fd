"""Gemini family: OpenAI → GenerateContentRequest, answers and alt=sse chunks → OpenAI shape."""

from __future__ import annotations

import orjson
import pytest
from openai.types.chat import ChatCompletionFunctionToolParam

from adapters.gemini import GeminiAdapter
from controlplane.domain import ErrorClass as E
from controlplane.errors import ProviderError
from tests.adapters.conftest import provider

A = GeminiAdapter()
BASE = "https://generativelanguage.googleapis.com/v1beta"
TOOLS: list[ChatCompletionFunctionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def test_request_maps_contents_system_tools_and_generation_config() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_0",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_0", "content": '{"temp": 18}'},
        ],
        "tools": TOOLS,
        "tool_choice": "auto",
        "max_tokens": 16,
        "temperature": 0.1,
        "top_p": 0.5,
        "stop": ["END"],
    }
    req = A.build_request(provider("gemini", BASE), "models/gemini-2.5-flash", body, stream=True)
    assert req.url == f"{BASE}/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert req.headers["x-goog-api-key"] == "sk-test-secret-key-123456"
    out = orjson.loads(req.body or b"")
    assert out["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert out["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "weather", "args": {"city": "Paris"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "weather", "response": {"temp": 18}}}]},
    ]
    assert out["generationConfig"] == {"maxOutputTokens": 16, "temperature": 0.1, "topP": 0.5, "stopSequences": ["END"]}
    assert out["tools"] == [
        {
            "functionDeclarations": [
                {"name": "weather", "description": "Weather", "parameters": TOOLS[0]["function"]["parameters"]}
            ]
        }
    ]
    assert out["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}


def test_non_streaming_url_and_images() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}},
                    {"type": "image_url", "image_url": {"url": "gs://b/x.png"}},
                ],
            }
        ]
    }
    req = A.build_request(provider("gemini", BASE), "gemini-2.5-pro", body, stream=False)
    assert req.url == f"{BASE}/models/gemini-2.5-pro:generateContent"
    parts = orjson.loads(req.body or b"")["contents"][0]["parts"]
    assert parts == [
        {"inlineData": {"mimeType": "image/jpeg", "data": "QUJD"}},
        {"fileData": {"fileUri": "gs://b/x.png"}},
    ]


def answer(parts: list[dict[str, object]], finish: str | None = "STOP") -> dict[str, object]:
    cand: dict[str, object] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        cand["finishReason"] = finish
    return {
        "candidates": [cand],
        "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 3, "totalTokenCount": 7},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "r1",
    }


@pytest.mark.parametrize(
    ("finish", "expected"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
    ],
)
def test_finish_reasons_map(finish: str, expected: str) -> None:
    out = A.parse_response(orjson.dumps(answer([{"text": "hi"}], finish)), model="g")
    assert out["choices"][0]["finish_reason"] == expected


def test_function_call_answer_becomes_tool_calls() -> None:
    out = A.parse_response(
        orjson.dumps(answer([{"text": "ok"}, {"functionCall": {"name": "weather", "args": {"city": "Paris"}}}])),
        model="g",
    )
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [
        {"id": "call_0", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}
    ]
    assert out["usage"] == {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}
    assert out["model"] == "gemini-2.5-flash" and out["id"] == "r1"


def test_blocked_prompt_is_a_content_filter_completion() -> None:
    out = A.parse_response(b'{"promptFeedback": {"blockReason": "SAFETY"}}', model="g")
    assert out["choices"][0]["finish_reason"] == "content_filter"


@pytest.mark.parametrize(
    "body", [b"", b"<html>", b'{"candidates": [', b"{}", b'{"candidates": []}', orjson.dumps(answer([], None))]
)
def test_garbage_answers_are_bad_response(body: bytes) -> None:
    with pytest.raises(ProviderError) as info:
        A.parse_response(body, model="g")
    assert info.value.error_class is E.BAD_RESPONSE


def data(doc: dict[str, object]) -> bytes:
    return b"data: " + orjson.dumps(doc) + b"\r\n\r\n"


def run(*parts: bytes) -> list:  # type: ignore[type-arg]
    t = A.stream_translator(model="g")
    return [i for p in parts for i in t.feed(p)] + t.close()


def test_stream_chunks_end_with_finish_reason() -> None:
    items = run(data(answer([{"text": "Hel"}], None)), data(answer([{"text": "lo"}], "STOP")))
    assert [i.kind for i in items] == ["chunk", "chunk", "done"]
    assert items[0].content and items[0].chunk["choices"][0]["delta"] == {"content": "Hel"}
    assert items[1].finish_reason == "stop" and items[1].usage == {
        "prompt_tokens": 4,
        "completion_tokens": 3,
        "total_tokens": 7,
    }


def test_stream_function_calls_get_distinct_indexes() -> None:
    items = run(
        data(answer([{"functionCall": {"name": "a", "args": {}}}], None)),
        data(answer([{"functionCall": {"name": "b", "args": {"x": 1}}}], "STOP")),
    )
    calls = [i.chunk["choices"][0]["delta"]["tool_calls"][0] for i in items if i.kind == "chunk"]
    assert [(c["index"], c["id"], c["function"]["name"]) for c in calls] == [(0, "call_0", "a"), (1, "call_1", "b")]
    assert items[1].finish_reason == "tool_calls"


def test_thought_parts_are_reasoning_content() -> None:
    items = run(data(answer([{"text": "hmm", "thought": True}], None)))
    assert items[0].content and items[0].chunk["choices"][0]["delta"] == {"reasoning_content": "hmm"}


def test_gg_mid_raw_json_error_is_classified() -> None:
    raw = b'{\n  "error": {\n    "code": 503,\n    "message": "The model is overloaded. Please try again later.",\n    "status": "UNAVAILABLE"\n  }\n}\n'
    items = run(data(answer([{"text": "a"}], None)), data(answer([{"text": "b"}], None)), raw)
    assert [i.kind for i in items] == ["chunk", "chunk", "error"]
    assert items[-1].classification.error_class is E.OVERLOADED


def test_stream_without_finish_reason_is_truncated() -> None:
    items = run(data(answer([{"text": "a"}], None)))
    assert items[-1].kind == "error" and items[-1].classification.code == "truncated"


def test_malformed_stream_chunk_is_bad_response() -> None:
    items = run(b'data: {"candidates": [{"content": {"parts": [{"text": "ab\n\n')
    assert items[0].kind == "error" and items[0].classification.error_class is E.BAD_RESPONSE
