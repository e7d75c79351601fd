"""Writing a stream in the Responses API's event sequence.

`ChatToResponses` turns the chat chunks of a translated target into `response.created`, `response.in_progress`,
`response.output_item.added`, `response.content_part.added`, `response.output_text.delta`,
`response.function_call_arguments.delta`, the matching `.done` events and `response.completed` (or
`response.incomplete`). `NativeResponses` forwards a native target's own events as they are. Both end a stream
that was cut after content reached the client with an `error` event and `response.failed`: never a clean end.

A resumed stream (dataplane/resume.py) is written on by `continued()`: the same `ChatToResponses`, or for a
native stream one that carries on from what was forwarded (the response's id and snapshot, the next sequence
number, the finished items, the open message and its text), so the client sees one response: its open message
continues, a new item takes the next output index, and one `response.completed` holds the whole output.
`ResponsesChatView` reads a native stream's events as chat chunks, for the tap and for a native continuation.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from adapters.base import StreamItem
from adapters.wire.common import obj
from controlplane.domain import Classification
from dataplane.api.responses_translate import (
    FINISH_STATUS,
    call_item,
    item_id,
    message_item,
    response_object,
    responses_usage,
)
from dataplane.resume import EventView, chat_item

__all__ = ["ChatToResponses", "NativeResponses", "ResponsesChatView", "sse_event", "failure_events"]


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


@dataclass(slots=True)
class OpenMessage:
    """A message item still open when a stream is carried on: its content parts so far and its open text."""

    output_index: int
    item_id: str
    parts: list[dict[str, Any]]  # finished content parts
    text: list[str] | None  # the open output_text part's text (None: no part open)


class ChatToResponses:
    """Chat chunks → Responses events for one stream (a translated target). `final` is the completed response."""

    def __init__(self, body: Mapping[str, Any], *, rid: str, model: str) -> None:
        self._base = response_object(
            body, rid=rid, model=model, status="in_progress", output=[], usage=None, created_at=int(time.time())
        )
        self._seq = 0
        self._started = False
        self._output: list[dict[str, Any] | None] = []  # finished items by output index (None while open)
        self._unfinished: dict[int, dict[str, Any]] = {}  # items a carried-on stream left open, closed at the end
        self._msg: OpenMessage | None = None  # the open message item
        self._calls: dict[int, _Call] = {}  # chat tool_calls index → call
        self._finish: str | None = None
        self._usage: Mapping[str, Any] | None = None
        self.final: dict[str, Any] | None = None

    @classmethod
    def carrying_on(
        cls,
        response: Mapping[str, Any],
        *,
        seq: int,
        output: list[dict[str, Any] | None],
        unfinished: dict[int, dict[str, Any]],
        message: OpenMessage | None,
    ) -> ChatToResponses:
        """The writer that goes on with a stream whose events so far were another's: `response` as announced,
        `seq` the next sequence number, `output` the items by index (None: open), `message` the open message."""
        w = cls({}, rid="", model="")
        w._base, w._seq, w._started = dict(response), seq, True
        w._output, w._unfinished, w._msg = output, unfinished, message
        return w

    def continued(self) -> ChatToResponses:
        return self

    def _ev(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return sse_event(kind, payload)

    def _snapshot(self, status: str, *, usage: Any, incomplete_reason: str | None = None) -> dict[str, Any]:
        return {
            **self._base,
            "status": status,
            "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
            "output": [o for o in self._output if o is not None],
            "usage": usage,
        }

    def _start(self) -> list[bytes]:
        self._started = True
        snap = self._snapshot("in_progress", usage=None)
        return [self._ev("response.created", response=snap), self._ev("response.in_progress", response=snap)]

    def _text_delta(self, text: str) -> list[bytes]:
        out: list[bytes] = []
        msg = self._msg
        if msg is None:
            msg = self._msg = OpenMessage(len(self._output), item_id("msg"), [], None)
            self._output.append(None)
            item = {**message_item(msg.item_id, "", "in_progress"), "content": []}
            out.append(self._ev("response.output_item.added", output_index=msg.output_index, item=item))
        common = {"item_id": msg.item_id, "output_index": msg.output_index, "content_index": len(msg.parts)}
        if msg.text is None:
            msg.text = []
            part = {"type": "output_text", "text": "", "annotations": []}
            out.append(self._ev("response.content_part.added", part=part, **common))
        msg.text.append(text)
        out.append(self._ev("response.output_text.delta", delta=text, logprobs=[], **common))
        return out

    def _close_message(self) -> list[bytes]:
        msg, out = self._msg, []
        if msg is None:
            return []
        if msg.text is not None:
            text = "".join(msg.text)
            part = {"type": "output_text", "text": text, "annotations": []}
            common = {"item_id": msg.item_id, "output_index": msg.output_index, "content_index": len(msg.parts)}
            out.append(self._ev("response.output_text.done", text=text, logprobs=[], **common))
            out.append(self._ev("response.content_part.done", part=part, **common))
            msg.parts.append(part)
            msg.text = None
        item = {**message_item(msg.item_id, ""), "content": msg.parts}
        self._output[msg.output_index], self._msg = item, None
        out.append(self._ev("response.output_item.done", output_index=msg.output_index, item=item))
        return out

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
                out += self._text_delta(text)
            for call in delta.get("tool_calls") or []:
                out += self._tool_delta(call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return out

    def _end(self) -> list[bytes]:
        out = self._close_message()
        for index, item in sorted(self._unfinished.items()):
            self._output[index] = done = {**item, "status": "incomplete"}
            out.append(self._ev("response.output_item.done", output_index=index, item=done))
        self._unfinished = {}
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
    """A native Responses target's events, forwarded as they came; `final` is its completed response. It keeps
    what the client has been told (the response, the items, the open text) so that a continuation can go on."""

    def __init__(self) -> None:
        self._seq = 0
        self._response: dict[str, Any] = {"id": "", "object": "response", "status": "in_progress", "output": []}
        self._final: dict[str, Any] | None = None
        self._open: dict[int, dict[str, Any]] = {}  # items added and not done, by output index
        self._done: dict[int, dict[str, Any]] = {}
        self._parts: dict[int, list[dict[str, Any]]] = {}  # finished content parts of an open message
        self._text: dict[int, list[str]] = {}  # the text of an open message's open output_text part
        self._continued: ChatToResponses | None = None

    @property
    def final(self) -> dict[str, Any] | None:
        return self._continued.final if self._continued is not None else self._final

    def encode(self, items: Sequence[StreamItem]) -> bytes:
        out: list[bytes] = []
        for item in items:
            doc = item.chunk
            if doc is not None:
                self._track(doc)
            if item.raw is not None:
                out.append(item.raw)
        return b"".join(out)

    def _track(self, doc: Mapping[str, Any]) -> None:
        seq = doc.get("sequence_number")
        if isinstance(seq, int):
            self._seq = seq + 1
        kind = doc.get("type")
        resp = doc.get("response")
        if isinstance(resp, dict):
            self._response = resp
            if kind in ("response.completed", "response.incomplete"):
                self._final = resp
        index, item = doc.get("output_index"), doc.get("item")
        if not isinstance(index, int):
            return
        if kind == "response.output_item.added" and isinstance(item, dict):
            self._open[index] = item
        elif kind == "response.output_item.done" and isinstance(item, dict):
            self._open.pop(index, None)
            self._parts.pop(index, None)
            self._text.pop(index, None)
            self._done[index] = item
        elif kind == "response.content_part.added":
            part = doc.get("part")
            if isinstance(part, dict) and part.get("type") == "output_text":
                self._text[index] = [str(part.get("text") or "")]
        elif kind == "response.output_text.delta":
            self._text.setdefault(index, []).append(str(doc.get("delta") or ""))
        elif kind == "response.content_part.done" and isinstance(doc.get("part"), dict):
            self._parts.setdefault(index, []).append(doc["part"])
            self._text.pop(index, None)

    def continued(self) -> ChatToResponses:
        """The writer of a continuation: the open message (the last one) goes on, other open items end with it."""
        if self._continued is None:
            last = max([*self._open, *self._done], default=-1)
            output = [self._done.get(i) for i in range(last + 1)]
            unfinished = dict(self._open)
            open_messages = [i for i, it in self._open.items() if it.get("type") == "message"]
            message = None
            if open_messages:
                i = max(open_messages)
                del unfinished[i]
                item_id_ = str(self._open[i].get("id") or "")
                message = OpenMessage(i, item_id_, list(self._parts.get(i, [])), self._text.get(i))
            self._continued = ChatToResponses.carrying_on(
                self._response, seq=self._seq, output=output, unfinished=unfinished, message=message
            )
        return self._continued

    def error(self, c: Classification) -> bytes:
        return failure_events(c, self._seq, self._response)


# A native response's end → the chat finish reason it means.
_INCOMPLETE_FINISH = {"max_output_tokens": "length", "content_filter": "content_filter"}
_REASONING_DELTAS = frozenset({"response.reasoning_summary_text.delta", "response.reasoning_text.delta"})


class ResponsesChatView(EventView):
    """A native Responses stream's items read as chat chunks (dataplane/resume.py `ChatView`): text, reasoning
    and function-call deltas, and the end with its finish reason and usage."""

    def read(self, doc: dict[str, Any], item: StreamItem) -> StreamItem | None:
        kind, index = doc.get("type"), doc.get("output_index")
        at = index if isinstance(index, int) else 0
        finish: str | None = None
        if kind == "response.output_text.delta":
            delta: dict[str, Any] = {"content": str(doc.get("delta") or "")}
        elif kind in _REASONING_DELTAS:
            delta = {"reasoning_content": str(doc.get("delta") or "")}
        elif kind == "response.output_item.added":
            added = obj(doc.get("item"))
            if added.get("type") != "function_call":
                return None
            fn = {"name": str(added.get("name") or ""), "arguments": ""}
            call = {"index": self.call_index(at), "id": str(added.get("call_id") or ""), "type": "function"}
            delta = {"tool_calls": [{**call, "function": fn}]}
        elif kind == "response.function_call_arguments.delta":
            args = {"arguments": str(doc.get("delta") or "")}
            delta = {"tool_calls": [{"index": self.call_index(at), "function": args}]}
        elif kind in ("response.completed", "response.incomplete"):
            delta, finish = {}, _finish_of(obj(doc.get("response")))
        else:
            return None
        return chat_item(delta, finish=finish, usage=item.usage, content=item.content)


def _finish_of(resp: Mapping[str, Any]) -> str:
    if resp.get("status") == "incomplete":
        details = resp.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        return _INCOMPLETE_FINISH.get(str(reason), "length")
    output = resp.get("output")
    if isinstance(output, list) and any(isinstance(o, dict) and o.get("type") == "function_call" for o in output):
        return "tool_calls"
    return "stop"
