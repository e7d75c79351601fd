"""Fuzzing: whatever bytes a provider sends, translators only ever return items and parse_response only
ever returns a completion or raises ProviderError; classify always returns a Classification."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from adapters.base import prepare_credentials
from adapters.registry import ADAPTERS, get_adapter
from controlplane.domain import Classification
from controlplane.errors import ProviderError

NAMES = sorted(ADAPTERS)
FRAGMENTS = [
    b"data: ",
    b"event: ",
    b": keep-alive",
    b"\n",
    b"\r\n",
    b"\n\n",
    b"{",
    b"}",
    b"[",
    b"]",
    b'"',
    b"[DONE]",
    b'{"choices":[{"delta":{"content":"x"},"finish_reason":null}]}',
    b'{"type":"message_start","message":{}}',
    b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}}',
    b'{"type":"message_stop"}',
    b'{"candidates":[{"content":{"parts":[{"text":"a"}]},"finishReason":"STOP"}]}',
    b'{"error":{"code":503}}',
    b'{"error":"x"}',
    b"null",
    b"<html>",
    b"\xff\xfe",
    b"\x00",
]
chunks = st.lists(st.one_of(st.binary(max_size=64), st.sampled_from(FRAGMENTS)), max_size=30)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(parts=chunks)
def test_stream_translators_only_return_items(name: str, parts: list[bytes]) -> None:
    t = get_adapter(name).stream_translator(model="m")
    items = [i for p in parts for i in t.feed(p)] + t.close()
    ends = [i for i in items if i.kind in ("done", "error")]
    assert len(ends) == 1, "every stream ends exactly once: done, or a classified error"
    assert items.index(ends[0]) == len(items) - 1
    assert all(i.classification is not None for i in items if i.kind == "error")


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(body=st.one_of(st.binary(max_size=300), st.lists(st.sampled_from(FRAGMENTS), max_size=12).map(b"".join)))
@example(body=b'{"candidates":[{"content":{"parts":true},"finishReason":"STOP"}]}')  # a TypeError in gemini once
def test_parse_response_returns_completion_or_provider_error(name: str, body: bytes) -> None:
    try:
        out = get_adapter(name).parse_response(body, model="m")
    except ProviderError as exc:
        assert exc.classification.detail is not None
    else:
        assert isinstance(out.get("choices"), list)


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(
    status=st.integers(100, 999),
    body=st.binary(max_size=200),
    headers=st.dictionaries(
        st.sampled_from(["retry-after", "retry-after-ms", "x-should-retry", "x-ratelimit-remaining-tokens"]),
        st.text(max_size=20),
    ),
)
def test_classify_never_raises(name: str, status: int, body: bytes, headers: dict[str, str]) -> None:
    assert isinstance(get_adapter(name).classify(status, headers, body), Classification)


@FUZZ
@example(doc={"error": {"errors": True}})  # found by this test: `"errors": true` ended classification with a TypeError
@example(doc={"error": {"details": [{"violations": 1}]}})
@given(
    doc=st.recursive(
        st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10),
        lambda c: (
            st.lists(c, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "error",
                        "type",
                        "code",
                        "status",
                        "message",
                        "details",
                        "errors",
                        "metadata",
                        "object",
                        "violations",
                        "quotaId",
                        "reason",
                    ]
                ),
                c,
                max_size=5,
            )
        ),
        max_leaves=20,
    )
)
def test_classify_survives_any_json_shape(doc: object) -> None:
    body = orjson.dumps(doc)
    for name in NAMES:
        for status in (200, 400, 403, 429, 503):
            assert isinstance(get_adapter(name).classify(status, {}, body), Classification)


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**31), 2**31)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda c: (
        st.lists(c, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "role",
                    "content",
                    "tool_calls",
                    "function",
                    "name",
                    "arguments",
                    "id",
                    "type",
                    "text",
                    "image_url",
                    "url",
                    "tool_call_id",
                    "parameters",
                ]
            ),
            c,
            max_size=4,
        )
    ),
    max_leaves=15,
)
_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "tool", "developer", "x"])},
    optional={"content": _json, "tool_calls": _json, "tool_call_id": _json, "name": _json},
)
_body = st.fixed_dictionaries(
    {"messages": st.one_of(st.lists(_message, max_size=4), _json)},
    optional={
        "tools": _json,
        "tool_choice": _json,
        "stop": _json,
        "max_tokens": st.integers(1, 10**6),
        "temperature": _json,
        "parallel_tool_calls": _json,
        "response_format": _json,
    },
)


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(body=_body)
def test_build_request_returns_a_request_or_a_value_error(name: str, body: dict[str, object]) -> None:
    from tests.adapters.conftest import provider

    p = provider(name, "https://example.invalid/v1")
    adapter = get_adapter(name)
    if name == "bedrock":  # signs with credentials `prepare` readied (static keys here: no network)
        asyncio.run(prepare_credentials(adapter, p))
    try:
        req = adapter.build_request(p, "m", body, stream=True)
    except ValueError as exc:
        assert str(exc)
    else:
        assert req.body is not None and orjson.loads(req.body) is not None


@pytest.mark.parametrize("name", ["anthropic", "gemini"])
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": [{"role": "assistant", "tool_calls": 5}]}, "messages[0].tool_calls"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": "abc"}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 0}, "max_completion_tokens"),
        ({"messages": [{"role": "user", "content": "x"}], "stop": 5}, "stop"),
        ({"messages": "hi"}, "messages"),
    ],
)
def test_bad_caller_fields_are_named(name: str, body: dict[str, object], field: str) -> None:
    from tests.adapters.conftest import provider

    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        get_adapter(name).build_request(provider(name, "https://example.invalid/v1"), "m", body, stream=False)
