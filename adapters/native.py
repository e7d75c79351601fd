"""A provider spoken to in the client's own API: pass-through, with the provider adapter's classification.

When a client speaks the OpenAI Responses API to a target that serves it natively (OpenAI, Azure OpenAI), or
the Anthropic Messages API to an Anthropic target, the request goes upstream as the client wrote it (only
`model` replaced) and the answer comes back as the provider wrote it. Each class here is a full `Adapter`
whose request, answer and stream handling speak that API, while errors, headroom, listings and probes are
the family adapter's own. Stream items keep the upstream's event bytes in `raw`; `chunk` holds the parsed
event, and usage is reported in the chat keys (prompt/completion tokens) the decision log reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from adapters.anthropic import AnthropicAdapter, AnthropicStream
from adapters.base import Adapter, CompletionProbeResult, ModelListing, ProbeAdapter, StreamItem, UpstreamRequest
from adapters.openai import classify_openai_info
from adapters.sse import SSEEvent
from adapters.stream_translator import SSETranslator
from adapters.wire.common import ErrorInfo, json_or_none, obj
from controlplane.domain import Classification, ErrorClass, Headroom
from controlplane.errors import ProviderError

if TYPE_CHECKING:
    from controlplane.config import ProviderConfig

__all__ = [
    "Delegating",
    "NativeResponsesAdapter",
    "NativeResponsesStream",
    "NativeMessagesAdapter",
    "NativeMessagesStream",
    "NativeCountTokensAdapter",
    "serves_responses_natively",
    "chat_usage",
    "bad_answer",
    "openai_headers",
    "openai_url",
]

_TURNOUT_KEYS = ("turnout",)
# Responses stream events that carry output: the first of them is the client's first content (TTFT).
_CONTENT_EVENTS = frozenset(
    {
        "response.output_text.delta",
        "response.function_call_arguments.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_text.delta",
        "response.refusal.delta",
    }
)


def serves_responses_natively(provider: ProviderConfig) -> bool:
    """Does this OpenAI-compatible provider serve `/responses` itself? `responses_api` says, else the host does."""
    if provider.adapter != "openai":
        return False
    if provider.responses_api != "auto":
        return provider.responses_api == "native"
    return provider.flavor in ("openai", "azure") or provider.base_url.startswith("https://api.openai.com")


def chat_usage(usage: Any) -> dict[str, int] | None:
    """Responses or Messages usage (input/output tokens) in the chat keys."""
    if not isinstance(usage, dict):
        return None
    tin = sum(
        int(usage.get(k) or 0) for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    tout = int(usage.get("output_tokens") or 0)
    return {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout}


def bad_answer(detail: str, code: str = "bad_completion") -> ProviderError:
    """A 200 whose body is not the answer it should be: bad_response."""
    return ProviderError("native", None, Classification(ErrorClass.BAD_RESPONSE, status=200, code=code, detail=detail))


class Delegating:
    """An Adapter that speaks another endpoint of the same provider: everything but the call is `inner`'s."""

    def __init__(self, inner: ProbeAdapter) -> None:
        self.inner = inner
        self.name = inner.name

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> Classification:
        return self.inner.classify(status, headers, body)

    def headroom(self, headers: Mapping[str, str], now: datetime) -> Headroom | None:
        return self.inner.headroom(headers, now)

    async def list_models(
        self, session: aiohttp.ClientSession, provider: ProviderConfig, *, timeout: float
    ) -> ModelListing:
        return await self.inner.list_models(session, provider, timeout=timeout)

    async def probe_completion(
        self,
        session: aiohttp.ClientSession,
        provider: ProviderConfig,
        model: str,
        *,
        prompt: str,
        max_tokens: int,
        timeout: float,
    ) -> CompletionProbeResult:
        return await self.inner.probe_completion(
            session, provider, model, prompt=prompt, max_tokens=max_tokens, timeout=timeout
        )


def openai_headers(provider: ProviderConfig, stream: bool) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": "text/event-stream" if stream else "application/json"}
    key = provider.api_key.get_secret_value() if provider.api_key else None
    if key and provider.flavor == "azure":
        headers["api-key"] = key
    elif key:
        headers["authorization"] = f"Bearer {key}"
    headers.update(provider.headers)
    return headers


def openai_url(provider: ProviderConfig, path: str) -> str:
    url = f"{provider.base_url}{path}"
    if provider.flavor == "azure":
        from adapters.wire.openai import DEFAULT_AZURE_API_VERSION

        url += f"?api-version={provider.api_version or DEFAULT_AZURE_API_VERSION}"
    return url


class NativeResponsesStream(SSETranslator):
    """A native Responses event stream: `response.completed`/`response.incomplete` end it cleanly,
    `response.failed` and `error` are classified."""

    terminator = "response.completed"

    def _translate(self, ev: SSEEvent) -> list[StreamItem]:
        if ev.kind == "comment":
            return [StreamItem("keepalive")]
        if ev.kind == "overflow":
            return [_error(Classification(ErrorClass.BAD_RESPONSE, code="too_large", detail="event over the size cap"))]
        doc = json_or_none(ev.data or "")
        if not isinstance(doc, dict):
            if ev.kind == "event" and not (ev.data or "").strip():
                return [StreamItem("keepalive")]
            return [_error(Classification(ErrorClass.BAD_RESPONSE, code="malformed_chunk", detail="event is not JSON"))]
        kind = str(doc.get("type") or ev.event or "")
        if kind == "error" or (kind != "response.failed" and isinstance(doc.get("error"), dict)):
            err = doc.get("error") if isinstance(doc.get("error"), dict) else doc
            return [_error(classify_openai_info(None, ErrorInfo.from_doc({"error": err}), {}, datetime.now(UTC)))]
        if kind == "response.failed":
            resp = obj(doc.get("response"))
            err = resp.get("error") if isinstance(resp.get("error"), dict) else {"message": "response failed"}
            return [_error(classify_openai_info(None, ErrorInfo.from_doc({"error": err}), {}, datetime.now(UTC)))]
        if kind in ("response.completed", "response.incomplete"):
            resp = obj(doc.get("response"))
            usage = chat_usage(resp.get("usage"))
            return [StreamItem("chunk", chunk=doc, usage=usage, raw=ev.raw, finish_reason="stop"), StreamItem("done")]
        if kind in _CONTENT_EVENTS:
            return [StreamItem("chunk", chunk=doc, content=bool(doc.get("delta")), raw=ev.raw)]
        if kind == "response.output_item.added" and isinstance(doc.get("item"), dict):
            if doc["item"].get("type") == "function_call":
                return [StreamItem("chunk", chunk=doc, content=True, raw=ev.raw)]
        return [StreamItem("keepalive", chunk=doc, raw=ev.raw)]


def _error(c: Classification) -> StreamItem:
    return StreamItem("error", classification=c)


class NativeResponsesAdapter(Delegating):
    """The OpenAI-compatible adapter speaking `POST /responses` (pass-through)."""

    def build_request(
        self, provider: ProviderConfig, model: str, body: Mapping[str, Any], *, stream: bool
    ) -> UpstreamRequest:
        out = {k: v for k, v in body.items() if k not in _TURNOUT_KEYS}
        out["model"] = model
        if stream:
            out["stream"] = True
        else:
            out.pop("stream", None)
        return UpstreamRequest(
            "POST", openai_url(provider, "/responses"), openai_headers(provider, stream), orjson.dumps(out)
        )

    def parse_response(self, body: bytes, *, model: str) -> dict[str, Any]:
        doc = json_or_none(body)
        if not isinstance(doc, dict):
            raise bad_answer("answer is not a JSON object")
        if isinstance(doc.get("error"), dict) and doc.get("object") != "response":
            raise ProviderError(
                "native", None, classify_openai_info(None, ErrorInfo.from_doc(doc), {}, datetime.now(UTC))
            )
        if doc.get("object") != "response" or not isinstance(doc.get("output"), list):
            raise bad_answer("answer without object=response and output[]")
        if doc.get("status") == "failed":
            err = doc.get("error") if isinstance(doc.get("error"), dict) else {"message": "response failed"}
            raise ProviderError(
                "native", None, classify_openai_info(None, ErrorInfo.from_doc({"error": err}), {}, datetime.now(UTC))
            )
        if not doc["output"] and doc.get("status") == "completed":
            raise bad_answer("empty response (no output items)")
        return doc

    def stream_translator(self, *, model: str) -> NativeResponsesStream:
        return NativeResponsesStream()


class NativeMessagesStream(AnthropicStream):
    """An Anthropic event stream classified as the Anthropic adapter does, its own bytes kept for the client."""

    def _translate(self, ev: SSEEvent) -> list[StreamItem]:
        items = super()._translate(ev)
        doc = json_or_none(ev.data or "") if ev.kind == "event" else None
        chunk = doc if isinstance(doc, dict) else None
        return [i if i.kind == "error" else dataclasses.replace(i, raw=ev.raw or None, chunk=chunk) for i in items]


class NativeMessagesAdapter(Delegating):
    """The Anthropic adapter speaking `POST /v1/messages` as the client wrote it (pass-through)."""

    def __init__(self, inner: Adapter | None = None) -> None:
        super().__init__(inner or AnthropicAdapter())
        self._anthropic = AnthropicAdapter()

    def build_request(
        self, provider: ProviderConfig, model: str, body: Mapping[str, Any], *, stream: bool
    ) -> UpstreamRequest:
        out = {k: v for k, v in body.items() if k not in _TURNOUT_KEYS}
        out["model"] = model
        if stream:
            out["stream"] = True
        else:
            out.pop("stream", None)
        headers = self._anthropic._headers(provider)
        if stream:
            headers["accept"] = "text/event-stream"
        return UpstreamRequest("POST", f"{self._anthropic._base(provider)}/messages", headers, orjson.dumps(out))

    def parse_response(self, body: bytes, *, model: str) -> dict[str, Any]:
        doc = json_or_none(body)
        self._anthropic.parse_response(body, model=model)  # the same checks (and classes) as a translated answer
        assert isinstance(doc, dict)
        return doc

    def stream_translator(self, *, model: str) -> NativeMessagesStream:
        return NativeMessagesStream(model)


class NativeCountTokensAdapter(NativeMessagesAdapter):
    """The Anthropic adapter speaking `POST /v1/messages/count_tokens` (pass-through; JSON only)."""

    def build_request(
        self, provider: ProviderConfig, model: str, body: Mapping[str, Any], *, stream: bool
    ) -> UpstreamRequest:
        out = {k: v for k, v in body.items() if k not in _TURNOUT_KEYS and k != "stream"}
        out["model"] = model
        headers = self._anthropic._headers(provider)
        return UpstreamRequest(
            "POST", f"{self._anthropic._base(provider)}/messages/count_tokens", headers, orjson.dumps(out)
        )

    def parse_response(self, body: bytes, *, model: str) -> dict[str, Any]:
        doc = json_or_none(body)
        if not isinstance(doc, dict) or not isinstance(doc.get("input_tokens"), int):
            raise bad_answer("count_tokens answer without input_tokens")
        return {"input_tokens": doc["input_tokens"]}
