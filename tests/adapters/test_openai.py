"""OpenAI-compatible family: request pass-through, response checks and stream pass-through."""

from __future__ import annotations

import orjson
import pytest

from adapters.openai import OpenAIAdapter
from controlplane.domain import ErrorClass as E
from controlplane.errors import ProviderError
from tests.adapters.conftest import provider

A = OpenAIAdapter()
BODY = {
    "model": "frontier",
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": 5,
    "turnout": {"prefer": "x"},
}


def test_request_replaces_model_and_keeps_the_rest() -> None:
    req = A.build_request(provider("openai", "https://api.openai.com/v1"), "gpt-4o", BODY, stream=True)
    assert (req.method, req.url) == ("POST", "https://api.openai.com/v1/chat/completions")
    body = orjson.loads(req.body or b"")
    assert body == {"model": "gpt-4o", "messages": BODY["messages"], "max_tokens": 5, "stream": True}
    assert req.headers["authorization"] == "Bearer sk-test-secret-key-123456"


def test_stream_options_go_upstream_unless_the_host_refuses_them() -> None:
    body = {**BODY, "stream_options": {"include_usage": True}}
    sent = orjson.loads(
        A.build_request(provider("openai", "https://api.openai.com/v1"), "gpt-4o", body, stream=True).body or b""
    )
    assert sent["stream_options"] == {"include_usage": True}
    strict = provider("openai", "https://old-host.example/v1", stream_usage=False)
    sent = orjson.loads(A.build_request(strict, "gpt-4o", body, stream=True).body or b"")
    assert "stream_options" not in sent and sent["stream"] is True


def test_azure_uses_api_key_header_and_api_version() -> None:
    p = provider(
        "openai", "https://res.openai.azure.com/openai/deployments/dep", flavor="azure", api_version="2024-06-01"
    )
    req = A.build_request(p, "dep", BODY, stream=False)
    assert req.url == "https://res.openai.azure.com/openai/deployments/dep/chat/completions?api-version=2024-06-01"
    assert req.headers["api-key"] == "sk-test-secret-key-123456" and "authorization" not in req.headers
    assert "stream" not in orjson.loads(req.body or b"")


def test_local_hosts_without_key_send_no_auth_and_extra_headers_pass() -> None:
    p = provider("openai", "http://127.0.0.1:8000/v1", api_key=None, headers={"HTTP-Referer": "https://turnout"})
    req = A.build_request(p, "llama", BODY, stream=False)
    assert "authorization" not in req.headers and req.headers["HTTP-Referer"] == "https://turnout"


def completion(content: object = "hello", finish: object = "stop", **extra: object) -> bytes:
    doc = {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content, **extra}, "finish_reason": finish}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    return orjson.dumps(doc)


def test_parse_response_returns_the_completion() -> None:
    out = A.parse_response(completion(), model="gpt-4o")
    assert out["choices"][0]["message"]["content"] == "hello"
    assert out["usage"]["total_tokens"] == 4


def test_tool_call_completion_with_null_content_is_valid() -> None:
    calls = [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    out = A.parse_response(completion(None, "tool_calls", tool_calls=calls), model="m")
    assert out["choices"][0]["message"]["tool_calls"] == calls


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html>Bad gateway</html>",
        b'{"id": "x", "choi',
        b"{}",
        b'{"choices": []}',
        b'{"choices": [1]}',
        completion("", None),
    ],
    ids=["empty", "html", "truncated", "no-choices", "empty-choices", "bad-choice", "NET-10"],
)
def test_garbage_completions_are_bad_response(body: bytes) -> None:
    with pytest.raises(ProviderError) as info:
        A.parse_response(body, model="m")
    assert info.value.error_class is E.BAD_RESPONSE


def test_error_object_in_a_200_is_classified() -> None:
    with pytest.raises(ProviderError) as info:
        A.parse_response(
            b'{"error": {"message": "overloaded", "type": "server_error", "code": "server_is_overloaded"}}', model="m"
        )
    assert info.value.error_class is E.OVERLOADED


def chunk(delta: dict[str, object], finish: str | None = None, **extra: object) -> bytes:
    doc = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return b"data: " + orjson.dumps(doc) + b"\n\n"


def run(*parts: bytes, close: bool = True) -> list:  # type: ignore[type-arg]
    t = A.stream_translator(model="m")
    items = [i for p in parts for i in t.feed(p)]
    return items + (t.close() if close else [])


def test_stream_passes_events_through_and_ends_on_done() -> None:
    role = chunk({"role": "assistant", "content": ""})
    hello = chunk({"content": "hel"})
    items = run(
        b": keep-alive\n\n",
        role,
        hello,
        chunk({}, "stop"),
        b'data: {"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}\n\n',
        b"data: [DONE]\n\n",
    )
    assert [i.kind for i in items] == ["keepalive", "keepalive", "chunk", "chunk", "chunk", "done"]
    assert items[1].raw == role and items[2].raw == hello  # role preamble is forwardable but no progress
    assert [i.content for i in items] == [False, False, True, False, False, False]
    assert items[3].finish_reason == "stop"
    assert items[4].usage == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    assert items[5].raw == b"data: [DONE]\n\n"


def test_reasoning_and_tool_call_deltas_count_as_content() -> None:
    items = run(
        chunk({"reasoning_content": "think"}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}),
        b"data: [DONE]\n\n",
    )
    assert [i.content for i in items[:2]] == [True, True]


def test_openrouter_processing_comment_is_keepalive() -> None:
    assert [i.kind for i in run(b": OPENROUTER PROCESSING\n\n", close=False)] == ["keepalive"]


def test_oa_mid_stream_error_is_classified_by_inner_type() -> None:
    items = run(
        chunk({"content": "a"}),
        chunk({"content": "b"}),
        b'data: {"error":{"message":"boom","type":"server_error","code":null}}\n\n',
    )
    assert [i.kind for i in items] == ["chunk", "chunk", "error"]
    assert items[-1].classification.error_class is E.SERVER_ERROR


def test_or_mid_stream_error_with_finish_reason_error() -> None:
    items = run(
        b": OPENROUTER PROCESSING\n\n",
        chunk({"content": "a"}),
        b'data: {"error":{"code":502,"message":"Provider returned error"},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}\n\n',
        b"data: [DONE]\n\n",
    )
    assert [i.kind for i in items] == ["keepalive", "chunk", "error"]
    assert items[-1].classification.error_class is E.SERVER_ERROR


def test_vllm_object_error_mid_stream() -> None:
    items = run(
        b'data: {"object":"error","message":"engine dead","type":"InternalServerError","param":null,"code":503}\n\n'
    )
    assert items[0].kind == "error" and items[0].classification.error_class is E.OVERLOADED


def test_azure_content_filter_chunk_is_client_error() -> None:
    items = run(
        chunk({"content": "a"}),
        b'data: {"error":{"message":"filtered","type":null,"param":"prompt","code":"content_filter"}}\n\n',
    )
    assert items[-1].classification.error_class is E.CLIENT_ERROR


def test_truncated_stream_is_bad_response() -> None:
    items = run(chunk({"content": "a"}))
    assert [i.kind for i in items] == ["chunk", "error"]
    assert items[-1].classification.error_class is E.BAD_RESPONSE and items[-1].classification.code == "truncated"


def test_malformed_chunk_is_bad_response_and_ends_the_stream() -> None:
    items = run(b'data: {"choices":[{"delta":{"content":"ab\n\n', chunk({"content": "late"}))
    assert [i.kind for i in items] == ["error"]
    assert items[0].classification.code == "malformed_chunk"


def test_nothing_after_done_and_close_after_done_is_silent() -> None:
    t = A.stream_translator(model="m")
    assert [i.kind for i in t.feed(b"data: [DONE]\n\n" + chunk({"content": "x"}))] == ["done"]
    assert t.close() == []
