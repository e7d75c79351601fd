"""The Anthropic family: Messages API (`POST /v1/messages`, `x-api-key`, `anthropic-version`).

Translates OpenAI chat bodies to Messages requests (system, tools, tool calls and results, max_tokens),
Messages answers and event streams back to the OpenAI shape, and classifies AN error bodies by
`error.type` (provider-semantics.md §2.2).

Longer than most modules: one API family both ways (request, answer, stream, error classes); splitting it
would separate a field's translation from its inverse.
"""

from __future__ import annotations

import time
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
from adapters.wire import anthropic as wire
from adapters.wire.chat import as_list, content_parts, data_url, json_args, max_tokens, stop_list
from adapters.wire.common import ErrorInfo, json_or_none, obj
from adapters.wire.status import classify_answer, is_context_message, make, status_fallback
from controlplane.domain import Classification, ErrorClass, Headroom, Scope
from controlplane.errors import ProviderError

if TYPE_CHECKING:
    from controlplane.config import ProviderConfig

__all__ = [
    "AnthropicAdapter",
    "AnthropicStream",
    "classify_anthropic",
    "classify_anthropic_info",
    "to_messages_request",
]

_NAME = "anthropic"


def classify_anthropic_info(
    status: int | None, info: ErrorInfo, headers: Mapping[str, str], now: datetime
) -> Classification:
    """Decide by `error.type` first, then message text, then the status (None: an in-stream error event)."""
    t = (info.type or "").lower()
    msg = info.lower_message()

    def done(cls: ErrorClass, code: str | None, scope: Scope | None = None, context: bool = False) -> Classification:
        return make(
            cls, status=status, info=info, headers=headers, now=now, scope=scope, code=code, context_exceeded=context
        )

    if t == "authentication_error":
        return done(ErrorClass.AUTH, t)
    if t == "billing_error":
        return done(ErrorClass.QUOTA_EXHAUSTED, t)
    if t == "permission_error":
        return done(ErrorClass.AUTH, t, Scope.TARGET)
    if t == "forbidden":  # the edge's geo block: no top-level "type", error.type "forbidden"
        return done(ErrorClass.REGION_BLOCKED, t)
    if t == "not_found_error":
        return done(ErrorClass.MODEL_GONE, t, Scope.TARGET)
    if t == "request_too_large":
        return done(ErrorClass.CLIENT_ERROR, t)
    if t == "rate_limit_error":
        if (info.inner_code or "").lower() == "enforced_spend_limit_reached":
            return done(ErrorClass.QUOTA_EXHAUSTED, "enforced_spend_limit_reached")
        return done(ErrorClass.RATE_LIMITED, t)
    if t == "overloaded_error":
        return done(ErrorClass.OVERLOADED, t)
    if t == "api_error":
        return done(ErrorClass.SERVER_ERROR, t)
    if t == "timeout_error":
        return done(ErrorClass.TIMEOUT, t)
    if t == "invalid_request_error" or status in (400, 413, 422):
        if any(s in msg for s in wire.SPEND_TEXT):
            return done(ErrorClass.QUOTA_EXHAUSTED, "spend_limit")
        if is_context_message(info.message):
            return done(ErrorClass.CLIENT_ERROR, "context_length_exceeded", context=True)
        if t == "invalid_request_error":
            return done(ErrorClass.CLIENT_ERROR, t)
    if status is None:
        return done(ErrorClass.SERVER_ERROR, t or "stream_error")
    cls, scope = status_fallback(status, info)
    return done(cls, t or f"http_{status}", scope)


def classify_anthropic(
    status: int, headers: Mapping[str, str], body: bytes, *, now: datetime | None = None
) -> Classification:
    """Error class, scope and retry hints for one Messages API answer (2xx included)."""
    return classify_answer(status, headers, body, now, classify_anthropic_info)


# ---- request translation -------------------------------------------------------------------------


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in content_parts(content, where):
        if part["type"] == "text":
            out.append({"type": "text", "text": part["text"]})
        else:
            url = part["url"]
            inline = data_url(url)
            if inline:
                out.append({"type": "image", "source": {"type": "base64", "media_type": inline[0], "data": inline[1]}})
            else:
                out.append({"type": "image", "source": {"type": "url", "url": url}})
    return out


def to_messages_request(body: Mapping[str, Any], model: str, *, stream: bool) -> dict[str, Any]:
    """An Anthropic Messages request from an OpenAI chat body. Raises ValueError naming the bad field."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages: must be a non-empty list")
    system: list[str] = []
    out: list[dict[str, Any]] = []

    def push(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if out and out[-1]["role"] == role:  # Anthropic wants user/assistant alternation
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})

    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise ValueError(f"{where}: must be an object")
        role = m.get("role")
        if role in ("system", "developer"):
            system.extend(b["text"] for b in _blocks(m.get("content"), where) if b["type"] == "text")
        elif role == "user":
            push("user", _blocks(m.get("content"), where))
        elif role == "assistant":
            blocks = _blocks(m.get("content"), where) if m.get("content") else []
            for j, call in enumerate(as_list(m.get("tool_calls"), f"{where}.tool_calls")):
                fn = obj(obj(call).get("function"))
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": str(obj(call).get("id") or f"toolu_{i}_{j}"),
                        "name": str(fn.get("name", "")),
                        "input": json_args(fn.get("arguments"), f"{where}.tool_calls[{j}].function.arguments"),
                    }
                )
            push("assistant", blocks)
        elif role == "tool":
            text = "".join(b.get("text", "") for b in _blocks(m.get("content"), where) if b["type"] == "text")
            push("user", [{"type": "tool_result", "tool_use_id": str(m.get("tool_call_id", "")), "content": text}])
        else:
            raise ValueError(f"{where}.role: unknown role {role!r}")
    req: dict[str, Any] = {"model": model, "messages": out}
    if system:
        req["system"] = "\n\n".join(system)
    req["max_tokens"] = max_tokens(body, wire.DEFAULT_MAX_TOKENS)
    if (stops := stop_list(body.get("stop"))) is not None:
        req["stop_sequences"] = stops
    for src, dst in (("temperature", "temperature"), ("top_p", "top_p")):
        if body.get(src) is not None:
            req[dst] = body[src]
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        req["tools"] = [
            {
                "name": obj(t.get("function")).get("name", ""),
                "description": obj(t.get("function")).get("description", ""),
                "input_schema": obj(t.get("function")).get("parameters") or {"type": "object", "properties": {}},
            }
            for t in tools
            if isinstance(t, dict)
        ]
    choice = body.get("tool_choice")
    tc: dict[str, Any] | None = None
    if choice == "auto":
        tc = {"type": "auto"}
    elif choice == "none":
        tc = {"type": "none"}
    elif choice == "required":
        tc = {"type": "any"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        tc = {"type": "tool", "name": choice["function"].get("name", "")}
    if body.get("parallel_tool_calls") is False and "tools" in req:
        tc = tc or {"type": "auto"}
        tc["disable_parallel_tool_use"] = True
    if tc is not None and ("tools" in req or tc["type"] == "none"):
        req["tool_choice"] = tc
    if stream:
        req["stream"] = True
    return req


# ---- response translation ------------------------------------------------------------------------


def _finish(stop_reason: Any) -> str | None:
    return wire.FINISH.get(stop_reason, "stop") if isinstance(stop_reason, str) else None


def _openai_usage(u: Mapping[str, Any]) -> dict[str, int]:
    prompt = sum(int(u.get(k) or 0) for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
    completion = int(u.get("output_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _bad(detail: str, code: str = "bad_completion") -> ProviderError:
    return ProviderError(_NAME, None, Classification(ErrorClass.BAD_RESPONSE, status=200, code=code, detail=detail))


def from_message(doc: Any, model: str) -> dict[str, Any]:
    """An OpenAI chat.completion from a Messages answer; ProviderError(bad_response) when it is not one."""
    if not isinstance(doc, dict):
        raise _bad("answer is not a JSON object")
    if "error" in doc:
        raise ProviderError(_NAME, None, classify_anthropic_info(None, ErrorInfo.from_doc(doc), {}, datetime.now(UTC)))
    content = doc.get("content")
    if doc.get("type") != "message" or not isinstance(content, list):
        raise _bad("answer without type=message and content[]")
    text: list[str] = []
    reasoning: list[str] = []
    calls_: list[dict[str, Any]] = []
    for block in content:
        if not isinstance(block, dict):
            raise _bad("malformed content block")
        kind = block.get("type")
        if kind == "text":
            text.append(str(block.get("text", "")))
        elif kind == "thinking":
            reasoning.append(str(block.get("thinking", "")))
        elif kind == "tool_use":
            calls_.append(
                {
                    "id": str(block.get("id", "")),
                    "type": "function",
                    "function": {
                        "name": str(block.get("name", "")),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
    finish = _finish(doc.get("stop_reason"))
    if not text and not calls_ and finish is None:
        raise _bad("empty completion (no content, no stop_reason)")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls_ else None}
    if calls_:
        message["tool_calls"] = calls_
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    usage = obj(doc.get("usage"))
    return {
        "id": str(doc.get("id", "")),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(doc.get("model") or model),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": _openai_usage(usage),
    }


class AnthropicStream(SSETranslator):
    """Messages event stream → OpenAI chunks. `message_stop` ends it; `event: error` is classified by error.type."""

    terminator = "message_stop"

    def __init__(self, model: str) -> None:
        super().__init__()
        self._model = model
        self._id = ""
        self._created = int(time.time())
        self._input_usage: dict[str, Any] = {}
        self._tool_index: dict[int, int] = {}  # content block index -> OpenAI tool_calls index

    def _translate(self, ev: SSEEvent) -> list[StreamItem]:
        return [self._item(ev)]

    def _chunk(
        self, delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None
    ) -> dict[str, Any]:
        c: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if usage is not None:
            c["usage"] = usage
        return c

    def _item(self, ev: SSEEvent) -> StreamItem:
        if ev.kind == "comment":
            return StreamItem("keepalive")
        if ev.kind == "overflow":
            return _error_item(
                Classification(ErrorClass.BAD_RESPONSE, code="too_large", detail="stream event over the size cap")
            )
        doc = json_or_none(ev.data or "")
        if not isinstance(doc, dict):
            if ev.kind == "event" and not (ev.data or "").strip():
                return StreamItem("keepalive")
            return _error_item(
                Classification(ErrorClass.BAD_RESPONSE, code="malformed_chunk", detail="stream event is not valid JSON")
            )
        kind = doc.get("type") or ev.event
        if kind == "error" or "error" in doc:
            return _error_item(classify_anthropic_info(None, ErrorInfo.from_doc(doc), {}, datetime.now(UTC)))
        if kind == "message_start":
            msg = obj(doc.get("message"))
            self._id = str(msg.get("id", ""))
            self._model = str(msg.get("model") or self._model)
            self._input_usage = obj(msg.get("usage"))
            return StreamItem("keepalive", chunk=self._chunk({"role": "assistant", "content": ""}))
        if kind == "content_block_start":
            block = obj(doc.get("content_block"))
            if block.get("type") == "tool_use":
                idx = len(self._tool_index)
                self._tool_index[int(doc.get("index") or 0)] = idx
                call = {
                    "index": idx,
                    "id": str(block.get("id", "")),
                    "type": "function",
                    "function": {"name": str(block.get("name", "")), "arguments": ""},
                }
                return StreamItem("chunk", chunk=self._chunk({"tool_calls": [call]}), content=True)
            return StreamItem("keepalive")
        if kind == "content_block_delta":
            d = obj(doc.get("delta"))
            dt = d.get("type")
            if dt == "text_delta":
                return StreamItem(
                    "chunk", chunk=self._chunk({"content": str(d.get("text", ""))}), content=bool(d.get("text"))
                )
            if dt == "input_json_delta":
                idx = self._tool_index.get(int(doc.get("index") or 0), 0)
                part = str(d.get("partial_json", ""))
                return StreamItem(
                    "chunk",
                    chunk=self._chunk({"tool_calls": [{"index": idx, "function": {"arguments": part}}]}),
                    content=bool(part),
                )
            if dt == "thinking_delta":
                return StreamItem(
                    "chunk",
                    chunk=self._chunk({"reasoning_content": str(d.get("thinking", ""))}),
                    content=bool(d.get("thinking")),
                )
            return StreamItem("keepalive")  # signature_delta and future kinds carry no visible progress
        if kind == "message_delta":
            d = obj(doc.get("delta"))
            finish = _finish(d.get("stop_reason"))
            u = dict(self._input_usage)
            if isinstance(doc.get("usage"), dict):
                u.update({k: v for k, v in doc["usage"].items() if v is not None})
            usage = _openai_usage(u)
            return StreamItem("chunk", chunk=self._chunk({}, finish, usage), usage=usage, finish_reason=finish)
        if kind == "message_stop":
            return StreamItem("done")
        return StreamItem("keepalive")  # ping, content_block_stop, unknown future events


def _error_item(c: Classification) -> StreamItem:
    return StreamItem("error", classification=c)


class AnthropicAdapter(calls.StreamedProbe):
    """The Adapter for Anthropic's Messages API."""

    name = _NAME

    def _base(self, provider: ProviderConfig) -> str:
        base = provider.base_url
        return base if base.endswith("/v1") else f"{base}/v1"

    def _headers(self, provider: ProviderConfig) -> dict[str, str]:
        headers = {"content-type": "application/json", "anthropic-version": provider.api_version or wire.API_VERSION}
        if provider.api_key:
            headers["x-api-key"] = provider.api_key.get_secret_value()
        headers.update(provider.headers)
        return headers

    def build_request(
        self, provider: ProviderConfig, model: str, body: Mapping[str, Any], *, stream: bool
    ) -> UpstreamRequest:
        req = to_messages_request(body, model, stream=stream)
        headers = self._headers(provider)
        if stream:
            headers["accept"] = "text/event-stream"
        return UpstreamRequest("POST", f"{self._base(provider)}/messages", headers, orjson.dumps(req))

    def parse_response(self, body: bytes, *, model: str) -> dict[str, Any]:
        return from_message(json_or_none(body), model)

    def stream_translator(self, *, model: str) -> AnthropicStream:
        return AnthropicStream(model)

    def classify(
        self, status: int, headers: Mapping[str, str], body: bytes, *, now: datetime | None = None
    ) -> Classification:
        return classify_anthropic(status, headers, body, now=now)

    def headroom(self, headers: Mapping[str, str], now: datetime) -> Headroom | None:
        return headroom_from_headers(headers, now, "anthropic")

    async def list_models(
        self, session: aiohttp.ClientSession, provider: ProviderConfig, *, timeout: float
    ) -> ModelListing:
        headers = self._headers(provider)
        headers.pop("content-type", None)
        models: list[str] = []
        after: str | None = None
        headroom: Headroom | None = None
        for _ in range(100):  # a bound, in case a provider keeps saying has_more
            url = f"{self._base(provider)}/models?limit=1000" + (f"&after_id={after}" if after else "")
            got = await calls.fetch(
                session, UpstreamRequest("GET", url, dict(headers)), timeout=timeout, provider_id=provider.id
            )
            now = datetime.now(UTC)
            if not 200 <= got.status < 300:
                raise ProviderError(provider.id, None, classify_anthropic(got.status, got.headers, got.body, now=now))
            doc = json_or_none(got.body)
            data = doc.get("data") if isinstance(doc, dict) else None
            if not isinstance(doc, dict) or not isinstance(data, list):
                raise ProviderError(
                    provider.id,
                    None,
                    Classification(
                        ErrorClass.BAD_RESPONSE,
                        status=got.status,
                        code="bad_listing",
                        detail="model list without data[]",
                    ),
                )
            models.extend(str(m["id"]) for m in data if isinstance(m, dict) and isinstance(m.get("id"), str))
            headroom = self.headroom(got.headers, now) or headroom
            after = doc.get("last_id") if isinstance(doc.get("last_id"), str) else None
            if not doc.get("has_more") or not after:
                break
        return ModelListing(models, headroom)
