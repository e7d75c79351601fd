"""Writing a stream in the Responses API's event sequence.

`ChatToResponses` turns the chat chunks of a translated target into `response.created`, `response.in_progress`,
`response.output_item.added`, `response.content_part.added`, `response.output_text.delta`,
`response.function_call_arguments.delta`, the matching `.done` events and `response.completed` (or
`response.incomplete`). `NativeResponses` forwards a native target's own events as they are. Both end a stream
that was cut after content reached the client with an `error` event and `response.failed`: never a clean end.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from adapters.base import StreamItem
from controlplane.domain import Classification
from dataplane.api.responses_translate import (
    FINISH_STATUS,
    call_item,
    item_id,
    message_item,
    response_object,
    responses_usage,
)

__all__ = ["ChatToResponses", "NativeResponses", "sse_event", "failure_events"]


def sse_event(kind: str, payload: Mapping[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def failure_events(c: Classification, seq: int, response: dict[str, Any]) -> bytes:
    """`error` then `response.failed`: how a Responses stream that cannot finish ends."""
    message = c.detail or f"upstream {c.error_class}"
    failed = {**response, "status": "failed", "error": {"code": "server_error", "message": message}}
    return sse_event(
        "error",
        {"type": "error", "code": str(c.error_class), "message": message, "param": None, "sequence_number": seq},
    ) + sse_event("response.failed", {"type": "response.failed", "sequence_number": seq + 1, "response": failed})


@dataclass(slots=True)
class _Call:
    output_index: int
    item_id: str
    call_id: str
    name: str
    arguments: str = ""


class ChatToResponses:
    """Chat chunks → Responses events for one stream (a translated target). `final` is the completed response."""

    def __init__(self, body: Mapping[str, Any], *, rid: str, model: str) -> None:
        self._body, self._rid, self._model = body, rid, model
        self._created = int(time.time())
        self._seq = 0
        self._started = False
        self._output: list[dict[str, Any] | None] = []  # finished items by output index (None while open)
        self._msg_index: int | None = None  # output index of the open message item
        self._msg_id = ""
        self._text: list[str] = []
        self._calls: dict[int, _Call] = {}  # chat tool_calls index → call
        self._finish: str | None = None
        self._usage: Mapping[str, Any] | None = None
        self.final: dict[str, Any] | None = None

    def _ev(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return sse_event(kind, payload)

    def _snapshot(self, status: str, **kw: Any) -> dict[str, Any]:
        output = [o for o in self._output if o is not None]
        return response_object(
            self._body, rid=self._rid, model=self._model, status=status, output=output, created_at=self._created, **kw
        )

    def _start(self) -> list[bytes]:
        self._started = True
        snap = self._snapshot("in_progress", usage=None)
        return [self._ev("response.created", response=snap), self._ev("response.in_progress", response=snap)]

    def _open_message(self) -> list[bytes]:
        self._msg_index, self._msg_id, self._text = len(self._output), item_id("msg"), []
        self._output.append(None)
        item = {**message_item(self._msg_id, "", "in_progress"), "content": []}
        part = {"type": "output_text", "text": "", "annotations": []}
        return [
            self._ev("response.output_item.added", output_index=self._msg_index, item=item),
            self._ev(
                "response.content_part.added",
                item_id=self._msg_id,
                output_index=self._msg_index,
                content_index=0,
                part=part,
            ),
        ]

    def _close_message(self) -> list[bytes]:
        if self._msg_index is None:
            return []
        idx, text = self._msg_index, "".join(self._text)
        item = message_item(self._msg_id, text)
        self._output[idx], self._msg_index = item, None
        common = {"item_id": self._msg_id, "output_index": idx, "content_index": 0}
        return [
            self._ev("response.output_text.done", text=text, logprobs=[], **common),
            self._ev("response.content_part.done", part=item["content"][0], **common),
            self._ev("response.output_item.done", output_index=idx, item=item),
        ]

    def _tool_delta(self, delta: Mapping[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        index = int(delta.get("index") or 0)
        fn = delta.get("function") or {}
        call = self._calls.get(index)
        if call is None:
            out += self._close_message()
            call = _Call(
                len(self._output), item_id("fc"), str(delta.get("id") or item_id("call")), str(fn.get("name") or "")
            )
            self._calls[index] = call
            self._output.append(None)
            item = call_item(call.item_id, call.call_id, call.name, "", "in_progress")
            out.append(self._ev("response.output_item.added", output_index=call.output_index, item=item))
        part = fn.get("arguments")
        if isinstance(part, str) and part:
            call.arguments += part
            out.append(
                self._ev(
                    "response.function_call_arguments.delta",
                    item_id=call.item_id,
                    output_index=call.output_index,
                    delta=part,
                )
            )
        return out

    def _chunk(self, chunk: Mapping[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self._msg_index is None:
                    out += self._open_message()
                self._text.append(text)
                out.append(
                    self._ev(
                        "response.output_text.delta",
                        item_id=self._msg_id,
                        output_index=self._msg_index,
                        content_index=0,
                        delta=text,
                        logprobs=[],
                    )
                )
            for call in delta.get("tool_calls") or []:
                out += self._tool_delta(call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return out

    def _end(self) -> list[bytes]:
        out = self._close_message()
        for call in self._calls.values():
            item = call_item(call.item_id, call.call_id, call.name, call.arguments)
            self._output[call.output_index] = item
            out.append(
                self._ev(
                    "response.function_call_arguments.done",
                    item_id=call.item_id,
                    output_index=call.output_index,
                    arguments=call.arguments,
                )
            )
            out.append(self._ev("response.output_item.done", output_index=call.output_index, item=item))
        status, reason = FINISH_STATUS.get(self._finish, ("completed", None))
        self.final = self._snapshot(status, usage=responses_usage(self._usage), incomplete_reason=reason)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        out.append(self._ev(kind, response=self.final))
        return out

    def encode(self, items: Sequence[StreamItem]) -> bytes:
        out: list[bytes] = [] if self._started else self._start()
        for item in items:
            if item.kind == "chunk" and item.chunk is not None:
                out += self._chunk(item.chunk)
            elif item.kind == "done":
                out += self._end()
        return b"".join(out)

    def error(self, c: Classification) -> bytes:
        head = b"" if self._started else b"".join(self._start())
        return head + failure_events(c, self._seq, self._snapshot("failed", usage=None))


class NativeResponses:
    """A native Responses target's events, forwarded as they came; `final` is its completed response."""

    def __init__(self) -> None:
        self._seq = 0
        self._response: dict[str, Any] = {"id": "", "object": "response", "status": "in_progress", "output": []}
        self.final: dict[str, Any] | None = None

    def encode(self, items: Sequence[StreamItem]) -> bytes:
        out: list[bytes] = []
        for item in items:
            doc = item.chunk
            if doc is not None:
                seq = doc.get("sequence_number")
                if isinstance(seq, int):
                    self._seq = seq + 1
                resp = doc.get("response")
                if isinstance(resp, dict):
                    self._response = resp
                    if doc.get("type") in ("response.completed", "response.incomplete"):
                        self.final = resp
            if item.raw is not None:
                out.append(item.raw)
        return b"".join(out)

    def error(self, c: Classification) -> bytes:
        return failure_events(c, self._seq, self._response)
