"""The Bedrock adapter: Converse translation both ways, the event stream decoded incrementally (any split of
the bytes gives the same items), SigV4 over the percent-encoded path, and errors classified by exception name."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.bedrock import BedrockAdapter, base_model_id, classify_bedrock, classify_exception, model_path
from adapters.bedrock_converse import ConverseStream, from_converse, to_converse_request
from adapters.sim.eventstream import event, exception
from adapters.sim.sigv4 import verify_sigv4
from controlplane.config import ProviderConfig
from controlplane.domain import ErrorClass, Scope
from controlplane.errors import ProviderError

PROFILE = "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _provider(**kw: Any) -> ProviderConfig:
    return ProviderConfig.model_validate(
        {
            "id": "br",
            "adapter": "bedrock",
            "region": "eu-central-1",
            "aws_access_key_id": "AKIDEXAMPLE",
            "aws_secret_access_key": "secret",
            "models": [{"name": PROFILE}],
            **kw,
        }
    )


def _err(status: int, name: str, message: str) -> tuple[int, dict[str, str], bytes]:
    return (
        status,
        {"x-amzn-ErrorType": f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/"},
        json.dumps({"message": message}).encode(),
    )


def test_region_picks_the_default_endpoints() -> None:
    p = _provider()
    assert p.base_url == "https://bedrock-runtime.eu-central-1.amazonaws.com"
    assert BedrockAdapter()._catalogue_base(p) == "https://bedrock.eu-central-1.amazonaws.com"


def test_profile_ids_map_to_their_base_model_and_encode_as_one_segment() -> None:
    assert base_model_id(PROFILE) == "anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert base_model_id("amazon.nova-lite-v1:0") == "amazon.nova-lite-v1:0"
    assert model_path(PROFILE) == "eu.anthropic.claude-sonnet-4-5-20250929-v1%3A0"
    assert model_path("arn:aws:bedrock:eu-central-1::x/y") == "arn%3Aaws%3Abedrock%3Aeu-central-1%3A%3Ax%2Fy"


async def test_the_signature_covers_the_encoded_path_as_sent() -> None:
    adapter, p = BedrockAdapter(), _provider()
    await adapter.prepare(p)
    req = adapter.build_request(p, PROFILE, {"messages": [{"role": "user", "content": "hi"}]}, stream=False)
    assert req.url.endswith("/model/eu.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse")
    headers = {**req.headers, "host": "bedrock-runtime.eu-central-1.amazonaws.com"}
    body = req.body or b""
    assert verify_sigv4("POST", req.url, headers, body, {"AKIDEXAMPLE": "secret"}, region="eu-central-1") is None
    decoded = req.url.replace("%3A", ":")  # what a gateway that decodes the path would have signed instead
    assert verify_sigv4("POST", decoded, headers, body, {"AKIDEXAMPLE": "secret"}, region="eu-central-1") is not None
    assert verify_sigv4("POST", req.url, headers, body, {"AKIDEXAMPLE": "other"}, region="eu-central-1") == (
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided.",
    )


def test_chat_body_becomes_converse() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "w", "arguments": '{"c":"Oslo"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
        ],
        "max_tokens": 64,
        "temperature": 0.2,
        "stop": "END",
        "tools": [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}],
        "tool_choice": "required",
    }
    req = to_converse_request(body)
    assert req["system"] == [{"text": "Be brief."}]
    assert [m["role"] for m in req["messages"]] == ["user", "assistant", "user"]
    assert req["messages"][1]["content"] == [{"toolUse": {"toolUseId": "t1", "name": "w", "input": {"c": "Oslo"}}}]
    assert req["messages"][2]["content"] == [{"toolResult": {"toolUseId": "t1", "content": [{"text": "sunny"}]}}]
    assert req["inferenceConfig"] == {"maxTokens": 64, "temperature": 0.2, "stopSequences": ["END"]}
    assert req["toolConfig"]["toolChoice"] == {"any": {}}


def test_remote_image_urls_are_refused_with_the_field() -> None:
    body = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}
    with pytest.raises(ValueError, match=r"messages\[0\]"):
        to_converse_request(body)


def test_converse_answer_becomes_a_completion() -> None:
    doc = {
        "output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}},
        "stopReason": "max_tokens",
        "usage": {"inputTokens": 5, "outputTokens": 1, "totalTokens": 6},
    }
    out = from_converse(doc, PROFILE)
    assert out["choices"][0] == {
        "index": 0,
        "message": {"role": "assistant", "content": "Hi"},
        "finish_reason": "length",
    }
    assert out["usage"] == {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
    with pytest.raises(ProviderError) as err:
        from_converse({"output": {"message": {"content": []}}}, PROFILE)
    assert err.value.classification.error_class is ErrorClass.BAD_RESPONSE


def _stream_bytes() -> bytes:
    return b"".join(
        [
            event("messageStart", {"role": "assistant"}),
            event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hel"}}),
            event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "lo"}}),
            event("contentBlockStop", {"contentBlockIndex": 0}),
            event("messageStop", {"stopReason": "end_turn"}),
            event("metadata", {"usage": {"inputTokens": 2, "outputTokens": 2, "totalTokens": 4}}),
        ]
    )


def _summary(items: list[Any]) -> list[tuple[str, str | None, Any]]:
    out = []
    for i in items:
        text = None
        if i.chunk and i.chunk.get("choices"):
            text = i.chunk["choices"][0]["delta"].get("content")
        out.append((i.kind, text, i.usage))
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30))
def test_any_split_of_the_event_stream_gives_the_same_items(sizes: list[int]) -> None:
    data = _stream_bytes()
    whole = ConverseStream(PROFILE, classify_exception).feed(data)
    tr = ConverseStream(PROFILE, classify_exception)
    items, pos, k = [], 0, 0
    while pos < len(data):
        n = sizes[k % len(sizes)]
        items.extend(tr.feed(data[pos : pos + n]))
        pos, k = pos + n, k + 1
    items.extend(tr.close())
    assert _summary(items) == _summary(whole)
    assert [i.kind for i in whole][-1] == "done" and whole[-1].usage == {
        "prompt_tokens": 2,
        "completion_tokens": 2,
        "total_tokens": 4,
    }
    assert "".join(t for _, t, _ in _summary(whole) if t) == "Hello"


def test_stream_exception_events_are_classified_by_name() -> None:
    tr = ConverseStream(PROFILE, classify_exception)
    items = tr.feed(event("messageStart", {"role": "assistant"}) + exception("throttlingException", "slow down"))
    assert items[-1].kind == "error" and items[-1].classification is not None
    assert items[-1].classification.error_class is ErrorClass.RATE_LIMITED


def test_stream_cut_before_message_stop_is_truncated_and_a_bad_crc_is_malformed() -> None:
    tr = ConverseStream(PROFILE, classify_exception)
    tr.feed(event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "a"}}))
    end = tr.close()
    assert end[0].kind == "error" and end[0].classification is not None
    assert end[0].classification.code == "truncated"
    bad = event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "a"}})
    items = ConverseStream(PROFILE, classify_exception).feed(bad[:-4] + b"\0\0\0\0")
    assert items[-1].classification is not None and items[-1].classification.code == "malformed_event"


@pytest.mark.parametrize(
    ("status", "name", "message", "cls", "scope"),
    [
        (429, "ThrottlingException", "Too many requests", ErrorClass.RATE_LIMITED, Scope.TARGET),
        (429, "ModelNotReadyException", "not ready", ErrorClass.OVERLOADED, Scope.TARGET),
        (503, "ServiceUnavailableException", "unavailable", ErrorClass.OVERLOADED, Scope.TARGET),
        (500, "InternalServerException", "oops", ErrorClass.SERVER_ERROR, Scope.TARGET),
        (424, "ModelErrorException", "model error", ErrorClass.SERVER_ERROR, Scope.TARGET),
        (408, "ModelTimeoutException", "timeout", ErrorClass.TIMEOUT, Scope.TARGET),
        (
            403,
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
            ErrorClass.AUTH,
            Scope.TARGET,
        ),
        (
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
            ErrorClass.AUTH,
            Scope.CREDENTIAL,
        ),
        (403, "InvalidSignatureException", "signature mismatch", ErrorClass.AUTH, Scope.CREDENTIAL),
        (403, "IncompleteSignatureException", "incomplete", ErrorClass.AUTH, Scope.CREDENTIAL),
        (403, "MissingAuthenticationTokenException", "Missing Authentication Token", ErrorClass.AUTH, Scope.CREDENTIAL),
        (
            400,
            "ExpiredTokenException",
            "The security token included in the request is expired",
            ErrorClass.AUTH,
            Scope.CREDENTIAL,
        ),
        (
            400,
            "ValidationException",
            "Access to Anthropic models is not allowed from unsupported countries, regions, or territories.",
            ErrorClass.REGION_BLOCKED,
            Scope.EGRESS,
        ),
        (400, "ValidationException", "The provided model identifier is invalid.", ErrorClass.MODEL_GONE, Scope.TARGET),
        (404, "ResourceNotFoundException", "Model not found", ErrorClass.MODEL_GONE, Scope.TARGET),
        (400, "ValidationException", "messages: must alternate", ErrorClass.CLIENT_ERROR, Scope.TARGET),
    ],
)
def test_errors_are_classified_by_the_exception_header(
    status: int, name: str, message: str, cls: ErrorClass, scope: Scope
) -> None:
    c = classify_bedrock(*_err(status, name, message), now=NOW)
    assert (c.error_class, c.scope, c.code) == (cls, scope, c.code)
    assert c.status == status


def test_json_protocol_type_field_and_bare_statuses_are_read_too() -> None:
    body = json.dumps({"__type": "com.amazon.coral.service#ThrottlingException", "message": "slow"}).encode()
    assert classify_bedrock(429, {}, body, now=NOW).error_class is ErrorClass.RATE_LIMITED
    assert classify_bedrock(502, {}, b"<html>Bad gateway</html>", now=NOW).error_class is ErrorClass.BAD_RESPONSE
    assert classify_bedrock(200, {}, b"", now=NOW).error_class is ErrorClass.BAD_RESPONSE


def test_half_given_keys_are_a_config_error_naming_the_missing_one() -> None:
    from controlplane.config_loader import parse_config
    from controlplane.errors import ConfigError

    text = f"""
providers:
  - {{id: br, adapter: bedrock, region: eu-central-1, aws_access_key_id: AKID, models: [{{name: "{PROFILE}"}}]}}
routes: [{{name: r, targets: ["br/{PROFILE}"]}}]
"""
    with pytest.raises(ConfigError) as err:
        parse_config(text, env={})
    assert err.value.field == "providers.br.aws_secret_access_key"
    no_region = text.replace("region: eu-central-1, ", "").replace("aws_access_key_id: AKID, ", "")
    with pytest.raises(ConfigError) as err:
        parse_config(no_region, env={})
    assert err.value.field == "providers.br.region" and "eu-central-1" in err.value.fix
