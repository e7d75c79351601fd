"""Bedrock's Converse shapes: OpenAI chat bodies to Converse requests, Converse answers back, and the
ConverseStream binary event stream (`application/vnd.amazon.eventstream`) decoded as bytes arrive.

The event stream is framed by botocore's `EventStreamBuffer` (length prelude, headers, payload, two CRCs):
each complete message is translated at once, nothing waits for the whole stream. Events are `messageStart`,
`contentBlockStart`, `contentBlockDelta`, `contentBlockStop`, `messageStop` (the stop reason) and `metadata`
(usage, after `messageStop`); exception messages (`:message-type: exception`) name their class in
`:exception-type` (lowerCamelCase: `throttlingException`, `modelStreamErrorException`, …).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from adapters.base import StreamItem
from adapters.wire import bedrock as wire
from adapters.wire.chat import as_list, content_parts, data_url, json_args, max_tokens, stop_list
from adapters.wire.common import json_or_none, obj
from controlplane.domain import Classification, ErrorClass
from controlplane.errors import ProviderError

__all__ = ["to_converse_request", "from_converse", "ConverseStream", "ExceptionClassifier"]

_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}

# (exception name, message) -> classification; bedrock.py supplies it (classification lives there).
ExceptionClassifier = Callable[[str, str], Classification]


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in content_parts(content, where):
        if part["type"] == "text":
            if part["text"]:
                out.append({"text": part["text"]})
            continue
        inline = data_url(part["url"])
        fmt = _IMAGE_FORMATS.get(inline[0]) if inline else None
        if inline is None or fmt is None:
            raise ValueError(f"{where}.content: Bedrock takes images only as data: URLs (png, jpeg, gif, webp)")
        out.append({"image": {"format": fmt, "source": {"bytes": inline[1]}}})
    return out


def _check_b64(data: str, where: str) -> None:
    try:
        base64.b64decode(data, validate=True)
    except ValueError:
        raise ValueError(f"{where}: image data is not valid base64") from None


def to_converse_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """A Converse request (the model id goes in the path) from an OpenAI chat body; ValueError names the bad field."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages: must be a non-empty list")
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []

    def push(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if out and out[-1]["role"] == role:  # Converse wants user/assistant alternation
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})

    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise ValueError(f"{where}: must be an object")
        role = m.get("role")
        if role in ("system", "developer"):
            system.extend(b for b in _blocks(m.get("content"), where) if "text" in b)
        elif role == "user":
            blocks = _blocks(m.get("content"), where)
            for b in blocks:
                if "image" in b:
                    _check_b64(b["image"]["source"]["bytes"], where)
            push("user", blocks)
        elif role == "assistant":
            blocks = _blocks(m.get("content"), where) if m.get("content") else []
            for j, call in enumerate(as_list(m.get("tool_calls"), f"{where}.tool_calls")):
                fn = obj(obj(call).get("function"))
                blocks.append(
                    {
                        "toolUse": {
                            "toolUseId": str(obj(call).get("id") or f"tooluse_{i}_{j}"),
                            "name": str(fn.get("name", "")),
                            "input": json_args(fn.get("arguments"), f"{where}.tool_calls[{j}].function.arguments"),
                        }
                    }
                )
            push("assistant", blocks)
        elif role == "tool":
            text = "".join(b.get("text", "") for b in _blocks(m.get("content"), where))
            result = {"toolUseId": str(m.get("tool_call_id", "")), "content": [{"text": text}]}
            push("user", [{"toolResult": result}])
        else:
            raise ValueError(f"{where}.role: unknown role {role!r}")
    req: dict[str, Any] = {"messages": out}
    if system:
        req["system"] = system
    inference: dict[str, Any] = {"maxTokens": max_tokens(body, wire.DEFAULT_MAX_TOKENS)}
    if body.get("temperature") is not None:
        inference["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        inference["topP"] = body["top_p"]
    if (stops := stop_list(body.get("stop"))) is not None:
        inference["stopSequences"] = stops
    req["inferenceConfig"] = inference
    tools = [t for t in as_list(body.get("tools"), "tools") if isinstance(t, dict)]
    choice = body.get("tool_choice")
    if tools and choice != "none":
        specs = []
        for t in tools:
            fn = obj(t.get("function"))
            spec: dict[str, Any] = {
                "name": str(fn.get("name", "")),
                "inputSchema": {"json": fn.get("parameters") or {"type": "object", "properties": {}}},
            }
            if fn.get("description"):
                spec["description"] = str(fn["description"])
            specs.append({"toolSpec": spec})
        config: dict[str, Any] = {"tools": specs}
        if choice == "required":
            config["toolChoice"] = {"any": {}}
        elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
            config["toolChoice"] = {"tool": {"name": str(choice["function"].get("name", ""))}}
        elif choice == "auto":
            config["toolChoice"] = {"auto": {}}
        req["toolConfig"] = config
    return req


# ---- answers ---------------------------------------------------------------------------------------


def _finish(stop_reason: Any) -> str | None:
    return wire.FINISH.get(stop_reason, "stop") if isinstance(stop_reason, str) else None


def _usage(u: Mapping[str, Any]) -> dict[str, int]:
    prompt = sum(int(u.get(k) or 0) for k in ("inputTokens", "cacheReadInputTokens", "cacheWriteInputTokens"))
    completion = int(u.get("outputTokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _bad(detail: str, code: str = "bad_completion") -> ProviderError:
    return ProviderError("bedrock", None, Classification(ErrorClass.BAD_RESPONSE, status=200, code=code, detail=detail))


def from_converse(doc: Any, model: str, *, rid: str = "") -> dict[str, Any]:
    """An OpenAI chat.completion from a Converse answer; ProviderError(bad_response) when it is not one."""
    if not isinstance(doc, dict):
        raise _bad("answer is not a JSON object")
    message = obj(obj(doc.get("output")).get("message"))
    content = message.get("content")
    if not isinstance(content, list):
        raise _bad("answer without output.message.content[]")
    text: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in content:
        if not isinstance(block, dict):
            raise _bad("malformed content block")
        if isinstance(block.get("text"), str):
            text.append(block["text"])
        elif isinstance(block.get("toolUse"), dict):
            use = block["toolUse"]
            tool_calls.append(
                {
                    "id": str(use.get("toolUseId", "")),
                    "type": "function",
                    "function": {
                        "name": str(use.get("name", "")),
                        "arguments": orjson.dumps(use.get("input") or {}).decode(),
                    },
                }
            )
        elif isinstance(block.get("reasoningContent"), dict):
            reasoning.append(str(obj(block["reasoningContent"].get("reasoningText")).get("text", "")))
    finish = _finish(doc.get("stopReason"))
    if not text and not tool_calls and finish is None:
        raise _bad("empty completion (no content, no stopReason)")
    out_msg: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not tool_calls else None}
    if tool_calls:
        out_msg["tool_calls"] = tool_calls
    if reasoning:
        out_msg["reasoning_content"] = "".join(reasoning)
    return {
        "id": rid or f"chatcmpl-bedrock-{int(time.time() * 1000)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": out_msg, "finish_reason": finish}],
        "usage": _usage(obj(doc.get("usage"))),
    }


class ConverseStream:
    """ConverseStream event stream → OpenAI chunks (implements adapters.base.StreamTranslator).

    `messageStop` carries the finish reason; the `metadata` event after it carries usage and ends the stream.
    A close after `messageStop` without `metadata` is still a clean end (usage unknown); a close before it,
    a CRC mismatch or an unreadable frame is `bad_response`.
    """

    def __init__(self, model: str, classify_exception: ExceptionClassifier) -> None:
        from botocore.eventstream import EventStreamBuffer  # the turnout[aws] extra; checked at config load

        self._buffer = EventStreamBuffer()
        self._model = model
        self._classify = classify_exception
        self._id = f"chatcmpl-bedrock-{int(time.time() * 1000)}"
        self._created = int(time.time())
        self._finish: str | None = None
        self._tool_index: dict[int, int] = {}  # contentBlockIndex -> OpenAI tool_calls index
        self._ended = False

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

    def feed(self, data: bytes) -> list[StreamItem]:
        if self._ended:
            return []
        from botocore.eventstream import ParserError

        self._buffer.add_data(data)
        out: list[StreamItem] = []
        try:
            for message in self._buffer:
                out.extend(self._translate(message.headers, message.payload))
                if out and out[-1].kind in ("done", "error"):
                    self._ended = True
                    break
        except ParserError as exc:  # CRC mismatch, impossible lengths: the stream cannot be trusted further
            self._ended = True
            c = Classification(
                ErrorClass.BAD_RESPONSE, code="malformed_event", detail=f"unreadable event stream: {type(exc).__name__}"
            )
            out.append(StreamItem("error", classification=c))
        return out

    def close(self) -> list[StreamItem]:
        if self._ended:
            return []
        self._ended = True
        if self._finish is not None:  # messageStop came; only the metadata (usage) is missing
            return [StreamItem("done", finish_reason=self._finish)]
        c = Classification(ErrorClass.BAD_RESPONSE, code="truncated", detail="stream closed without messageStop")
        return [StreamItem("error", classification=c)]

    def _translate(self, headers: Mapping[str, Any], payload: bytes) -> list[StreamItem]:
        kind = str(headers.get(":message-type", "event"))
        doc = json_or_none(payload) if payload else {}
        if kind in ("exception", "error"):
            name = str(headers.get(":exception-type") or headers.get(":error-code") or "")
            message = str(obj(doc).get("message") or headers.get(":error-message") or "")
            return [StreamItem("error", classification=self._classify(name, message))]
        if not isinstance(doc, dict):
            c = Classification(ErrorClass.BAD_RESPONSE, code="malformed_chunk", detail="stream event is not valid JSON")
            return [StreamItem("error", classification=c)]
        event = str(headers.get(":event-type", ""))
        if event == "contentBlockDelta":
            delta = obj(doc.get("delta"))
            if isinstance(delta.get("text"), str):
                text = delta["text"]
                return [StreamItem("chunk", chunk=self._chunk({"content": text}), content=bool(text))]
            if isinstance(delta.get("toolUse"), dict):
                idx = self._tool_index.get(int(doc.get("contentBlockIndex") or 0), 0)
                part = str(delta["toolUse"].get("input", ""))
                chunk = self._chunk({"tool_calls": [{"index": idx, "function": {"arguments": part}}]})
                return [StreamItem("chunk", chunk=chunk, content=bool(part))]
            if isinstance(delta.get("reasoningContent"), dict):
                text = str(delta["reasoningContent"].get("text", ""))
                return [StreamItem("chunk", chunk=self._chunk({"reasoning_content": text}), content=bool(text))]
            return [StreamItem("keepalive")]
        if event == "contentBlockStart":
            use = obj(obj(doc.get("start")).get("toolUse"))
            if use:
                idx = len(self._tool_index)
                self._tool_index[int(doc.get("contentBlockIndex") or 0)] = idx
                call = {
                    "index": idx,
                    "id": str(use.get("toolUseId", "")),
                    "type": "function",
                    "function": {"name": str(use.get("name", "")), "arguments": ""},
                }
                return [StreamItem("chunk", chunk=self._chunk({"tool_calls": [call]}), content=True)]
            return [StreamItem("keepalive")]
        if event == "messageStart":
            return [StreamItem("keepalive", chunk=self._chunk({"role": "assistant", "content": ""}))]
        if event == "messageStop":
            self._finish = _finish(doc.get("stopReason")) or "stop"
            return [StreamItem("chunk", chunk=self._chunk({}, self._finish), finish_reason=self._finish)]
        if event == "metadata":
            usage = _usage(obj(doc.get("usage")))
            if self._finish is None:
                c = Classification(ErrorClass.BAD_RESPONSE, code="truncated", detail="metadata before messageStop")
                return [StreamItem("error", classification=c)]
            chunk = self._chunk({}, None, usage)
            chunk["choices"] = []  # the usage-only chunk, as OpenAI's include_usage sends it
            return [
                StreamItem("chunk", chunk=chunk, usage=usage),
                StreamItem("done", usage=usage, finish_reason=self._finish),
            ]
        return [StreamItem("keepalive")]  # contentBlockStop, future event kinds
