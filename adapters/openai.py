"""The OpenAI-compatible family: OpenAI, Azure deployments, DeepSeek, Mistral, xAI, Groq, Together, Fireworks,
OpenRouter, vLLM, Ollama, llama.cpp.

Requests and responses already have the OpenAI shape, so translation is light: the body passes through with
`model` replaced, and stream events pass through as their own bytes. The work is in classification, where
the hosts differ (provider-semantics.md §2.1, §2.4, §6); host quirks that change the request are keyed on
`ProviderConfig.flavor` (Azure: `api-key` header and `?api-version=`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from adapters import calls
from adapters.base import ModelListing, StreamItem, UpstreamRequest
from adapters.headers import headroom_from_headers
from adapters.sse import SSEEvent
from adapters.stream_translator import SSETranslator
from adapters.wire import openai as wire
from adapters.wire.common import ErrorInfo, json_or_none, obj
from adapters.wire.status import classify_answer, is_context_message, make, status_fallback
from controlplane.domain import Classification, ErrorClass, Headroom, Scope
from controlplane.errors import ProviderError

if TYPE_CHECKING:
    from controlplane.config import ProviderConfig

__all__ = ["OpenAIAdapter", "classify_openai", "classify_openai_info"]

_NAME = "openai"
_TURNOUT_KEYS = ("turnout",)  # Turnout's own per-request preferences never go upstream


def classify_openai_info(
    status: int | None, info: ErrorInfo, headers: Mapping[str, str], now: datetime
) -> Classification:
    """Decide from machine fields first, then message text, then the status (None: an in-stream error)."""
    ordered = info.ordered_markers()
    msg = info.lower_message()

    def done(cls: ErrorClass, code: str | None, scope: Scope | None = None, context: bool = False) -> Classification:
        return make(
            cls, status=status, info=info, headers=headers, now=now, scope=scope, code=code, context_exceeded=context
        )

    def hit(markers: frozenset[str]) -> str | None:
        return next((x for x in ordered if x in markers), None)

    if code := hit(wire.REGION):
        return done(ErrorClass.REGION_BLOCKED, code)
    if code := hit(wire.AUTH):
        return done(ErrorClass.AUTH, code)
    limit_source = str(info.metadata.get("limit_source", ""))
    if status == 402 and ("in_flight" in limit_source or "retry-after" in {k.lower() for k in headers}):
        # OpenRouter: a short-lived in-flight budget, not an empty account
        return done(ErrorClass.RATE_LIMITED, limit_source or "in_flight_budget")
    if code := hit(wire.QUOTA):
        return done(ErrorClass.QUOTA_EXHAUSTED, code)
    if code := hit(wire.MODEL_GONE):
        return done(ErrorClass.MODEL_GONE, code, Scope.TARGET)
    if status == 429 and "request too large" in msg:
        return done(ErrorClass.CLIENT_ERROR, "request_too_large")  # one request above this target's TPM
    if code := hit(wire.CONTEXT):
        return done(ErrorClass.CLIENT_ERROR, code, context=True)
    if status in (None, 400, 403, 413, 422) and is_context_message(info.message):
        # Together answers 403 for input + max_tokens > context; vLLM/DeepSeek 400 with text only
        return done(ErrorClass.CLIENT_ERROR, "context_length_exceeded", context=True)
    if code := hit(wire.FILTER):
        return done(ErrorClass.CLIENT_ERROR, code)
    if status == 503 and "loading" in msg:
        # llama.cpp while the model loads: not ready yet, which is not a failure of a running target
        return done(ErrorClass.CONNECT, "loading_model")
    if code := hit(wire.OVERLOAD):
        return done(ErrorClass.OVERLOADED, code)
    if code := hit(wire.RATE):
        return done(ErrorClass.RATE_LIMITED, code)
    if code := hit(wire.TIMEOUT):
        return done(ErrorClass.TIMEOUT, code)
    if status == 403:
        if (
            info.metadata.get("reasons")
            or info.metadata.get("flagged_input")
            or "moderation" in msg
            or "flagged" in msg
        ):
            return done(ErrorClass.CLIENT_ERROR, "moderation")  # OpenRouter guardrail
        if any(w in msg for w in ("region", "country", "territory", "location is not supported")):
            return done(ErrorClass.REGION_BLOCKED, "region_text")
    if status is None:
        # An error inside a 200 stream: OpenRouter puts the upstream status in `code`.
        inner = int(info.code) if info.code and info.code.isdigit() else None
        if inner is not None and 400 <= inner < 600:
            return classify_openai_info(inner, info, headers, now)
        if code := hit(wire.SERVER):
            return done(ErrorClass.SERVER_ERROR, code)
        return done(ErrorClass.SERVER_ERROR, info.code or info.type or "stream_error")
    if status >= 500 and (code := hit(wire.SERVER)):
        return done(ErrorClass.SERVER_ERROR, code)
    if status == 400 and ("not found" in msg and "model" in msg):
        return done(ErrorClass.MODEL_GONE, "model_not_found", Scope.TARGET)
    cls, scope = status_fallback(status, info)
    return done(cls, info.code or info.type or f"http_{status}", scope)


def classify_openai(
    status: int, headers: Mapping[str, str], body: bytes, *, now: datetime | None = None
) -> Classification:
    """Error class, scope and retry hints for one OpenAI-compatible answer (2xx included)."""
    return classify_answer(
        status, headers, body, now, classify_openai_info
    )  # some hosts answer 200 with an error object


def _has_content(delta: Mapping[str, Any]) -> bool:
    return bool(
        delta.get("content") or delta.get("tool_calls") or delta.get("reasoning_content") or delta.get("reasoning")
    )


def _usage(doc: Mapping[str, Any]) -> dict[str, int] | None:
    u = doc.get("usage")
    if not isinstance(u, dict):
        return None
    out = {
        k: int(v)
        for k in ("prompt_tokens", "completion_tokens", "total_tokens")
        if isinstance((v := u.get(k)), int | float)
    }
    return out or None


class OpenAIStream(SSETranslator):
    """Pass-through translation of an OpenAI-compatible SSE stream into StreamItems."""

    terminator = "[DONE]"

    def __init__(self, model: str) -> None:
        super().__init__()
        self._model = model

    def _translate(self, ev: SSEEvent) -> list[StreamItem]:
        return [self._item(ev)]

    def _item(self, ev: SSEEvent) -> StreamItem:
        if ev.kind == "comment":
            return StreamItem("keepalive")
        if ev.kind == "overflow":
            return _bad("too_large", "stream event over the size cap")
        data = ev.data or ""
        if ev.kind == "event" and data.strip() == "[DONE]":
            return StreamItem("done", raw=ev.raw)
        if ev.kind == "event" and not data.strip():
            return StreamItem("keepalive")
        doc = json_or_none(data)
        if not isinstance(doc, dict):
            if ev.kind == "json" and isinstance(doc, list):  # a raw JSON error array
                doc = doc[0] if doc and isinstance(doc[0], dict) else None
            if not isinstance(doc, dict):
                return _bad("malformed_chunk", "stream chunk is not valid JSON")
        if "error" in doc or doc.get("object") == "error":
            c = classify_openai_info(None, ErrorInfo.from_doc(doc), {}, datetime.now(UTC))
            return StreamItem("error", chunk=doc, classification=c)
        choices = doc.get("choices")
        usage = _usage(doc)
        if not isinstance(choices, list):
            return _bad("malformed_chunk", "stream chunk without choices")
        content, finish = False, None
        for ch in choices:
            if not isinstance(ch, dict):
                return _bad("malformed_chunk", "stream chunk with a malformed choice")
            delta = obj(ch.get("delta"))
            content = content or _has_content(delta)
            finish = ch.get("finish_reason") or finish
        if finish == "error":  # OpenRouter without an error object
            return StreamItem(
                "error",
                chunk=doc,
                classification=Classification(
                    ErrorClass.SERVER_ERROR, code="finish_error", detail="upstream ended the stream with an error"
                ),
            )
        if not content and finish is None and usage is None:
            # role-only preamble or empty delta: forwardable, but not progress
            return StreamItem("keepalive", chunk=doc, raw=ev.raw)
        return StreamItem("chunk", chunk=doc, content=content, usage=usage, raw=ev.raw, finish_reason=finish)


def _bad(code: str, detail: str) -> StreamItem:
    return StreamItem("error", classification=Classification(ErrorClass.BAD_RESPONSE, code=code, detail=detail))


class OpenAIAdapter(calls.StreamedProbe):
    """The Adapter for every OpenAI-compatible host."""

    name = _NAME

    def build_request(
        self, provider: ProviderConfig, model: str, body: Mapping[str, Any], *, stream: bool
    ) -> UpstreamRequest:
        out = {k: v for k, v in body.items() if k not in _TURNOUT_KEYS}
        out["model"] = model
        if stream:
            out["stream"] = True
            if not provider.stream_usage:  # a host that refuses the field: no usage chunk rather than a 400
                out.pop("stream_options", None)
        else:
            out.pop("stream", None)
            out.pop("stream_options", None)
        headers = {"content-type": "application/json", "accept": "text/event-stream" if stream else "application/json"}
        headers.update(_auth_headers(provider))
        return UpstreamRequest("POST", _url(provider, "/chat/completions"), headers, orjson.dumps(out))

    def parse_response(self, body: bytes, *, model: str) -> dict[str, Any]:
        doc = json_or_none(body)
        if isinstance(doc, dict) and ("error" in doc or doc.get("object") == "error"):
            raise ProviderError(_NAME, None, classify_openai_info(None, ErrorInfo.from_doc(doc), {}, datetime.now(UTC)))
        choices = doc.get("choices") if isinstance(doc, dict) else None
        if (
            not isinstance(choices, list)
            or not choices
            or not all(isinstance(c, dict) and isinstance(c.get("message"), dict) for c in choices)
        ):
            raise _bad_response(body, "completion without choices[].message")
        if all(_empty_choice(c) for c in choices):
            raise _bad_response(body, "empty completion (no content, no finish_reason)")
        assert isinstance(doc, dict)
        doc.setdefault("object", "chat.completion")
        doc.setdefault("model", model)
        return doc

    def stream_translator(self, *, model: str) -> OpenAIStream:
        return OpenAIStream(model)

    def classify(
        self, status: int, headers: Mapping[str, str], body: bytes, *, now: datetime | None = None
    ) -> Classification:
        return classify_openai(status, headers, body, now=now)

    def headroom(self, headers: Mapping[str, str], now: datetime) -> Headroom | None:
        return headroom_from_headers(headers, now, "openai")

    async def list_models(
        self, session: aiohttp.ClientSession, provider: ProviderConfig, *, timeout: float
    ) -> ModelListing:
        req = UpstreamRequest("GET", _url(provider, "/models"), _auth_headers(provider))
        got = await calls.fetch(session, req, timeout=timeout, provider_id=provider.id)
        now = datetime.now(UTC)
        c = classify_openai(got.status, got.headers, got.body, now=now)
        if not c.ok:
            raise ProviderError(provider.id, None, c)
        doc = json_or_none(got.body)
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, list):
            bad = Classification(
                ErrorClass.BAD_RESPONSE, status=got.status, code="bad_listing", detail="model list without data[]"
            )
            raise ProviderError(provider.id, None, bad)
        models = [str(m["id"]) for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]
        return ModelListing(models, self.headroom(got.headers, now))


def _url(provider: ProviderConfig, path: str) -> str:
    url = f"{provider.base_url}{path}"
    if provider.flavor == "azure":
        url += f"?api-version={provider.api_version or wire.DEFAULT_AZURE_API_VERSION}"
    return url


def _auth_headers(provider: ProviderConfig) -> dict[str, str]:
    """Credentials (Azure: `api-key`; everyone else: Bearer; local hosts: none) plus configured headers."""
    headers: dict[str, str] = {}
    key = provider.api_key.get_secret_value() if provider.api_key else None
    if key and provider.flavor == "azure":
        headers["api-key"] = key
    elif key:
        headers["authorization"] = f"Bearer {key}"
    headers.update(provider.headers)
    return headers


def _empty_choice(c: Mapping[str, Any]) -> bool:
    msg = c.get("message") or {}
    return (
        not (msg.get("content") or msg.get("tool_calls") or msg.get("function_call") or msg.get("refusal"))
        and c.get("finish_reason") is None
    )


def _bad_response(body: bytes, detail: str) -> ProviderError:
    c = classify_openai(200, {}, body)
    if c.error_class is ErrorClass.OK:
        c = Classification(ErrorClass.BAD_RESPONSE, status=200, code="bad_completion", detail=detail)
    return ProviderError(_NAME, None, c)
