"""The Gemini family: generateContent / streamGenerateContent?alt=sse with `x-goog-api-key`.

Translates OpenAI chat bodies to GenerateContentRequests (contents/parts, systemInstruction,
functionDeclarations, generationConfig), answers and SSE chunks back to the OpenAI shape, and classifies
GG error bodies by RPC `status`, ErrorInfo reasons and QuotaFailure quota ids (provider-semantics.md §2.3).

Longer than most modules: one API family both ways (request, answer, stream, error classes); splitting it
would separate a field's translation from its inverse.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import aiohttp
import orjson

from adapters import calls
from adapters.base import ModelListing, StreamItem, UpstreamRequest
from adapters.headers import parse_go_duration, parse_retry_after
from adapters.sse import SSEEvent
from adapters.stream_translator import SSETranslator
from adapters.wire import gemini as wire
from adapters.wire.chat import as_list, content_parts, data_url, json_args, max_tokens, stop_list
from adapters.wire.common import ErrorInfo, items, json_or_none, obj
from adapters.wire.status import classify_answer, is_context_message, make, status_fallback
from controlplane.domain import Classification, ErrorClass, Headroom, Scope
from controlplane.errors import ProviderError

if TYPE_CHECKING:
    from controlplane.config import ProviderConfig

__all__ = [
    "GeminiAdapter",
    "GeminiStream",
    "classify_gemini",
    "classify_gemini_info",
    "to_generate_request",
    "seconds_to_daily_reset",
]

_NAME = "gemini"


def seconds_to_daily_reset(now: datetime) -> float:
    """Seconds until the next midnight Pacific, when Gemini's per-day quotas reset."""
    tz = ZoneInfo(wire.DAILY_RESET_TZ)
    local = now.astimezone(tz)
    midnight = datetime(local.year, local.month, local.day, tzinfo=tz) + timedelta(days=1)
    return max(1.0, (midnight.astimezone(UTC) - now.astimezone(UTC)).total_seconds())


def classify_gemini_info(
    status: int | None, info: ErrorInfo, headers: Mapping[str, str], now: datetime
) -> Classification:
    """Decide by RPC status, reasons and quota ids first, then message text, then the HTTP status."""
    st = (info.status or "").upper()
    reasons = {r.upper() for r in info.reasons}
    msg = info.lower_message()
    hint = parse_retry_after(headers, now)
    if hint is None and info.retry_delay:
        hint = parse_go_duration(info.retry_delay)

    def done(
        cls: ErrorClass, code: str | None, scope: Scope | None = None, context: bool = False, retry: float | None = None
    ) -> Classification:
        return make(
            cls,
            status=status,
            info=info,
            headers=headers,
            now=now,
            scope=scope,
            code=code,
            context_exceeded=context,
            retry_after_s=retry if retry is not None else hint,
        )

    if "API_KEY_INVALID" in reasons or "api key not valid" in msg:
        return done(ErrorClass.AUTH, "API_KEY_INVALID")
    if st == "UNAUTHENTICATED":
        return done(ErrorClass.AUTH, st)
    if st == "FAILED_PRECONDITION":
        return done(ErrorClass.REGION_BLOCKED, st)  # user location / country without free tier or billing
    if st == "PERMISSION_DENIED":
        if any(w in msg for w in ("region", "location", "country")):
            return done(ErrorClass.REGION_BLOCKED, st)
        return done(ErrorClass.AUTH, st, Scope.TARGET)
    if status == 402:
        return done(ErrorClass.QUOTA_EXHAUSTED, st or "http_402")
    if st == "NOT_FOUND":
        return done(ErrorClass.MODEL_GONE, st, Scope.TARGET)
    if st == "RESOURCE_EXHAUSTED":
        daily = next((q for q in info.quota_ids if "perday" in q.lower()), None)
        if daily:
            # Out for the day on this model: cool until the reset rather than withdraw (§6).
            return done(
                ErrorClass.QUOTA_EXHAUSTED, daily, Scope.TARGET, retry=max(hint or 0.0, seconds_to_daily_reset(now))
            )
        if "RATELIMITEXCEEDED" in reasons or "resource exhausted" in msg:
            return done(ErrorClass.OVERLOADED, "rateLimitExceeded")  # Vertex shared capacity
        return done(ErrorClass.RATE_LIMITED, info.quota_ids[0] if info.quota_ids else st)
    if st == "INVALID_ARGUMENT" or (status == 400 and not st):
        if is_context_message(info.message):
            return done(ErrorClass.CLIENT_ERROR, "context_length_exceeded", context=True)
        return done(ErrorClass.CLIENT_ERROR, st or "http_400")
    if st == "INTERNAL":
        return done(ErrorClass.SERVER_ERROR, st)
    if st == "UNAVAILABLE":
        return done(ErrorClass.OVERLOADED, st)
    if st == "DEADLINE_EXCEEDED":
        return done(ErrorClass.TIMEOUT, st)
    if status is None:
        inner = int(info.code) if info.code and info.code.isdigit() else None
        if inner is not None and 400 <= inner < 600:
            return classify_gemini_info(inner, info, headers, now)
        return done(ErrorClass.SERVER_ERROR, st or "stream_error")
    cls, scope = status_fallback(status, info)
    return done(cls, st or f"http_{status}", scope)


def classify_gemini(
    status: int, headers: Mapping[str, str], body: bytes, *, now: datetime | None = None
) -> Classification:
    """Error class, scope and retry hints for one Gemini answer (2xx included: a blocked prompt is client_error)."""
    return classify_answer(status, headers, body, now, classify_gemini_info, _blocked_prompt)


def _blocked_prompt(status: int, body: bytes) -> Classification | None:
    """A 200 without candidates whose promptFeedback names a blockReason: the caller's prompt was refused."""
    doc = json_or_none(body)
    if isinstance(doc, dict) and not doc.get("candidates"):
        feedback = doc.get("promptFeedback")
        reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
        if reason:
            return Classification(
                ErrorClass.CLIENT_ERROR, status=status, code=str(reason), detail=f"prompt blocked: {reason}"
            )
    return None


# ---- request translation -------------------------------------------------------------------------


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in content_parts(content, where):
        if part["type"] == "text":
            out.append({"text": part["text"]})
        else:
            inline = data_url(part["url"])
            out.append(
                {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
                if inline
                else {"fileData": {"fileUri": part["url"]}}
            )
    return out


def to_generate_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """A GenerateContentRequest from an OpenAI chat body. Raises ValueError naming the bad field."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages: must be a non-empty list")
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_call_id -> function name, for functionResponse

    def push(role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise ValueError(f"{where}: must be an object")
        role = m.get("role")
        if role in ("system", "developer"):
            system.extend(p for p in _parts(m.get("content"), where) if "text" in p)
        elif role == "user":
            push("user", _parts(m.get("content"), where))
        elif role == "assistant":
            parts = _parts(m.get("content"), where)
            for j, call in enumerate(as_list(m.get("tool_calls"), f"{where}.tool_calls")):
                fn = obj(obj(call).get("function"))
                name = str(fn.get("name", ""))
                names[str(obj(call).get("id", ""))] = name
                parts.append(
                    {
                        "functionCall": {
                            "name": name,
                            "args": json_args(fn.get("arguments"), f"{where}.tool_calls[{j}].function.arguments"),
                        }
                    }
                )
            push("model", parts)
        elif role == "tool":
            text = "".join(p.get("text", "") for p in _parts(m.get("content"), where))
            parsed = json_or_none(text) if text else None
            response = parsed if isinstance(parsed, dict) else {"content": text}
            name = names.get(str(m.get("tool_call_id", "")), str(m.get("name", "")))
            push("user", [{"functionResponse": {"name": name, "response": response}}])
        else:
            raise ValueError(f"{where}.role: unknown role {role!r}")
    req: dict[str, Any] = {"contents": contents}
    if system:
        req["systemInstruction"] = {"parts": system}
    gen: dict[str, Any] = {}
    limit = max_tokens(body, None)
    if limit is not None:
        gen["maxOutputTokens"] = limit
    if body.get("temperature") is not None:
        gen["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        gen["topP"] = body["top_p"]
    if (stops := stop_list(body.get("stop"))) is not None:
        gen["stopSequences"] = stops
    rf = body.get("response_format")
    if isinstance(rf, dict) and rf.get("type") in ("json_object", "json_schema"):
        gen["responseMimeType"] = "application/json"
    if gen:
        req["generationConfig"] = gen
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        decls = []
        for t in tools:
            fn = obj(obj(t).get("function"))
            d: dict[str, Any] = {"name": fn.get("name", ""), "description": fn.get("description", "")}
            if fn.get("parameters"):
                d["parameters"] = fn["parameters"]
            decls.append(d)
        req["tools"] = [{"functionDeclarations": decls}]
    choice = body.get("tool_choice")
    mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}.get(choice) if isinstance(choice, str) else None
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        req["toolConfig"] = {
            "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [choice["function"].get("name", "")]}
        }
    elif mode:
        req["toolConfig"] = {"functionCallingConfig": {"mode": mode}}
    return req


# ---- response translation ------------------------------------------------------------------------


def _usage(doc: Mapping[str, Any]) -> dict[str, int] | None:
    u = doc.get("usageMetadata")
    if not isinstance(u, dict):
        return None
    prompt = int(u.get("promptTokenCount") or 0)
    completion = int(u.get("candidatesTokenCount") or 0) + int(u.get("thoughtsTokenCount") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(u.get("totalTokenCount") or prompt + completion),
    }


def _candidate(
    doc: Mapping[str, Any], call_base: int
) -> tuple[str, str, list[dict[str, Any]], str | None, bool] | None:
    """(text, reasoning, tool calls, finish_reason, blocked) of the first candidate; None when there is none."""
    cands = doc.get("candidates")
    if not isinstance(cands, list) or not cands:
        fb = doc.get("promptFeedback")
        if isinstance(fb, dict) and fb.get("blockReason"):
            return "", "", [], "content_filter", True
        return None
    cand = cands[0]
    if not isinstance(cand, dict):
        raise ValueError("malformed candidate")
    content = obj(cand.get("content"))
    text: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for part in items(content.get("parts")):
        if not isinstance(part, dict):
            raise ValueError("malformed part")
        if "functionCall" in part and isinstance(part["functionCall"], dict):
            fc = part["functionCall"]
            idx = call_base + len(tool_calls)
            tool_calls.append(
                {
                    "index": idx,
                    "id": str(fc.get("id") or f"call_{idx}"),
                    "type": "function",
                    "function": {
                        "name": str(fc.get("name", "")),
                        "arguments": orjson.dumps(fc.get("args") or {}).decode(),
                    },
                }
            )
        elif isinstance(part.get("text"), str):
            (reasoning if part.get("thought") else text).append(part["text"])
    fr = cand.get("finishReason")
    finish = wire.FINISH.get(fr, "stop") if isinstance(fr, str) else None
    if finish == "stop" and tool_calls:
        finish = "tool_calls"
    return "".join(text), "".join(reasoning), tool_calls, finish, False


def _bad(detail: str, code: str = "bad_completion") -> ProviderError:
    return ProviderError(_NAME, None, Classification(ErrorClass.BAD_RESPONSE, status=200, code=code, detail=detail))


def from_generate(doc: Any, model: str) -> dict[str, Any]:
    """An OpenAI chat.completion from a GenerateContentResponse; ProviderError(bad_response) when it is not one."""
    if not isinstance(doc, dict):
        raise _bad("answer is not a JSON object")
    if "error" in doc:
        raise ProviderError(_NAME, None, classify_gemini_info(None, ErrorInfo.from_doc(doc), {}, datetime.now(UTC)))
    try:
        got = _candidate(doc, 0)
    except ValueError as exc:
        raise _bad(str(exc)) from exc
    if got is None:
        raise _bad("answer without candidates")
    text, reasoning, tool_calls, finish, blocked = got
    if not text and not tool_calls and finish is None:
        raise _bad("empty completion (no parts, no finishReason)")
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not tool_calls else None}
    if tool_calls:
        message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in tool_calls]
    if reasoning:
        message["reasoning_content"] = reasoning
    return {
        "id": str(doc.get("responseId") or f"gemini-{int(time.time() * 1000)}"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(doc.get("modelVersion") or model),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": _usage(doc) or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


class GeminiStream(SSETranslator):
    """`alt=sse` GenerateContentResponse chunks → OpenAI chunks; the chunk carrying finishReason ends it."""

    terminator = "finishReason"

    def __init__(self, model: str) -> None:
        super().__init__()
        self._model = model
        self._id = f"gemini-{int(time.time() * 1000)}"
        self._created = int(time.time())
        self._calls = 0

    def _translate(self, ev: SSEEvent) -> list[StreamItem]:
        if ev.kind == "comment":
            return [StreamItem("keepalive")]
        if ev.kind == "overflow":
            return [
                StreamItem(
                    "error",
                    classification=Classification(
                        ErrorClass.BAD_RESPONSE, code="too_large", detail="stream event over the size cap"
                    ),
                )
            ]
        doc = json_or_none(ev.data or "")
        if isinstance(doc, list) and len(doc) == 1:
            doc = doc[0]
        if not isinstance(doc, dict):
            if ev.kind == "event" and not (ev.data or "").strip():
                return [StreamItem("keepalive")]
            return [
                StreamItem(
                    "error",
                    classification=Classification(
                        ErrorClass.BAD_RESPONSE, code="malformed_chunk", detail="stream chunk is not valid JSON"
                    ),
                )
            ]
        if "error" in doc:
            return [
                StreamItem(
                    "error", classification=classify_gemini_info(None, ErrorInfo.from_doc(doc), {}, datetime.now(UTC))
                )
            ]
        try:
            got = _candidate(doc, self._calls)
        except ValueError:
            got = None
        if got is None:
            return [
                StreamItem(
                    "error",
                    classification=Classification(
                        ErrorClass.BAD_RESPONSE, code="malformed_chunk", detail="stream chunk without candidates"
                    ),
                )
            ]
        text, reasoning, tool_calls, finish, _blocked = got
        self._calls += len(tool_calls)
        if finish == "stop" and self._calls:
            # Gemini sends the functionCall parts and the STOP finish in separate chunks; a non-streamed answer
            # with the same calls ends with tool_calls, so the streamed one must too.
            finish = "tool_calls"
        delta: dict[str, Any] = {}
        if text:
            delta["content"] = text
        if reasoning:
            delta["reasoning_content"] = reasoning
        if tool_calls:
            delta["tool_calls"] = tool_calls
        usage = _usage(doc)
        chunk: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": str(doc.get("modelVersion") or self._model),
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if usage is not None:
            chunk["usage"] = usage
        items = [StreamItem("chunk", chunk=chunk, content=bool(delta), usage=usage, finish_reason=finish)]
        if finish is not None:
            items.append(StreamItem("done", usage=usage, finish_reason=finish))
        return items


class GeminiAdapter(calls.StreamedProbe):
    """The Adapter for the Gemini API (generativelanguage.googleapis.com/v1beta)."""

    name = _NAME

    def _headers(self, provider: ProviderConfig) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if provider.api_key:
            headers["x-goog-api-key"] = provider.api_key.get_secret_value()
        headers.update(provider.headers)
        return headers

    def build_request(
        self, provider: ProviderConfig, model: str, body: Mapping[str, Any], *, stream: bool
    ) -> UpstreamRequest:
        name = model.removeprefix("models/")
        verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
        headers = self._headers(provider)
        if stream:
            headers["accept"] = "text/event-stream"
        return UpstreamRequest(
            "POST", f"{provider.base_url}/models/{name}:{verb}", headers, orjson.dumps(to_generate_request(body))
        )

    def parse_response(self, body: bytes, *, model: str) -> dict[str, Any]:
        return from_generate(json_or_none(body), model)

    def stream_translator(self, *, model: str) -> GeminiStream:
        return GeminiStream(model)

    def classify(
        self, status: int, headers: Mapping[str, str], body: bytes, *, now: datetime | None = None
    ) -> Classification:
        return classify_gemini(status, headers, body, now=now)

    def headroom(self, headers: Mapping[str, str], now: datetime) -> Headroom | None:
        return None  # Gemini sends no rate-limit headers (§3)

    async def list_models(
        self, session: aiohttp.ClientSession, provider: ProviderConfig, *, timeout: float
    ) -> ModelListing:
        headers = self._headers(provider)
        headers.pop("content-type", None)
        models: list[str] = []
        token: str | None = None
        for _ in range(100):  # a bound, in case a provider keeps paging
            url = f"{provider.base_url}/models?pageSize=1000" + (f"&pageToken={token}" if token else "")
            got = await calls.fetch(
                session, UpstreamRequest("GET", url, dict(headers)), timeout=timeout, provider_id=provider.id
            )
            if not 200 <= got.status < 300:
                raise ProviderError(provider.id, None, classify_gemini(got.status, got.headers, got.body))
            doc = json_or_none(got.body)
            data = doc.get("models", []) if isinstance(doc, dict) else None
            if not isinstance(data, list):
                raise ProviderError(
                    provider.id,
                    None,
                    Classification(
                        ErrorClass.BAD_RESPONSE,
                        status=got.status,
                        code="bad_listing",
                        detail="model list without models[]",
                    ),
                )
            models.extend(
                str(m["name"]).removeprefix("models/")
                for m in data
                if isinstance(m, dict) and isinstance(m.get("name"), str)
            )
            token = (
                doc.get("nextPageToken")
                if isinstance(doc, dict) and isinstance(doc.get("nextPageToken"), str)
                else None
            )
            if not token:
                break
        return ModelListing(models, None)
