"""OpenTelemetry request spans for the client APIs beside chat (Responses, Messages, count_tokens, embeddings), driven
with the official SDKs: each request is a SERVER span in the client's trace (GenAI conventions:
`gen_ai.operation.name` `chat`, or `embeddings`; `turnout.api` names the API), with one CLIENT child span per
upstream attempt, the failed one marked with its error type. Exported over OTLP/HTTP to an in-process receiver."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from controlplane import tracing
from tests.dataplane.clients.conftest import ClientsEnv, make_env, sim  # noqa: F401  (fixtures)
from tests.tracing.otlp_receiver import OtlpReceiver, Span

pytestmark = pytest.mark.integration

CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
TRACED = {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"}


@pytest.fixture
async def receiver(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[OtlpReceiver]:
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    r = await OtlpReceiver().start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", r.endpoint)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "turnout-test")
    assert tracing.setup_tracing()
    yield r
    tracing.shutdown_tracing()
    await r.stop()


def _request(receiver: OtlpReceiver, name: str, api: str) -> tuple[Span, list[Span]]:
    """The one SERVER span of `api` named `name`, and its attempts in order."""
    [req] = [s for s in receiver.named(name) if s.attributes.get("turnout.api") == api]
    assert req.kind == "SERVER" and req.trace_id == CLIENT_TRACE and req.parent_id == CLIENT_SPAN
    attempts = sorted(
        (s for s in receiver.spans if s.parent_id == req.span_id), key=lambda s: s.attributes["turnout.attempt"]
    )
    assert attempts and all(s.kind == "CLIENT" and s.trace_id == CLIENT_TRACE for s in attempts)
    return req, attempts


async def test_responses_messages_count_tokens_and_embeddings_are_request_spans_with_attempt_children(
    make_env: Callable[..., Awaitable[ClientsEnv]],  # noqa: F811
    receiver: OtlpReceiver,
) -> None:
    env = await make_env()
    reply = await env.oa.responses.create(model="r-native", input="hello", extra_headers=TRACED)
    msg = await env.an.messages.create(
        model="r-anthropic", max_tokens=5, messages=[{"role": "user", "content": "hello"}], extra_headers=TRACED
    )
    await env.an.messages.count_tokens(
        model="r-anthropic", messages=[{"role": "user", "content": "hello"}], extra_headers=TRACED
    )
    env.sim.set_fault("oa", "overloaded")  # the embedding fails over from oa to vl: two attempts
    await env.oa.embeddings.create(model="e-openai", input="hello", extra_headers=TRACED)
    await asyncio.to_thread(tracing.shutdown_tracing)  # export what is buffered (the receiver runs on this loop)

    req, [attempt] = _request(receiver, "chat r-native", "responses")
    a = req.attributes
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.request.model"] == "r-native"
    assert a["turnout.route"] == "r-native" and a["turnout.target"] == "oa/gpt-x" and a["turnout.attempt"] == 1
    assert a["gen_ai.provider.name"] == "openai" and a["http.response.status_code"] == 200 and not req.error
    assert reply.usage is not None and a["gen_ai.usage.output_tokens"] == reply.usage.output_tokens > 0
    assert attempt.attributes["turnout.target"] == "oa/gpt-x" and not attempt.error

    req, [attempt] = _request(receiver, "chat r-anthropic", "messages")
    assert req.attributes["gen_ai.operation.name"] == "chat" and req.attributes["turnout.target"] == "an/claude-x"
    assert req.attributes["gen_ai.provider.name"] == "anthropic"
    assert req.attributes["gen_ai.usage.input_tokens"] == msg.usage.input_tokens > 0
    assert attempt.attributes["turnout.target"] == "an/claude-x"

    req, [attempt] = _request(receiver, "chat r-anthropic", "count_tokens")
    assert req.attributes["http.response.status_code"] == 200 and attempt.attributes["turnout.target"] == "an/claude-x"

    req, attempts = _request(receiver, "embeddings e-openai", "embeddings")
    assert req.attributes["gen_ai.operation.name"] == "embeddings" and req.attributes["turnout.target"] == "vl/emb-x"
    assert req.attributes["turnout.attempt"] == 2 and not req.error
    failed, ok = attempts
    assert failed.attributes["turnout.target"] == "oa/emb-x" and failed.error
    assert failed.attributes["error.type"] == "overloaded"
    assert ok.attributes["turnout.target"] == "vl/emb-x" and not ok.error
    assert [a.name for a in attempts] == ["embeddings emb-x", "embeddings emb-x"]
    assert all(a.attributes["gen_ai.operation.name"] == "embeddings" for a in attempts)
